"""Build state: fingerprints, the state file and the project lock.

A fingerprint covers everything that defines an image. It is stored as an
image label (through the flake) and in `.rpbuild/state.json`; an image is up to
date only when both agree and the engine still holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rpbuild import TEMPLATE_VERSION
from rpbuild.errors import ProjectError
from rpbuild.fsutil import (
    LinkRefused,
    atomic_write,
    load_json,
    open_nofollow,
    read_bytes_nofollow,
    read_cache,
    write_cache,
)

STATE_FORMAT = "rpbuild-state/1"
FINGERPRINT_FORMAT = 1
# Not hashed when an override points at a local checkout: build products and VCS data.
_SKIP_DIRS = {".git", "target", "result", ".direnv", "__pycache__", ".rpbuild"}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def local_tree_digest(root: Path) -> str:
    """A digest of a local flake used as an override: names, modes and contents.

    Contents, not times, so that the same checkout gives the same fingerprint (and so
    the same image label) wherever it is; build products and VCS data are skipped.
    """
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        # Build products and VCS data only at the top (a nested `result/` may be source),
        # and a symlinked directory by its target: os.walk does not descend into it.
        skip = _SKIP_DIRS if dirpath == str(root) else set()
        links = [d for d in dirnames if d not in skip and (Path(dirpath) / d).is_symlink()]
        dirnames[:] = sorted(d for d in dirnames if d not in skip and d not in links)
        for name in sorted(f for f in [*filenames, *links] if f not in skip):
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            try:
                st = p.lstat()
                if p.is_symlink():
                    body = str(p.readlink()).encode()
                else:
                    body = hashlib.sha256(p.read_bytes()).digest()
            except OSError:
                continue
            h.update(f"{rel}\0{st.st_mode & 0o111}\0".encode() + body + b"\n")
    return h.hexdigest()


def local_path(url: str) -> Path | None:
    """The directory a path-like flake reference names (path:DIR, /DIR, ./DIR), else None."""
    if url.startswith("path:"):
        return Path(url[len("path:") :].split("?", 1)[0])
    if url.startswith(("/", "./", "../")):
        return Path(url.split("?", 1)[0])
    return None


def override_identity(url: str) -> str:
    """What an --override-input URL stands for. A local path by its contents (and query,
    such as ?dir=) alone: the same checkout named from another directory, or by another
    relative path, is the same input. Anything else by its text (see override_is_pinned).
    """
    local = local_path(url)
    if local is not None and local.is_dir():
        query = url.partition("?")[2]
        return f"path?{query}#{local_tree_digest(local)}"
    return url


_COMMIT = re.compile(r"(?:^|[/?&=])[0-9a-f]{40}(?:$|[/?&#])")


def override_is_pinned(url: str) -> bool:
    """Whether the override's text fixes what it fetches: a local path (its contents are
    digested) or a URL naming a commit or a NAR hash. A branch, a tag or a bare
    repository URL can move without any local change, so only nix can tell."""
    if local_path(url) is not None:
        return True
    return bool(_COMMIT.search(url)) or "narHash=" in url


def fingerprint(
    *,
    lock_bytes: bytes,
    profile_spec: Mapping[str, Any],
    system: str,
    templates: Mapping[str, str],
    follows: bool,
    override_ids: Sequence[tuple[str, str]],  # (input, override_identity(url))
) -> str:
    """sha256 over what defines one image.

    The rendered flake.nix is a function of the templates, the profiles and the
    settings, so those are hashed (per profile) instead of the whole file: editing
    one profile does not rebuild the images of the others.
    """
    doc = {
        "format": FINGERPRINT_FORMAT,
        "templateVersion": TEMPLATE_VERSION,
        "templates": {name: _sha256(text.encode()) for name, text in sorted(templates.items())},
        "lock": _sha256(lock_bytes),
        "profile": profile_spec,
        "system": system,
        "follows": follows,
        "overrides": [list(pair) for pair in override_ids],
    }
    return _sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode())


@dataclass(frozen=True)
class ImageRecord:
    profile: str
    system: str
    engine: str
    reference: str
    fingerprint: str
    image_id: str
    out_path: str
    size: int
    built_at: str

    @staticmethod
    def key_for(engine: str, system: str, reference: str) -> str:
        return f"{engine}/{system}/{reference}"

    @property
    def key(self) -> str:
        return self.key_for(self.engine, self.system, self.reference)


@dataclass
class State:
    images: dict[str, ImageRecord] = field(default_factory=dict)

    def to_json(self) -> str:
        return (
            json.dumps(
                {
                    "format": STATE_FORMAT,
                    "images": {k: asdict(v) for k, v in sorted(self.images.items())},
                },
                indent=2,
                sort_keys=True,
            )
            + "\n"
        )


def _record(key: object, value: object) -> ImageRecord:
    """One state record, every field of its type: a record of another shape is corrupt."""
    if not isinstance(key, str) or not isinstance(value, dict):
        raise TypeError("a record is not an object")
    names = {f.name for f in fields(ImageRecord)}
    if set(value) != names:
        raise KeyError(", ".join(sorted(set(map(str, value)) ^ names)))
    for name in names:
        wanted = int if name == "size" else str
        if not isinstance(value[name], wanted) or isinstance(value[name], bool):
            raise TypeError(f"{name} is not a {wanted.__name__}")
    return ImageRecord(**value)


def load_state(path: Path) -> tuple[State, str | None]:
    """The state file, or an empty state and a warning saying why it was not usable.

    Something other than a file there is an error now: it would only fail when the
    new state is saved, after the image was built and loaded. A symlink is not read
    (it is replaced when the state is saved).
    """
    if path.is_symlink():
        return State(), f"{path}: a symbolic link, not rpbuild's state file; rebuilding"
    if not path.exists():
        return State(), None
    if not path.is_file():
        raise ProjectError(f"{path}: not a regular file; remove it (rpbuild keeps its state there)")
    try:
        data = load_json(read_bytes_nofollow(path).decode("utf-8"))
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            return State(), f"{path}: not an rpbuild state file of this version; rebuilding"
        records = data["images"]
        if not isinstance(records, dict):
            raise TypeError("images is not an object")
        images = {str(k): _record(k, v) for k, v in records.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return State(), f"{path}: unreadable state file ({type(exc).__name__}); rebuilding"
    return State(images=images), None


def save_state(path: Path, state: State) -> None:
    atomic_write(path, state.to_json())


class HeldLock:
    """A lock file this process holds; remove() deletes it while still holding it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def remove(self) -> None:
        # Safe while held: a run waiting on the old file finds it gone once it gets
        # it (project_lock compares inodes) and takes a new one.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _open_lock(path: Path) -> int:
    try:
        return open_nofollow(path, os.O_RDWR | os.O_CREAT)
    except LinkRefused as exc:
        raise ProjectError(f"{exc.filename}: {exc.strerror}") from None


