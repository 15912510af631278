"""One function per nix operation, each returning typed values.

Every call goes through `rpbuild.process.run`. The nix CLI changed between the
versions rpbuild supports (Debian 12 ships 2.8.0; current releases are 2.2x-2.3x),
so each command line is built by a pure `*_argv` function that takes the nix
version and is unit-tested per version. What differs:

- `nix path-info --json`: a list before 2.19, an object keyed by store path from
  2.19, and from 2.33 a warning unless `--json-format` is given. rpbuild asks 2.33+
  for `--json-format 2` (the format nix is moving to); `parse_path_info` reads all three.
- Updating lock entries: `nix flake lock --update-input X` before 2.19,
  `nix flake update --flake REF X` from 2.19 (the old flag was removed).
- `nix build --print-out-paths` only exists from 2.9; 2.8 gets `--json`. A failed
  build's derivation (for `nix log`) comes from the error either way.

Failures are mapped to one-line `NixError`s by the pure `classify_failure`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.version import InvalidVersion, Version

from rpbuild import process
from rpbuild.errors import ExitCode, NixError, ToolMissing
from rpbuild.fsutil import read_cache, write_cache
from rpbuild.notify import Notify
from rpbuild.units import store_name

if TYPE_CHECKING:  # the log decoder is imported by a failure, not by every nix call
    from rpbuild.progress import BuildProgress

STORE_DIR = "/nix/store"
TAIL_LINES = 25
EXPERIMENTAL = "nix-command flakes"

#: `nix --version` of the oldest behaviour each feature needs.
V_FLAKE_UPDATE_INPUTS = Version("2.19")
V_PATH_INFO_JSON_FORMAT = Version("2.33")
#: Lix forked from CppNix 2.18 and numbers itself 2.90+; it takes 2.18's flags.
_LIX_EQUIVALENT = Version("2.18")

INSTALL_HINT = "apt-get install nix-bin (Debian 12) or see https://nixos.org/download"
LOCK_HINT = "run `rpbuild lock update`"


@dataclass(frozen=True)
class PathInfo:
    """What `nix path-info --json` says of one store path, whatever the nix version."""

    path: str  # full store path, e.g. /nix/store/abc...-name
    nar_size: int
    closure_size: int | None  # only with -S
    references: tuple[str, ...]  # full store paths, sorted; may include the path itself
    nar_hash: str | None = None  # as nix prints it: "sha256:<nix32>", SRI "sha256-<base64>", ...


@dataclass(frozen=True)
class NixOptions:
    """How every nix call of one rpbuild run is tuned.

    overrides: (input name, flake URL) pairs -> `--override-input NAME URL`, e.g.
        ("rosenpass", "path:/src/rosenpass") to build offline from a checkout. nix
        then does not write the lock file.
    builders: value for `--builders` (remote builders), None leaves nix.conf's.
    options: (name, value) pairs -> `--option NAME VALUE`, in order; e.g.
        ("substituters", "") keeps nix away from the binary cache.
    offline: `--offline` (all supported versions have it): no substituters, and
        downloaded inputs count as up to date.
    """

    overrides: tuple[tuple[str, str], ...] = ()
    builders: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    offline: bool = False


@dataclass(frozen=True)
class BuildResult:
    """One installable once built: its derivation (None for a plain store path) and outputs."""

    drv_path: str | None
    outputs: dict[str, str]
    installable: str = ""

    @property
    def out(self) -> str:
        """The `out` output, or the only output there is."""
        if "out" in self.outputs:
            return self.outputs["out"]
        return next(iter(self.outputs.values()))


@dataclass(frozen=True)
class LockedInput:
    """One direct input of a flake as its lock file pins it."""

    name: str
    type: str
    url: str  # a flake URL that fetches exactly this revision
    rev: str | None
    last_modified: int | None
    nar_hash: str | None


@dataclass(frozen=True)
class FlakeMetadata:
    """`nix flake metadata --json`: where the flake is and what its inputs are pinned to."""

    url: str  # the locked URL of the flake itself
    original_url: str
    path: str  # the store path of its source
    last_modified: int | None
    description: str | None
    inputs: dict[str, LockedInput] = field(default_factory=dict)


class ProfileEvalError(NixError):
    """The rendered flake threw an `rpbuild-error:` marker: a profile asked for the impossible."""

    exit_code = ExitCode.USAGE  # the profile is at fault, not nix

    def __init__(
        self,
        message: str,
        *,
        details: Mapping[str, Any],
        **common: Any,  # CommandError's: argv, returncode, stderr_tail, hint
    ) -> None:
        super().__init__(message, **common)
        self.details = dict(details)
        self.kind = str(details.get("kind", ""))
        self.profile = _opt_str(details.get("profile"))
        self.package = _opt_str(details.get("package"))
        self.source = _opt_str(details.get("source"))
        self.attr = _opt_str(details.get("attr"))


class BuildFailed(NixError):
    """A derivation's builder failed; carries its log tail and the `nix log` command."""

    def __init__(
        self,
        message: str,
        *,
        drv_path: str,
        log_command: str,
        **common: Any,  # CommandError's: argv, returncode, stderr_tail, hint
    ) -> None:
        super().__init__(message, **common)
        self.drv_path = drv_path
        self.log_command = log_command


