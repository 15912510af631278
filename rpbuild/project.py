"""Where a project's profiles, templates, lock and state live.

A project directory is one with a `profiles/` directory or an `rpbuild.toml` (it must then
have profiles and a flake.lock), found from the current directory upwards or given with
--project. Outside a project rpbuild uses the profiles, templates and lock shipped inside
the package, and keeps its generated files under the user's state directory.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rpbuild.errors import ProjectError
from rpbuild.fsutil import load_toml, profile_files

if TYPE_CHECKING:
    from rpbuild.profiles import Profile

SETTINGS_FILE = "rpbuild.toml"
SYSTEMS = ("x86_64-linux", "aarch64-linux")
_SETTINGS_KEYS = ("systems", "rosenpass_source", "rosenpass_follows_nixpkgs")
#: Where rosenpass and rp come from: nixpkgs' `rosenpass` and `rosenpass-tools` (built by
#: Hydra, so a binary cache serves them, with the image's one glibc), or the rosenpass
#: flake's `rosenpass` package (built from source on first use). See README.
ROSENPASS_SOURCES = ("nixpkgs", "flake")


def _package_data() -> Path:
    """Data shipped in the wheel; in a source checkout, the repository itself."""
    here = Path(__file__).resolve().parent
    bundled = here / "_data"
    return bundled if (bundled / "templates").is_dir() else here.parent


@dataclass(frozen=True)
class Settings:
    systems: tuple[str, ...] = SYSTEMS
    rosenpass_source: str = "nixpkgs"
    # Off by default: the pinned lock keeps rosenpass on the nixpkgs its authors
    # tested, at the price of a second glibc in the image (see README).
    rosenpass_follows_nixpkgs: bool = False


@dataclass(frozen=True)
class Project:
    root: Path
    profiles_dir: Path
    templates_dir: Path
    lock_path: Path
    flake_path: Path
    state_dir: Path
    settings: Settings
    builtin: bool  # True outside a project: the packaged defaults

    def load_profiles(self) -> dict[str, Profile]:
        """The project's profiles, with rosenpass from the source its settings name."""
        from rpbuild.profiles import load_profiles, with_rosenpass_source

        return with_rosenpass_source(
            load_profiles(self.profiles_dir), self.settings.rosenpass_source
        )

    def require_lock(self) -> Path:
        """flake.lock, checked before nix runs: nix's own message would not name it."""
        path = self.lock_path
        fix = "restore it from version control or create it with `rpbuild lock update`"
        if path.is_file():
            return path
        if path.is_dir():
            raise ProjectError(f"{path}: a directory, not a file; remove it, then {fix}")
        if path.exists():
            raise ProjectError(f"{path}: not a regular file; remove it, then {fix}")
        if path.is_symlink():
            raise ProjectError(f"{path}: a symlink to a file that does not exist; {fix}")
        raise ProjectError(f"{path}: missing flake.lock; {fix}")


def _exists(path: Path) -> bool:
    """Whether anything is at path, a dangling or looping symlink included."""
    return path.is_symlink() or path.exists()


def _is_project(path: Path) -> bool:
    """A directory meant as a project: profiles of its own, an rpbuild.toml, or a
    `profiles/` directory next to a flake.lock.

    Empty profiles/, a missing flake.lock or a broken rpbuild.toml are then errors,
    not a reason to fall back silently to the built-in profiles. A bare `profiles/`
    (say ~/profiles, above an unrelated checkout) does not make a project.
    """
    profiles = path / "profiles"
    if not profiles.is_dir():
        return _exists(path / SETTINGS_FILE)
    return (
        bool(profile_files(profiles))
        or _exists(path / SETTINGS_FILE)
        or _exists(path / "flake.lock")
    )