def _is_current(fd: int, path: Path) -> bool:
    """Whether the locked file is still the one at path (its holder may have removed it)."""
    held = os.fstat(fd)
    try:
        now = path.lstat()
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


@contextlib.contextmanager
def project_lock(path: Path, on_wait: Callable[[], object] | None = None) -> Iterator[HeldLock]:
    """Serialise rpbuild runs in one project; says so when it has to wait.

    The lock file is never followed through a symlink (see fsutil): a planted link
    is refused, by name, and the file it points at stays untouched.
    """
    if path.parent.exists() and not path.parent.is_dir():
        raise ProjectError(
            f"{path.parent}: not a directory; remove or rename it (rpbuild keeps its state there)"
        )
    waited = False
    while True:
        fd = _open_lock(path)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if on_wait is not None and not waited:
                    on_wait()
                waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        if _is_current(fd, path):
            break
        os.close(fd)  # removed by the run we waited for: lock the file there now
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield HeldLock(path)
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def hash_parts(parts: Mapping[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(parts):
        h.update(name.encode() + b"\0" + _sha256(parts[name]).encode() + b"\n")
    return h.hexdigest()


# flake.nix is a pure function of the profiles, templates, settings and rpbuild's version.
# Remembering the hash of those inputs with the hash of the file written from them lets the
# up-to-date path skip Jinja entirely (a measurable share of its time).
RENDER_CACHE = "render-cache.json"


def render_is_current(state_dir: Path, key: str, flake: Path) -> bool:
    try:
        current = _sha256(flake.read_bytes())
    except OSError:
        return False
    return bool(read_cache(state_dir / RENDER_CACHE, key) == current)


def remember_render(state_dir: Path, key: str, flake: Path) -> None:
    write_cache(state_dir / RENDER_CACHE, key, _sha256(flake.read_bytes()))