class FetchFailed(NixError):
    """A flake input (or the binary cache) could not be fetched."""

    def __init__(
        self,
        message: str,
        *,
        input_name: str | None,
        url: str,
        **common: Any,  # CommandError's: argv, returncode, stderr_tail, hint
    ) -> None:
        super().__init__(message, **common)
        self.input_name = input_name
        self.url = url


class LockMismatch(NixError):
    """flake.lock does not match flake.nix and rpbuild never lets nix change it silently."""

    exit_code = ExitCode.USAGE  # the project's files disagree; `rpbuild lock update` fixes it


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


# -- version -----------------------------------------------------------------------

_VERSION_RE = re.compile(r"(\d+\.\d+(?:\.\d+)?)(?:[-+.\w]*)?\s*$")


def parse_nix_version(text: str) -> Version:
    """The version from `nix --version`: the last dotted number on its first line.

    Handles "nix (Nix) 2.8.0", "nix (Nix) 2.24.10", "nix (Determinate Nix 3.6.2) 2.28.3"
    and "nix (Lix, like Nix) 2.91.1" (reported as 2.18, the CLI it matches).
    """
    first = text.strip().splitlines()[0] if text.strip() else ""
    m = _VERSION_RE.search(first)
    if m is None:
        raise NixError(f"cannot read the nix version from {first!r}")
    try:
        version = Version(m.group(1))
    except InvalidVersion as exc:  # pragma: no cover - the regex only admits digits
        raise NixError(f"cannot read the nix version from {first!r}") from exc
    if "lix" in first.lower():
        return _LIX_EQUIVALENT
    return version


def _version_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rpbuild" / "nix-version.json"


def _binary_identity(exe: str) -> str | None:
    """Which nix binary this is: its resolved path and what an upgrade changes in its inode."""
    try:
        real = Path(exe).resolve()
        st = real.stat()
    except OSError:
        return None
    return f"{real}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


@functools.cache
def nix_version() -> Version:
    """The installed nix's version; flags depend on it.

    Asked once per binary: `nix --version` costs about 20 ms, a fifth of a whole
    `rpbuild sizes`, so the answer is cached per resolved binary and its inode data
    (an upgrade replaces the file, or the store path a profile symlink resolves to).
    """
    exe = process.which("nix")
    if exe is None:
        raise ToolMissing("nix is not installed (no `nix` on PATH)", hint=INSTALL_HINT)
    identity = _binary_identity(exe)
    cache = _version_cache()
    if identity is not None:
        cached = read_cache(cache, identity)
        if isinstance(cached, str):
            try:
                return Version(cached)
            except InvalidVersion:
                pass  # a corrupt cache is a miss
    result = process.run(["nix", "--version"], what="nix --version", error=NixError)
    version = parse_nix_version(result.stdout)
    if identity is not None:
        with contextlib.suppress(OSError):  # a read-only home costs the next run 20 ms
            write_cache(cache, identity, str(version))
    return version


# -- argv builders (pure) ----------------------------------------------------------


def base_argv(opts: NixOptions | None = None) -> list[str]:
    """`nix` plus the global flags every call needs: flakes on, options, builders."""
    opts = opts or NixOptions()
    argv = ["nix", "--extra-experimental-features", EXPERIMENTAL]
    for name, value in opts.options:
        argv += ["--option", name, value]
    if opts.builders is not None:
        argv += ["--builders", opts.builders]
    if opts.offline:
        argv.append("--offline")
    return argv


def _flake_flags(opts: NixOptions) -> list[str]:
    """Subcommand flags for commands that evaluate a flake."""
    argv = ["--no-update-lock-file"]
    for name, url in opts.overrides:
        argv += ["--override-input", name, url]
    return argv


PRINT_OUT_PATHS_SINCE = Version("2.9")


