"""Images in a registry, through skopeo; and image archives read as data.

skopeo 1.9 cannot read a docker-archive from a pipe or FIFO (it opens the path
twice: once to sniff compression, once to read the tar; `docker-archive:/dev/stdin`
and a FIFO both fail with "archive/tar: invalid tar header", checked with 1.9.3), so
an image stream that is pushed is written to a temporary file first, outside the nix
store, and skopeo reads that file in place (an uncompressed, seekable archive is not
copied again). Verifying a rebuild needs only the image ID: that stream is read
through `tar` keeping its JSON members only (stream_image), nothing else written. A manifest
list is written by hand and pushed with `skopeo copy --multi-arch index-only` from
a `dir:` layout once its images are in the repository; `--preserve-digests` makes
skopeo fail rather than push anything but the exact bytes whose digests the report
records.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpbuild import process
from rpbuild.errors import CommandError, ExitCode, RpbuildError, ToolMissing
from rpbuild.fsutil import is_stream_script

if TYPE_CHECKING:
    from rpbuild.release.signing import Signing

SKOPEO_HINT = "install it with `apt-get install skopeo`"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
# What a registry answers when the tag, or the whole repository, is not there yet. Only
# the answer to reading the manifest counts: "no such host" or a proxy's "not found"
# while pinging the registry mean it was not reached at all.
_NOT_FOUND = re.compile(
    r"reading manifest \S+ in \S+: (?:manifest unknown|name unknown|not found|StatusCode: 404\b)",
    re.IGNORECASE,
)
# Why a registry could not be asked, most specific first; each with what to do about it.
_FAILURES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"server gave HTTP response to HTTPS client", re.IGNORECASE),
        "the registry speaks plain HTTP: use --no-tls-verify",
    ),
    (
        re.compile(r"x509:|\btls:", re.IGNORECASE),
        "the registry's TLS certificate is not trusted: install its CA certificate, "
        "or use --no-tls-verify",
    ),
    (
        re.compile(
            r"unauthorized|authentication required|\bdenied\b|invalid username/password",
            re.IGNORECASE,
        ),
        "log in to the registry with `skopeo login HOST`, with a user that may push there",
    ),
    (
        re.compile(r"no such host|server misbehaving|lookup \S+ on ", re.IGNORECASE),
        "the registry's host name in --push does not resolve; check it",
    ),
    (
        re.compile(
            r"pinging container registry|dial tcp|connection refused|connection reset|"
            r"no route to host|network is unreachable|i/o timeout|\bEOF\b",
            re.IGNORECASE,
        ),
        "is the registry running, at that host and port?",
    ),
)


class RegistryError(CommandError):
    """skopeo failed to read from or write to a registry."""


class ArchiveError(RpbuildError):
    """An image archive is not the docker-archive rpbuild expects."""

    exit_code = ExitCode.RUNTIME  # what the build wrote, not what the user typed


def failure_hint(message: str) -> str | None:
    """What to do about a registry that could not be asked; None when skopeo failed
    for another reason (an invalid reference, a full disk), where a hint would mislead."""
    return next((hint for pattern, hint in _FAILURES if pattern.search(message)), None)


def require_skopeo() -> None:
    """Before anything is built: a release that pushes needs skopeo."""
    if process.which("skopeo") is None:
        raise ToolMissing("skopeo is not installed; --push needs it", hint=SKOPEO_HINT)


@dataclass(frozen=True)
class ArchiveImage:
    """A docker-archive on disk and what identifies the image in it."""

    path: Path
    image_id: str  # sha256 of the config: Docker's image ID, the same wherever it goes
    config: Mapping[str, Any]
    repo_tags: tuple[str, ...]

    @property
    def platform(self) -> dict[str, str]:
        plat = {
            "architecture": str(self.config.get("architecture", "")),
            "os": str(self.config.get("os", "linux")),
        }
        if self.config.get("variant"):
            plat["variant"] = str(self.config["variant"])
        return plat

    @property
    def labels(self) -> dict[str, str]:
        inner = self.config.get("config") or {}
        return {str(k): str(v) for k, v in (inner.get("Labels") or {}).items()}


def read_archive(path: Path) -> ArchiveImage:
    """The image ID and config of a docker-archive (plain or gzipped), without any tool."""
    try:
        with tarfile.open(path, mode="r:*") as tar:
            return _image(path, lambda name: _member(tar, name, path))
    except (OSError, tarfile.TarError) as exc:
        raise ArchiveError(f"{path}: not a readable docker-archive: {exc}") from None


def _image(path: Path, member: Callable[[str], bytes]) -> ArchiveImage:
    """The image of a docker-archive whose members `member` reads by name."""
    try:
        manifest = json.loads(member("manifest.json"))
        if not isinstance(manifest, list) or len(manifest) != 1:
            raise ArchiveError(f"{path}: expected exactly one image in manifest.json")
        entry = manifest[0]
        config_bytes = member(str(entry["Config"]))
        config = json.loads(config_bytes)
        repo_tags = tuple(entry.get("RepoTags") or ())
        if not isinstance(config, dict):
            raise ArchiveError(f"{path}: the image config is not a JSON object")
    except (OSError, tarfile.TarError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArchiveError(f"{path}: not a readable docker-archive: {exc}") from None
    return ArchiveImage(
        path=path,
        image_id="sha256:" + hashlib.sha256(config_bytes).hexdigest(),
        config=config,
        repo_tags=repo_tags,
    )


def _member(tar: tarfile.TarFile, name: str, path: Path) -> bytes:
    fh = tar.extractfile(name)
    if fh is None:
        raise ArchiveError(f"{path}: {name} is not a file in the archive")
    return fh.read()


def stream_image(out_path: Path, scratch: Path) -> ArchiveImage:
    """The image ID and config of a build output, without writing its layers.

    A stream script's output goes through `tar`, which keeps only the JSON members (the
    manifest and the image config, a few KiB) in a directory under scratch: verifying a
    rebuild then writes nothing of the image to disk. An archive is read in place.
    """
    if not _is_script(out_path):
        return read_archive(out_path)
    members = Path(tempfile.mkdtemp(prefix="stream-", dir=scratch))
    try:
        process.pipe(
            [str(out_path)],
            ["tar", "-x", "-f", "-", "-C", str(members), "--wildcards", "*.json"],
            what=f"stream {out_path.name}",
            error=ArchiveStreamError,
        )

        def member(name: str) -> bytes:
            if "/" in name or name.startswith("."):
                raise ArchiveError(f"{out_path}: unexpected member name {name!r}")
            return (members / name).read_bytes()

        return _image(out_path, member)
    finally:
        shutil.rmtree(members, ignore_errors=True)


def write_archive(out_path: Path, dest: Path) -> Path:
    """The image of a nix build output as a docker-archive file.

    streamLayeredImage's output is a script writing the archive to stdout: it is
    piped into `dd` writing dest (no copy in the store, none in Python's memory).
    buildLayeredImage's output is the archive itself and is used in place.
    """
    if not _is_script(out_path):
        return out_path
    process.pipe(
        [str(out_path)],
        ["dd", f"of={dest}", "bs=1M", "status=none"],
        what=f"writing {dest}",
        producer_what=f"the image stream script {out_path.name}",
        error=ArchiveStreamError,
    )
    return dest


class ArchiveStreamError(CommandError):
    """The image stream script failed or its output could not be written."""


def _is_script(path: Path) -> bool:
    try:
        return is_stream_script(path)
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot read the build output: {exc.strerror}") from None


# -- skopeo -----------------------------------------------------------------------


_LOGRUS_MSG = re.compile(r'level=(?:fatal|error) msg="((?:[^"\\]|\\.)*)"')
_PARSING_PREFIX = re.compile(r'^Error parsing image name "[^"]*": ')


def skopeo_message(stderr: str) -> str:
    """skopeo's last error without its log decoration (time=... level=fatal msg="...")."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return ""
    m = _LOGRUS_MSG.search(lines[-1])
    text = lines[-1] if m is None else m.group(1).replace('\\"', '"').replace("\\\\", "\\")
    # skopeo 1.9 puts every failure to reach a registry behind this, parsing or not.
    return _PARSING_PREFIX.sub("", text, count=1)


def _skopeo(args: Sequence[str], *, what: str, check: bool = True) -> process.Result:
    if process.which("skopeo") is None:
        raise ToolMissing("skopeo is not installed", hint=SKOPEO_HINT)
    result = process.run(["skopeo", *args], what=what, error=RegistryError, check=False)
    if check and result.returncode != 0:
        message = skopeo_message(result.stderr) or f"exit {result.returncode}"
        raise result.error(RegistryError, f"{what} failed: {message}", failure_hint(message))
    return result


def run_skopeo(args: Sequence[str], *, what: str) -> process.Result:
    """skopeo with args, its failure returned rather than raised (the caller judges it)."""
    return _skopeo(args, what=what, check=False)


def _tls(flag: str, verify: bool) -> str:
    return f"--{flag}={'true' if verify else 'false'}"


def docker_ref(repository: str, tag: str) -> str:
    return f"{repository}:{tag}"


def copy(
    source: str,
    dest: str,
    *,
    tls_verify: bool = True,
    index_only: bool = False,
    all_images: bool = False,
    sign: Signing | None = None,
) -> str:
    """`skopeo copy SOURCE docker://DEST`; returns the digest of what was pushed.

    A registry source (`docker://...`) gets the same TLS setting as the destination.
    With sign, skopeo signs what it writes for the identity DEST (see rpbuild.release.signing).
    """
    with tempfile.TemporaryDirectory(prefix="rpbuild-skopeo-") as tmp:
        digest_file = Path(tmp) / "digest"
        args = ["copy", "--quiet", "--retry-times", "2", "--preserve-digests"]
        args += ["--digestfile", str(digest_file), _tls("dest-tls-verify", tls_verify)]
        if source.startswith("docker://"):
            args.append(_tls("src-tls-verify", tls_verify))
        if index_only:
            args += ["--multi-arch", "index-only"]
        elif all_images:
            args.append("--all")
        if sign is not None:
            args = [*sign.global_args(), *args, *sign.copy_args()]
        _skopeo([*args, source, f"docker://{dest}"], what=f"skopeo copy to {dest}")
        return digest_file.read_text(encoding="utf-8").strip()


def push_archive(
    archive: Path, dest: str, *, tls_verify: bool = True, sign: Signing | None = None
) -> str:
    """Push one image archive to REGISTRY/REPO:TAG; returns its manifest digest."""
    return copy(f"docker-archive:{archive}", dest, tls_verify=tls_verify, sign=sign)


def retag(source: str, dest: str, *, tls_verify: bool = True, sign: Signing | None = None) -> str:
    """Give a pushed image or list a second tag: registry to registry, blobs reused."""
    return copy(f"docker://{source}", dest, tls_verify=tls_verify, all_images=True, sign=sign)


def raw_manifest(reference: str, *, tls_verify: bool = True) -> str:
    result = _skopeo(
        [
            "inspect",
            "--raw",
            "--retry-times",
            "2",
            _tls("tls-verify", tls_verify),
            f"docker://{reference}",
        ],
        what=f"skopeo inspect {reference}",
    )
    return result.stdout


def exists(reference: str, *, tls_verify: bool = True) -> bool:
    """Whether the registry has the tag. Only the registry's own "not there" answer
    counts as no: a registry that cannot be reached, trusted or logged in to is
    raised, so that a release is refused before it builds anything it cannot push."""
    result = _skopeo(
        ["inspect", "--raw", _tls("tls-verify", tls_verify), f"docker://{reference}"],
        what=f"skopeo inspect {reference}",
        check=False,
    )
    if result.returncode == 0:
        return True
    message = skopeo_message(result.stderr) or f"skopeo exited with {result.returncode}"
    if failure_hint(message) is None and _NOT_FOUND.search(message):
        return False
    raise result.error(
        RegistryError, f"cannot ask the registry for {reference}: {message}", failure_hint(message)
    )


@dataclass(frozen=True)
class ListEntry:
    """One image of a manifest list: its pushed manifest and platform."""

    manifest: str  # the raw manifest, exactly as the registry serves it
    platform: Mapping[str, str]

    def descriptor(self) -> dict[str, Any]:
        data = self.manifest.encode()
        media_type = str(json.loads(data).get("mediaType", ""))
        return {
            "mediaType": media_type,
            "size": len(data),
            "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "platform": dict(self.platform),
        }


def manifest_list(entries: Sequence[ListEntry]) -> bytes:
    """A Docker manifest list over images already in the repository."""
    doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_LIST,
        "manifests": [entry.descriptor() for entry in entries],
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def push_list(
    entries: Sequence[ListEntry],
    dest: str,
    *,
    tls_verify: bool = True,
    sign: Signing | None = None,
) -> str:
    """Push a manifest list of images already pushed to dest's repository; its digest.

    Signed, the list and each of its images get a signature for dest's tag: a pull of
    the list checks every image it takes under that name."""
    data = manifest_list(entries)
    with tempfile.TemporaryDirectory(prefix="rpbuild-list-") as tmp:
        layout = Path(tmp)
        (layout / "version").write_text("Directory Transport Version: 1.1\n", encoding="utf-8")
        (layout / "manifest.json").write_bytes(data)
        digest = copy(f"dir:{layout}", dest, tls_verify=tls_verify, index_only=True)
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise RegistryError(f"{dest}: the registry stored the list as {digest}, not {expected}")
    if sign is not None:
        repo = dest.rsplit(":", 1)[0]
        again = copy(
            f"docker://{repo}@{digest}", dest, tls_verify=tls_verify, all_images=True, sign=sign
        )
        if again != digest:
            raise RegistryError(f"{dest}: signed as {again}, expected {digest}")
    return digest
