"""Where a project's profiles, templates, lock and state live.

A project directory is one with `profiles/*.toml` (it must then have a flake.lock),
found from the current directory upwards or given with --project. Outside a project rpbuild
uses the profiles, templates and lock shipped inside the package, and keeps its
generated files under the user's state directory.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from rpbuild.errors import ProjectError

SETTINGS_FILE = "rpbuild.toml"
SYSTEMS = ("x86_64-linux", "aarch64-linux")
_SETTINGS_KEYS = ("systems", "rosenpass_follows_nixpkgs")


def _package_data() -> Path:
    """Data shipped in the wheel; in a source checkout, the repository itself."""
    here = Path(__file__).resolve().parent
    bundled = here / "_data"
    return bundled if (bundled / "templates").is_dir() else here.parent


@dataclass(frozen=True)
class Settings:
    systems: tuple[str, ...] = SYSTEMS
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

    def require_lock(self) -> Path:
        if not self.lock_path.is_file():
            raise ProjectError(
                f"{self.lock_path}: missing flake.lock; restore it from version control "
                "or create it with `rpbuild lock update`"
            )
        return self.lock_path


def _is_project(path: Path) -> bool:
    """A directory with profiles of its own; a missing flake.lock is then an error, not
    a reason to fall back silently to the built-in profiles."""
    profiles = path / "profiles"
    return profiles.is_dir() and any(profiles.glob("*.toml"))


def _load_settings(root: Path) -> Settings:
    path = root / SETTINGS_FILE
    if not path.is_file():
        return Settings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ProjectError(f"{path}: not UTF-8 text") from None
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
    return Settings(systems=tuple(systems), rosenpass_follows_nixpkgs=follows)


def _state_home() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "rpbuild"


def find_project(explicit: Path | None = None, start: Path | None = None) -> Project:
    """The project rpbuild works on; the project's own files win over the packaged ones."""
    data = _package_data()
    if explicit is not None:
        root = explicit.resolve()
        if not root.is_dir():
            raise ProjectError(f"{explicit}: no such project directory")
        if not (root / "profiles").is_dir():
            raise ProjectError(f"{explicit}: not an rpbuild project (no profiles/ directory)")
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


def init_project(target: Path) -> list[Path]:
    """Start a project from the packaged profiles, templates and lock; never overwrites."""
    from rpbuild.fsutil import atomic_write

    data = _package_data()
    sources = [
        *sorted((data / "profiles").glob("*.toml")),
        *sorted((data / "templates").iterdir()),
        data / "flake.lock",
    ]
    planned = [(src, target / src.relative_to(data)) for src in sources]
    existing = [dst for _, dst in planned if dst.exists()]
    if existing:
        raise ProjectError(f"{existing[0]}: already exists; not overwriting anything")
    for src, dst in planned:
        atomic_write(dst, src.read_bytes())
    return [dst for _, dst in planned]