def build_argv(
    installables: Sequence[str],
    opts: NixOptions | None = None,
    *,
    version: Version | None = None,
    rebuild: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """`nix build` printing its out paths and an internal-json log, making no `result` link.

    `--print-out-paths` from 2.9 on, `--json` before (2.8 has no other way to print
    them); a failed build's derivation comes from the error either way. No `-L`:
    internal-json carries build log lines anyway, and on nix 2.8 a `-L` after
    `--log-format` switches back to plain text. version None means the oldest (2.8).
    """
    opts = opts or NixOptions()
    printing = (
        "--print-out-paths"
        if version is not None and version >= PRINT_OUT_PATHS_SINCE
        else "--json"
    )
    argv = [*base_argv(opts), "--log-format", "internal-json", "build"]
    argv += ["--no-link", printing, *_flake_flags(opts)]
    if rebuild:
        argv.append("--rebuild")
    return [*argv, *extra, *installables]


def eval_argv(installable: str, opts: NixOptions | None = None) -> list[str]:
    opts = opts or NixOptions()
    return [*base_argv(opts), "eval", "--json", *_flake_flags(opts), installable]


def path_info_argv(
    paths: Sequence[str],
    version: Version,
    opts: NixOptions | None = None,
    *,
    recursive: bool = False,
    closure_size: bool = False,
) -> list[str]:
    """`nix path-info --json`; 2.33+ is asked for format 2 so it does not warn."""
    argv = [*base_argv(opts), "path-info", "--json"]
    if version >= V_PATH_INFO_JSON_FORMAT:
        argv += ["--json-format", "2"]
    if recursive:
        argv.append("--recursive")
    if closure_size:
        argv.append("--closure-size")
    return [*argv, *paths]


def flake_metadata_argv(flake_ref: str, opts: NixOptions | None = None) -> list[str]:
    opts = opts or NixOptions()
    return [*base_argv(opts), "flake", "metadata", "--json", *_flake_flags(opts), flake_ref]


def flake_ref_for(flake_dir: Path) -> str:
    """`path:` URL of a directory: nix sees every file, tracked by git or not."""
    return f"path:{flake_dir.resolve()}"


def lock_update_argv(
    flake_dir: Path,
    inputs: Sequence[str],
    version: Version,
    opts: NixOptions | None = None,
) -> list[str]:
    """Update some (or, with no names, all) lock entries of the flake in flake_dir.

    Before 2.19: `nix flake lock --update-input X ... REF` (`nix flake update REF` for
    all). From 2.19: `nix flake update --flake REF X ...`. Overrides are passed on,
    which pins those inputs to the given URLs in the new lock.
    """
    opts = opts or NixOptions()
    ref = flake_ref_for(flake_dir)
    argv = base_argv(opts)
    overrides = [a for name, url in opts.overrides for a in ("--override-input", name, url)]
    if version >= V_FLAKE_UPDATE_INPUTS:
        return [*argv, "flake", "update", *overrides, "--flake", ref, *inputs]
    if not inputs:
        return [*argv, "flake", "update", *overrides, ref]
    updates = [a for name in inputs for a in ("--update-input", name)]
    return [*argv, "flake", "lock", *overrides, *updates, ref]


def log_command(drv_path: str, opts: NixOptions | None = None) -> str:
    """The `nix log` command line that shows a derivation's full build log, shell-quoted."""
    return shlex.join([*base_argv(opts), "log", drv_path])


# -- parsers (pure) ----------------------------------------------------------------


def _full(path: str, store_dir: str) -> str:
    return path if path.startswith("/") else f"{store_dir.rstrip('/')}/{path}"


def _not_in_store(path: str) -> NixError:
    return NixError(
        f"not a valid path in the nix store: {path}",
        hint="build it first, or check the path (a garbage collection may have removed it)",
    )


def _path_info_entry(path: str, info: Mapping[str, Any], store_dir: str) -> PathInfo:
    closure = info.get("closureSize")
    refs = info.get("references") or []
    return PathInfo(
        path=path,
        nar_size=int(info.get("narSize", 0)),
        closure_size=int(closure) if closure is not None else None,
        references=tuple(sorted(_full(str(r), store_dir) for r in refs)),
        nar_hash=_opt_hash(info.get("narHash")),
    )


def _opt_hash(value: Any) -> str | None:
    """narHash: a string in every nix before 2.33; an object of algorithm and hash after."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        algo, digest = value.get("algorithm"), value.get("hash")
        if isinstance(algo, str) and isinstance(digest, str):
            return digest if digest.startswith(f"{algo}-") else f"{algo}-{digest}"
    return None


def parse_path_info(text: str) -> dict[str, PathInfo]:
    """Read `nix path-info --json` output of any version into PathInfo keyed by full path.

    (a) before 2.19: a list of objects with `path` (`"valid": false` for unknown paths);
    (b) 2.19-2.32 (and `--json-format 1`): an object keyed by full store path, null
        for unknown paths (2.33 adds top-level `version`/`storeDir` keys, skipped);
    (c) `--json-format 2`: `{"version": 2, "storeDir": ..., "info": {BASENAME: ...}}`,
        references as base names.
    A path that is not in the store raises NixError: the caller asked about it.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NixError(f"nix path-info printed invalid JSON: {exc}") from exc
    out: dict[str, PathInfo] = {}
    if isinstance(data, list):
        for item in data:
            path = str(item["path"])
            if item.get("valid", True) is False:
                raise _not_in_store(path)
            out[path] = _path_info_entry(path, item, STORE_DIR)
        return out
    if not isinstance(data, dict):
        raise NixError("nix path-info printed JSON of an unknown shape")
    if isinstance(data.get("info"), dict):
        store_dir = str(data.get("storeDir") or STORE_DIR)
        for key, info in data["info"].items():
            path = _full(key, store_dir)
            if info is None:
                raise _not_in_store(path)
            out[path] = _path_info_entry(path, info, str(info.get("storeDir") or store_dir))
        return out
    store_dir = str(data["storeDir"]) if isinstance(data.get("storeDir"), str) else STORE_DIR
    for key, info in data.items():
        if not key.startswith("/"):
            continue  # top-level metadata such as "version" and "storeDir"
        if info is None:
            raise _not_in_store(key)
        out[key] = _path_info_entry(key, info, store_dir)
    return out


def parse_out_paths(text: str, installable: str = "") -> BuildResult:
    """`nix build --print-out-paths`: one store path per line, `out` first."""
    paths = [line.strip() for line in text.splitlines() if line.strip().startswith("/")]
    if not paths:
        raise NixError(f"nix build printed no result for {installable or 'the installable'}")
    outputs = {"out": paths[0]}
    for path in paths[1:]:
        name = store_name(path)
        suffix = name.rsplit("-", 1)[-1] if "-" in name else name
        outputs.setdefault(suffix, path)
    return BuildResult(drv_path=None, outputs=outputs, installable=installable)


def parse_build_json(text: str, installable: str = "") -> BuildResult:
    """One installable's `nix build --json` output: one entry (outputs merged if more)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NixError(f"nix build printed invalid JSON: {exc}") from exc
    if not isinstance(data, list) or not data:
        raise NixError(f"nix build printed no result for {installable or 'the installable'}")
    drv_path: str | None = None
    outputs: dict[str, str] = {}
    for entry in data:
        if "path" in entry and "outputs" not in entry:  # an existing store path
            outputs.setdefault("out", str(entry["path"]))
            continue
        drv_path = drv_path or entry.get("drvPath")
        outputs.update({str(k): str(v) for k, v in (entry.get("outputs") or {}).items()})
    return BuildResult(drv_path=drv_path, outputs=outputs, installable=installable)


def _locked_url(locked: Mapping[str, Any]) -> str:
    """A flake URL for a lock entry; good enough to show and to pass to --override-input."""
    kind = str(locked.get("type", ""))
    rev = locked.get("rev")
    if kind in ("github", "gitlab", "sourcehut"):
        url = f"{kind}:{locked.get('owner')}/{locked.get('repo')}"
        return f"{url}/{rev}" if rev else url
    if kind == "path":
        return f"path:{locked.get('path')}"
    if kind == "indirect":
        return f"flake:{locked.get('id')}"
    url = str(locked.get("url", ""))
    if kind in ("git", "hg"):
        return f"{kind}+{url}" + (f"?rev={rev}" if rev else "")
    return url


def parse_flake_metadata(text: str) -> FlakeMetadata:
    """Read `nix flake metadata --json`; direct inputs come from its `locks` graph."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NixError(f"nix flake metadata printed invalid JSON: {exc}") from exc
    locks = data.get("locks") or {}
    nodes: dict[str, Any] = locks.get("nodes") or {}
    root = nodes.get(str(locks.get("root", "root")), {})
    inputs: dict[str, LockedInput] = {}
    for name, ref in (root.get("inputs") or {}).items():
        node_name = _follow(nodes, locks.get("root", "root"), ref)
        node = nodes.get(node_name or "", {})
        locked = node.get("locked")
        if not isinstance(locked, dict):
            continue
        inputs[name] = LockedInput(
            name=name,
            type=str(locked.get("type", "")),
            url=_locked_url(locked),
            rev=_opt_str(locked.get("rev")),
            last_modified=locked.get("lastModified"),
            nar_hash=_opt_str(locked.get("narHash")),
        )
    return FlakeMetadata(
        url=str(data.get("url") or data.get("resolvedUrl") or ""),
        original_url=str(data.get("originalUrl") or ""),
        path=str(data.get("path") or ""),
        last_modified=data.get("lastModified"),
        description=_opt_str(data.get("description")),
        inputs=inputs,
    )


def _follow(nodes: Mapping[str, Any], root: str, ref: Any) -> str | None:
    """Resolve an input reference: a node name, or a `follows` path from the root."""
    if isinstance(ref, str):
        return ref
    if not isinstance(ref, list):
        return None
    current: str | None = root
    for step in ref:
        node = nodes.get(current or "", {})
        current = _follow(nodes, root, (node.get("inputs") or {}).get(step))
        if current is None:
            return None
    return current


# -- failure classification (pure) ------------------------------------------------

_MARKER = "rpbuild-error:"
_BUILDER_FAILED = [
    re.compile(r"builder for '(?P<drv>/[^']+\.drv)' failed(?: with exit code (?P<code>\d+))?"),
    re.compile(r"Cannot build '(?P<drv>/[^']+\.drv)'"),  # nix 2.24+
]
_EXIT_CODE = re.compile(r"exit code (?P<code>\d+)")
_LOCK_PATTERNS = (
    "requires lock file changes but they're not allowed",
    "cannot write modified lock file",
    "cannot update lock file",
    "needs to be updated",
)
_FETCH_PATTERNS = [
    re.compile(r"while fetching the input '(?P<url>[^']+)'"),
    re.compile(r"unable to download '(?P<url>[^']+)'(?::\s*(?P<why>.*))?"),
    re.compile(r"unable to access '(?P<url>[^']+)'(?::\s*(?P<why>.*))?"),
    re.compile(r"(?:cannot|failed to) fetch[^']*'(?P<url>[^']+)'(?::\s*(?P<why>.*))?"),
    re.compile(r"getting status of '(?P<url>[^']+)'(?::\s*(?P<why>.*))?"),
    re.compile(r"path '(?P<url>[^']+)' (?P<why>does not exist)"),  # nix 2.26
]
_GITHUB = re.compile(
    r"^(?:github:|https?://(?:api\.)?github\.com/(?:repos/)?|git\+https?://github\.com/)"
    r"(?P<owner>[^/?#]+)/(?P<repo>[^/?#]+?)(?:\.git)?(?:[/?#]|$)",
    re.IGNORECASE,
)
_GITLAB = re.compile(
    r"^(?:gitlab:|https?://gitlab\.com/(?:api/v4/projects/)?|git\+https?://gitlab\.com/)"
    r"(?P<owner>[^/?#%]+)(?:/|%2F)(?P<repo>[^/?#]+?)(?:\.git)?(?:[/?#]|$)",
    re.IGNORECASE,
)
_CACHE_URL = re.compile(r"\.narinfo$|/nar/|/nix-cache-info$|\.ls$|/log/")
_NOISE = ("(use '--show-trace'",)


def _subcommand(argv: Sequence[str]) -> str:
    """`flake metadata`, `build`, ...: the words after `nix` that are not flags."""
    takes_value = {
        "--extra-experimental-features": 1,
        "--option": 2,
        "--builders": 1,
        "--log-format": 1,
        "--offline": 0,
    }
    words: list[str] = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg in takes_value:
            i += takes_value[arg] + 1
            continue
        if arg.startswith("-"):
            break
        words.append(arg)
        if arg != "flake":
            break
        i += 1
    return " ".join(words) or "nix"


def _error_lines(progress: BuildProgress) -> list[str]:
    """The decoded lines from nix's first `error:` on; warnings before it are noise."""
    lines = progress.messages
    start = next((i for i, ln in enumerate(lines) if ln.startswith("error:")), None)
    if start is None:
        return [ln for ln in lines if ln.strip() and not ln.strip().startswith(_NOISE)]
    return [
        ln
        for ln in lines[start:]
        if ln.strip() and not ln.startswith("warning:") and not ln.strip().startswith(_NOISE)
    ]


def _last_error(lines: Sequence[str]) -> str:
    """The most specific error text: the last `error: ...` with a message on its line."""
    for line in reversed(lines):
        text = line.strip()
        if text.startswith("error:") and text[len("error:") :].strip():
            return text[len("error:") :].strip()
    meaningful = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith(_NOISE)]
    return meaningful[-1] if meaningful else ""


