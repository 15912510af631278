"""Images in a registry, through skopeo; and image archives read as data.

skopeo 1.9 cannot read a docker-archive from a pipe or FIFO (it opens the path
twice: once to sniff compression, once to read the tar), so an image stream is
written to a temporary file first, outside the nix store, and skopeo reads that
file in place (an uncompressed, seekable archive is not copied again). A manifest
list is written by hand and pushed with `skopeo copy --multi-arch index-only` from
a `dir:` layout once its images are in the repository; `--preserve-digests` makes
skopeo fail rather than push anything but the exact bytes whose digests the report
records.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpbuild import process
from rpbuild.build import is_stream_script
from rpbuild.errors import CommandError, RpbuildError, ToolMissing
from rpbuild.profiles import IMAGE_NAME_RE, TAG_RE

SKOPEO_HINT = "install it with `apt-get install skopeo`"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
_NOT_FOUND = re.compile(r"manifest unknown|not found|name unknown|no such", re.IGNORECASE)
# A profile's image name (IMAGE_NAME_RE), optionally behind a registry host[:port].
_REPO_RE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?" + IMAGE_NAME_RE.pattern.removeprefix("^")
)
_HINT = (
    "is the registry running, and are you logged in (`skopeo login`)? "
    "use --no-tls-verify for a plain-HTTP registry"
)


class RegistryError(CommandError):
    """skopeo failed to read from or write to a registry."""


class ArchiveError(RpbuildError):
    """An image archive is not the docker-archive rpbuild expects."""


def check_repository(repo: str) -> str:
    """REGISTRY/REPO without tag or digest; the tag comes from the release version."""
    if "@" in repo or ":" in repo.rsplit("/", 1)[-1]:
        raise RpbuildError(f"--push {repo}: give the repository without a tag or digest")
    if not _REPO_RE.match(repo):
        raise RpbuildError(
            f"--push {repo}: not a repository like registry.example.org/user/rosenpass "
            "(lower case, no scheme)"
        )
    return repo


def check_tag(tag: str) -> str:
    if not TAG_RE.match(tag):
        raise RpbuildError(
            f"'{tag}' is not a valid image tag (letters, digits, '_', '.', '-'; at most 128)"
        )
    return tag


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
            manifest = json.loads(_member(tar, "manifest.json", path))
            if not isinstance(manifest, list) or len(manifest) != 1:
                raise ArchiveError(f"{path}: expected exactly one image in manifest.json")
            entry = manifest[0]
            config_bytes = _member(tar, str(entry["Config"]), path)
    except (OSError, tarfile.TarError, ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(f"{path}: not a readable docker-archive: {exc}") from None
    config = json.loads(config_bytes)
    return ArchiveImage(
        path=path,
        image_id="sha256:" + hashlib.sha256(config_bytes).hexdigest(),
        config=config,
        repo_tags=tuple(entry.get("RepoTags") or ()),
    )


def _member(tar: tarfile.TarFile, name: str, path: Path) -> bytes:
    fh = tar.extractfile(name)
    if fh is None:
        raise ArchiveError(f"{path}: {name} is not a file in the archive")
    return fh.read()


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
        what=f"stream {out_path.name}",
        error=ArchiveStreamError,
    )
    return dest


class ArchiveStreamError(CommandError):
    """The image stream script failed or its output could not be written."""


def _is_script(path: Path) -> bool:
    try:
        return path.is_file() and is_stream_script(path)
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot read the build output: {exc.strerror}") from None


# -- skopeo -----------------------------------------------------------------------


_LOGRUS_MSG = re.compile(r'level=(?:fatal|error) msg="((?:[^"\\]|\\.)*)"')


def skopeo_message(stderr: str) -> str:
    """skopeo's last error without its log decoration (time=... level=fatal msg="...")."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return ""
    m = _LOGRUS_MSG.search(lines[-1])
    if m is None:
        return lines[-1]
    return m.group(1).replace('\\"', '"').replace("\\\\", "\\")


def _skopeo(args: Sequence[str], *, what: str, check: bool = True) -> process.Result:
    if process.which("skopeo") is None:
        raise ToolMissing("skopeo is not installed", hint=SKOPEO_HINT)
    result = process.run(["skopeo", *args], what=what, error=RegistryError, check=False)
    if check and result.returncode != 0:
        raise RegistryError(
            f"{what} failed: {skopeo_message(result.stderr) or f'exit {result.returncode}'}",
            argv=result.argv,
            returncode=result.returncode,
            stderr_tail=result.stderr_tail(),
            hint=_HINT,
        )
    return result


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
) -> str:
    """`skopeo copy SOURCE docker://DEST`; returns the digest of what was pushed.

    A registry source (`docker://...`) gets the same TLS setting as the destination.
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
        _skopeo([*args, source, f"docker://{dest}"], what=f"skopeo copy to {dest}")
        return digest_file.read_text(encoding="utf-8").strip()


def push_archive(archive: Path, dest: str, *, tls_verify: bool = True) -> str:
    """Push one image archive to REGISTRY/REPO:TAG; returns its manifest digest."""
    return copy(f"docker-archive:{archive}", dest, tls_verify=tls_verify)


def retag(source: str, dest: str, *, tls_verify: bool = True) -> str:
    """Give a pushed image or list a second tag: registry to registry, blobs reused."""
    return copy(f"docker://{source}", dest, tls_verify=tls_verify, all_images=True)


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
    """Whether the registry has the tag; any other failure (auth, network) is raised."""
    result = _skopeo(
        ["inspect", "--raw", _tls("tls-verify", tls_verify), f"docker://{reference}"],
        what=f"skopeo inspect {reference}",
        check=False,
    )
    if result.returncode == 0:
        return True
    if _NOT_FOUND.search(result.stderr):
        return False
    raise RegistryError(
        f"cannot ask the registry for {reference}: {skopeo_message(result.stderr)}",
        argv=result.argv,
        returncode=result.returncode,
        stderr_tail=result.stderr_tail(),
        hint=_HINT,
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


def push_list(entries: Sequence[ListEntry], dest: str, *, tls_verify: bool = True) -> str:
    """Push a manifest list of images already pushed to dest's repository; its digest."""
    data = manifest_list(entries)
    with tempfile.TemporaryDirectory(prefix="rpbuild-list-") as tmp:
        layout = Path(tmp)
        (layout / "version").write_text("Directory Transport Version: 1.1\n", encoding="utf-8")
        (layout / "manifest.json").write_bytes(data)
        digest = copy(f"dir:{layout}", dest, tls_verify=tls_verify, index_only=True)
    expected = "sha256:" + hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise RegistryError(f"{dest}: the registry stored the list as {digest}, not {expected}")
    return digest