def _load_settings(root: Path) -> Settings:
    path = root / SETTINGS_FILE
    if not _exists(path):
        return Settings()
    if path.is_dir():
        raise ProjectError(f"{path}: a directory; rpbuild.toml must be a TOML file of settings")
    import tomllib  # only for projects that have settings: the repeat runs count it

    try:
        data = load_toml(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ProjectError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ProjectError(f"{path}: cannot read: {exc.strerror or exc}") from None
    for key in data:
        if key not in _SETTINGS_KEYS:
            raise ProjectError(
                f"{path}: unknown key '{key}' (allowed: {', '.join(_SETTINGS_KEYS)})"
            )
    systems = data.get("systems", list(SYSTEMS))
    if not isinstance(systems, list) or not systems or any(s not in SYSTEMS for s in systems):
        raise ProjectError(f"{path}: systems must be a non-empty list from {', '.join(SYSTEMS)}")
    follows = data.get("rosenpass_follows_nixpkgs", False)
    if not isinstance(follows, bool):
        raise ProjectError(f"{path}: rosenpass_follows_nixpkgs must be true or false")
    source = data.get("rosenpass_source", Settings.rosenpass_source)
    if source not in ROSENPASS_SOURCES:
        raise ProjectError(
            f"{path}: rosenpass_source must be one of "
            f"{', '.join(repr(s) for s in ROSENPASS_SOURCES)} (got {source!r})"
        )
    if follows and source != "flake":
        raise ProjectError(
            f"{path}: rosenpass_follows_nixpkgs applies only to rosenpass_source = 'flake' "
            "(rosenpass from nixpkgs already shares the image's nixpkgs)"
        )
    return Settings(
        systems=tuple(systems), rosenpass_source=str(source), rosenpass_follows_nixpkgs=follows
    )


def _state_home() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "rpbuild"


def find_project(explicit: Path | None = None, start: Path | None = None) -> Project:
    """The project rpbuild works on; the project's own files win over the packaged ones."""
    data = _package_data()
    if explicit is not None:
        if not explicit.is_dir():
            what = "not a directory" if _exists(explicit) else "no such directory"
            raise ProjectError(f"{explicit}: {what}; --project takes a project directory")
        root = explicit.resolve()
        if not _is_project(root):
            has = (
                "an empty profiles/ and no flake.lock"
                if (root / "profiles").is_dir()
                else (f"no profiles/ directory or {SETTINGS_FILE}")
            )
            raise ProjectError(
                f"{explicit}: not an rpbuild project ({has})",
                hint=f"run `rpbuild init {explicit}` to start one",
            )
    else:
        here = (start or Path.cwd()).resolve()
        root_or_none = next((p for p in (here, *here.parents) if _is_project(p)), None)
        if root_or_none is None:
            state = _state_home()
            return Project(
                root=state / "project",
                profiles_dir=data / "profiles",
                templates_dir=data / "templates",
                lock_path=data / "flake.lock",
                flake_path=state / "project" / "flake.nix",
                state_dir=state,
                settings=Settings(),
                builtin=True,
            )
        root = root_or_none
    templates = root / "templates"
    return Project(
        root=root,
        profiles_dir=root / "profiles",
        templates_dir=templates if (templates / "flake.nix.j2").is_file() else data / "templates",
        lock_path=root / "flake.lock",
        flake_path=root / "flake.nix",
        state_dir=root / ".rpbuild",
        settings=_load_settings(root),
        builtin=False,
    )


def _refusal(planned: list[Path]) -> str | None:
    """Why writing the planned files would fail or overwrite something, or None.

    Checked for every file before the first is written, so that a refusal leaves
    nothing half-created behind.
    """
    for dst in planned:
        if _exists(dst):
            kind = " (a directory)" if dst.is_dir() else ""
            return f"{dst}: already exists{kind}; not overwriting anything"
        # The nearest existing ancestor must be a directory we can create the rest in.
        parent = dst.parent
        while not _exists(parent) and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            return f"{parent}: exists and is not a directory, so {dst} cannot be created"
    return None


def init_project(target: str | os.PathLike[str]) -> list[Path]:
    """Start a project from the packaged profiles, templates and lock; never overwrites.

    Either every file is created or none: destinations are checked before anything is
    written, and what was written is removed again when a write fails. An empty target
    is refused: as a Path it would mean the current directory, which the user did not say.
    """
    from rpbuild.fsutil import atomic_write

    if not os.fspath(target):
        raise ProjectError(
            "init DIRECTORY: empty (''); name the directory to create the project in",
            hint="`rpbuild init .` creates it in the current directory",
        )
    root = Path(target)
    data = _package_data()
    sources = [
        *profile_files(data / "profiles"),
        *sorted((data / "templates").iterdir()),
        data / "flake.lock",
    ]
    planned = [(src, root / src.relative_to(data)) for src in sources]
    refusal = _refusal([dst for _, dst in planned])
    if refusal is not None:
        raise ProjectError(refusal)
    created: list[Path] = []  # files and directories, in the order they were made
    try:
        for src, dst in planned:
            missing = [d for d in (dst.parent, *dst.parent.parents) if not _exists(d)]
            for directory in reversed(missing):
                directory.mkdir()
                created.append(directory)
            atomic_write(dst, src.read_bytes())
            created.append(dst)
    except BaseException as exc:
        for path in reversed(created):
            with contextlib.suppress(OSError):
                if path.is_dir():
                    path.rmdir()
                else:
                    path.unlink()
        if isinstance(exc, OSError):
            where = exc.filename or root
            raise ProjectError(
                f"{where}: cannot write: {exc.strerror or exc}; nothing was created"
            ) from None
        raise
    return [dst for _, dst in planned]