def _balanced(text: str) -> str:
    """Drop closing parentheses that were opened before the quoted text we cut out."""
    while text.endswith(")") and text.count(")") > text.count("("):
        text = text[:-1].rstrip()
    return text


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def input_name_for(url: str, opts: NixOptions | None = None) -> str | None:
    """Map a URL from a nix error back to the flake input it belongs to, when we can.

    An --override-input URL names its input exactly; a GitHub/GitLab URL of any form
    (github:O/R, https://github.com/O/R/..., https://api.github.com/repos/O/R/...)
    maps to the repository name, which is how rpbuild's flake names its inputs.
    """
    opts = opts or NixOptions()
    for name, override in opts.overrides:
        bare = override.removeprefix("path:").split("?")[0].rstrip("/")
        plain = url.removeprefix("path:").split("?")[0]
        if url == override or (bare and (plain == bare or plain.startswith(bare + "/"))):
            return name
        if _forge_repo(override) is not None and _forge_repo(override) == _forge_repo(url):
            return name  # github:O/R given, https://api.github.com/repos/O/R/... failed
    repo = _forge_repo(url)
    return repo[2] if repo else None


def _forge_repo(url: str) -> tuple[str, str, str] | None:
    """(forge, owner, repo) of a GitHub or GitLab URL in any of the forms nix uses."""
    for forge, pattern in (("github", _GITHUB), ("gitlab", _GITLAB)):
        m = pattern.match(url)
        if m:
            return forge, m.group("owner").lower(), m.group("repo").lower()
    return None


def _is_local(url: str) -> bool:
    """A path: URL or a bare path, which no network problem explains."""
    return url.startswith(("path:", "/", "file:", "git+file:"))


def _display_url(url: str) -> str:
    m = _GITHUB.match(url)
    if m:
        return f"github:{m.group('owner')}/{m.group('repo')}"
    m = _GITLAB.match(url)
    if m:
        return f"gitlab:{m.group('owner')}/{m.group('repo')}"
    return url


def _profile_error(text: str) -> dict[str, Any] | None:
    """The JSON object after the `rpbuild-error:` marker, if the error carries one."""
    idx = text.find(_MARKER)
    while idx != -1:
        candidate = text[idx + len(_MARKER) :].lstrip()
        try:
            obj, _ = json.JSONDecoder().raw_decode(candidate)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            return obj
        idx = text.find(_MARKER, idx + 1)
    return None


def profile_error_message(details: Mapping[str, Any]) -> str:
    """One line for a profile error, e.g. profile 'minimal', package 'x': nixpkgs has no ..."""
    who = []
    if details.get("profile") is not None:
        who.append(f"profile '{details['profile']}'")
    if details.get("package") is not None:
        who.append(f"package '{details['package']}'")
    prefix = ", ".join(who) or "profile"
    kind = str(details.get("kind", "error"))
    if kind == "missing-attribute":
        source = details.get("source") or "nixpkgs"
        attr = details.get("attr") or details.get("package")
        return f"{prefix}: {source} has no attribute '{attr}'"
    if details.get("message"):
        return _one_line(f"{prefix}: {details['message']}")
    rest = {k: v for k, v in details.items() if k not in ("kind", "profile", "package")}
    extra = ", ".join(f"{k}={v}" for k, v in rest.items())
    return _one_line(f"{prefix}: {kind}" + (f" ({extra})" if extra else ""))


def _build_log_from_text(lines: Sequence[str]) -> list[str]:
    """Plain-text nix quotes the log tail as `> line`; take those lines back."""
    return [
        ln.strip()[2:] if ln.strip().startswith("> ") else ln.strip()[1:]
        for ln in lines
        if ln.strip().startswith(">")
    ]


_INVALID_PATH = re.compile(r"path '(/[^']+)' is not valid")


def invalid_path(exc: NixError) -> str | None:
    """The store path nix refused as not valid (present on disk, unknown to its database)."""
    m = _INVALID_PATH.search(f"{exc.message}\n{exc.stderr_tail or ''}")
    return m.group(1) if m else None


def classify_failure(
    stderr: str, argv: list[str], returncode: int, opts: NixOptions | None = None
) -> NixError:
    """Turn a failed nix call's stderr (plain or internal-json) into one clear NixError.

    Checked in order: a profile error thrown by the rendered flake (`rpbuild-error:`
    marker), a failed builder, a lock file that does not match flake.nix, an input
    that cannot be fetched, and otherwise nix's last `error:` line. Messages are one
    line; log tails go to `stderr_tail`.
    """
    from rpbuild.progress import decode_stderr

    opts = opts or NixOptions()
    progress = decode_stderr(stderr)
    lines = _error_lines(progress)
    text = "\n".join(lines)
    tail = "\n".join(lines[-TAIL_LINES:])
    sub = _subcommand(argv)
    common: dict[str, Any] = {"argv": argv, "returncode": returncode}

    details = _profile_error(text)
    if details is not None:
        return ProfileEvalError(
            profile_error_message(details), details=details, stderr_tail=tail, **common
        )

    for pattern in _BUILDER_FAILED:
        m = pattern.search(text)
        if m is None:
            continue
        drv = m.group("drv")
        log = progress.build_log(drv) or _build_log_from_text(lines)
        code = _EXIT_CODE.search(text[m.start() :])
        why = f"builder exited with code {code.group('code')}" if code else "builder failed"
        cmd = log_command(drv, opts)
        return BuildFailed(
            f"build of {store_name(drv)} failed: {why} ({drv})",
            drv_path=drv,
            log_command=cmd,
            stderr_tail="\n".join(log[-TAIL_LINES:]),
            hint=f"full build log: {cmd}",
            **common,
        )

    if any(p in text for p in _LOCK_PATTERNS):
        return LockMismatch(
            f"flake.lock does not match flake.nix (nix {sub} would have to change the lock)",
            stderr_tail=tail,
            hint=LOCK_HINT,
            **common,
        )

    fetch = _fetch_failure(lines, opts)
    if fetch is not None:
        name, url, why = fetch
        if _CACHE_URL.search(url) and name is None:
            return FetchFailed(
                _one_line(f"cannot download from the binary cache: {url}: {why}"),
                input_name=None,
                url=url,
                stderr_tail=tail,
                hint="offline? add the nix option substituters '' to build everything locally",
                **common,
            )
        shown = _display_url(url)
        what = f"flake input '{name}' ({shown})" if name else f"flake input {shown}"
        if _subcommand(argv).startswith("flake"):
            # Updating the lock means asking the input's source; an override cannot help.
            hint = f"updating the lock needs the network: run it where {shown} is reachable"
        elif name and _is_local(url):
            hint = f"check the local path given for {name} (--override-input {name} path:DIR)"
        elif name:
            hint = f"no network? use a local copy: --override-input {name} path:/path/to/{name}"
        else:
            hint = "check the input's URL in flake.nix, or pass --override-input NAME path:..."
        return FetchFailed(
            _one_line(f"cannot fetch {what}" + (f": {why}" if why else "")),
            input_name=name,
            url=url,
            stderr_tail=tail,
            hint=hint,
            **common,
        )

    last = _last_error(lines) or f"exit code {returncode}"
    where = _FIRST_POSITION.search(text)
    if where is not None and where.group("file") == "flake.nix":
        at = f"flake.nix:{where.group('line')}:{where.group('col')}"
        owner = _flake_owner(argv, opts, int(where.group("line")), stderr)
        if owner == "":  # rpbuild's own (staged) flake.nix, rendered from the template
            return NixError(
                _one_line(f"{at}: {last}"),
                stderr_tail=tail,
                hint="flake.nix is rendered from templates/flake.nix.j2: check a project's "
                "own template, or run `rpbuild render`",
                **common,
            )
        whose = owner or "a flake input"
        return NixError(_one_line(f"{whose}: {at}: {last}"), stderr_tail=tail, **common)
    fatal = [ln for ln in stderr.splitlines() if ln.lstrip().startswith("fatal:")]
    for name, url in opts.overrides:
        # Only where nix (or git under it) complains, not wherever the URL is echoed.
        if any(m in said for m in _mentions(url) for said in (last, *fatal)):
            return NixError(
                _one_line(f"--override-input {name} {url}: {last}"), stderr_tail=tail, **common
            )
    return NixError(_one_line(f"nix {sub} failed: {last}"), stderr_tail=tail, **common)


_EXCERPT = re.compile(r"^\s*(\d+)\|\s?(.*)$")


def _flake_owner(argv: Sequence[str], opts: NixOptions, line: int, stderr: str) -> str | None:
    """Whose flake.nix nix quotes: "" for the flake rpbuild runs nix on, "--override-input
    NAME URL" for a local override, None when neither holds the quoted line (another input).

    nix names every flake by its store copy (/nix/store/HASH-source/flake.nix), so the
    line it quotes is compared with the candidates' own line.
    """
    excerpt = (m for m in map(_EXCERPT.match, stderr.splitlines()) if m is not None)
    quoted = next((m.group(2) for m in excerpt if int(m.group(1)) == line), None)
    if quoted is None:
        return None
    candidates: list[tuple[str, Path]] = [
        ("", Path(arg[len("path:") :].split("#", 1)[0].split("?", 1)[0]))
        for arg in argv
        if arg.startswith("path:")
    ]
    for name, url in opts.overrides:
        local = url.removeprefix("path:").split("?", 1)[0]
        if local.startswith("/"):
            candidates.append((f"--override-input {name} {url}", Path(local)))
    for owner, directory in candidates:
        try:
            lines = (directory / "flake.nix").read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        if 0 < line <= len(lines) and lines[line - 1].rstrip() == quoted.rstrip():
            return owner
    return None


def _mentions(url: str) -> list[str]:
    """How nix or the tools it runs may quote an override URL in an error."""
    found = [url] if url else []
    scheme, sep, rest = url.partition("://")
    if sep and scheme.endswith("file") and rest.startswith("/"):
        found.append(f"'{rest.split('?', 1)[0]}'")  # git: fatal: '/path' does not appear...
    return found


# Where nix says an evaluation error is; the first position is the error's own.
_FIRST_POSITION = re.compile(
    r"\bat /nix/store/[0-9a-z]{32}-source/(?P<file>[^:\s]+):(?P<line>\d+):(?P<col>\d+)"
)


def _fetch_failure(lines: Sequence[str], opts: NixOptions) -> tuple[str | None, str, str] | None:
    """(input name, URL, reason) when the error is about fetching something."""
    found: tuple[str | None, str, str] | None = None
    for line in lines:
        for pattern in _FETCH_PATTERNS:
            m = pattern.search(line)
            if m is None:
                continue
            url = m.group("url")
            if "getting status of" in m.group(0) and url.startswith(STORE_DIR + "/"):
                continue  # a file missing inside a fetched source: an eval error
            why = _balanced((m.groupdict().get("why") or "").strip().rstrip("."))
            name = input_name_for(url, opts)
            # The flake URL in "while fetching the input" beats the HTTP URL under it.
            if found is None or (found[0] is None and name is not None):
                found = (name, url, why or (found[2] if found else ""))
            elif not found[2] and why:
                found = (found[0], found[1], why)
            break
    if found is not None and not found[2]:
        hosts = [ln.strip() for ln in lines if "resolve host" in ln.lower()]
        if hosts:
            found = (found[0], found[1], "could not resolve host")
    return found


# -- operations --------------------------------------------------------------------


def _run(
    argv: list[str],
    opts: NixOptions,
    *,
    what: str,
    on_log: Notify | None = None,
) -> process.Result:
    """Run nix; a failure becomes the NixError `classify_failure` picks."""
    nix_version()  # ToolMissing with an install hint beats "command not found"

    def forward(line: str) -> None:
        if on_log is not None:
            on_log(line)

    result = process.run(
        argv, what=what, error=NixError, check=False, on_stderr_line=forward if on_log else None
    )
    if result.returncode != 0:
        raise classify_failure(result.stderr, argv, result.returncode, opts)
    return result


def build(
    installables: Sequence[str],
    opts: NixOptions | None = None,
    *,
    on_log: Notify | None = None,
    rebuild: bool = False,
    extra: Sequence[str] = (),
) -> list[BuildResult]:
    """Build installables without `result` links; results in the order given.

    nix 2.8 reorders `--json` results (and newer versions do not promise an
    order), so each installable gets its own `nix build`; later ones reuse what
    earlier ones built. on_log receives every internal-json stderr line (feed it
    to a `rpbuild.views.progress` view). rebuild passes `--rebuild`: build again and
    compare with the existing output (a reproducibility check).
    """
    opts = opts or NixOptions()
    version = nix_version()
    results = []
    for installable in installables:
        argv = build_argv([installable], opts, version=version, rebuild=rebuild, extra=extra)
        result = _run(argv, opts, what=f"nix build {installable}", on_log=on_log)
        if "--print-out-paths" in argv:
            results.append(parse_out_paths(result.stdout, installable))
        else:
            results.append(parse_build_json(result.stdout, installable))
    return results


def eval_json(installable: str, opts: NixOptions | None = None) -> Any:
    """Evaluate one attribute to JSON (never touching the lock file)."""
    opts = opts or NixOptions()
    result = _run(eval_argv(installable, opts), opts, what=f"nix eval {installable}")
    return json.loads(result.stdout)


def path_info(
    paths: Sequence[str],
    opts: NixOptions | None = None,
    *,
    recursive: bool = False,
    closure_size: bool = False,
) -> dict[str, PathInfo]:
    """Sizes and references of store paths (with their closure if recursive), one nix call."""
    opts = opts or NixOptions()
    if not paths:
        return {}
    argv = path_info_argv(
        paths, nix_version(), opts, recursive=recursive, closure_size=closure_size
    )
    result = process.run(argv, what="nix path-info", error=NixError, check=False)
    if result.stdout.strip():
        # nix 2.8 exits 1 for an unknown path but still prints it with "valid": false;
        # parse_path_info names that path, which beats "don't know how to build".
        infos = parse_path_info(result.stdout)
        if result.returncode == 0:
            return infos
    raise classify_failure(result.stderr, argv, result.returncode, opts)


def flake_metadata(flake_ref: str, opts: NixOptions | None = None) -> FlakeMetadata:
    """Where a flake is and the revisions its lock pins for each direct input."""
    opts = opts or NixOptions()
    result = _run(flake_metadata_argv(flake_ref, opts), opts, what="nix flake metadata")
    return parse_flake_metadata(result.stdout)


def lock_update(flake_dir: Path, inputs: Sequence[str], opts: NixOptions | None = None) -> None:
    """Re-lock the named inputs (all when none are named) of the flake in flake_dir."""
    opts = opts or NixOptions()
    argv = lock_update_argv(flake_dir, inputs, nix_version(), opts)
    _run(argv, opts, what="nix flake update")
