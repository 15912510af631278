"""Atomic file writes (a reader sees the old file or the new one, never half of one),
the small keyed JSON caches built on them, and bounded parsers of files a user or a
checkout can plant.

Nothing rpbuild writes under a project's `.rpbuild/` is written through a symlink: a
repository can commit one there (`git add -f`), and following it would let cloning and
building someone's project overwrite a file of the user's. Files are created with the
user's umask, like any other program's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

log = logging.getLogger("rpbuild.fsutil")

#: The directory of rpbuild's own files in a project; nothing at or below it may be a link.
STATE_DIR_NAME = ".rpbuild"


class LinkRefused(OSError):
    """A symlink where rpbuild keeps its own files (the message says which and why)."""

    def __init__(self, path: Path, what: str = "a symbolic link") -> None:
        super().__init__(
            errno.ELOOP,
            f"{what}, where rpbuild keeps its own files; not following it (remove it)",
            str(path),
        )


def umask() -> int:
    """The process's umask, read without changing it (Linux), else by setting it back."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _guarded(path: Path) -> list[Path]:
    """The directories at and below a `.rpbuild` component that path lies in (outermost
    first): those must be real directories. The project root and anything above it are
    the user's own choice, as is a state directory outside any project."""
    parts = path.parts
    if STATE_DIR_NAME not in parts[:-1]:
        return []
    start = parts.index(STATE_DIR_NAME)
    return [Path(*parts[: i + 1]) for i in range(start, len(parts) - 1)]


def make_dirs(directory: Path) -> None:
    """mkdir -p, refusing a symlink (or non-directory) at or below `.rpbuild`."""
    for d in _guarded(directory / "x"):
        try:
            st = d.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            raise LinkRefused(d)
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, "not a directory; remove or rename it", str(d))
    directory.mkdir(parents=True, exist_ok=True)  # its errors name the directory
    for d in _guarded(directory / "x"):  # made by someone else in between
        if d.is_symlink():
            raise LinkRefused(d)


def open_nofollow(path: Path, flags: int, mode: int = 0o666) -> int:
    """os.open that never follows a symlink in the last component (nor in `.rpbuild`),
    and only opens regular files; the mode is masked by the umask as usual."""
    make_dirs(path.parent)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise LinkRefused(path) from None
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file; remove it", str(path))
    os.set_blocking(fd, True)
    return fd


def sweep_temporaries(directory: Path) -> None:
    """Remove what atomic_write left in directory when its writer was killed (SIGKILL
    allows no cleanup). Only for directories whose every writer holds the caller's lock."""
    try:
        entries = list(directory.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                entry.unlink()


def atomic_write(path: Path, data: str | bytes, *, mode: int | None = None) -> None:
    """Write via a temporary file in the same directory and rename over the target.

    A symlink at the target is replaced, never written through (with a warning). New
    files get 0666 less the umask; a rewritten file keeps its mode. A failure names the
    target, never the temporary file (which is gone again).
    """

    payload = data.encode() if isinstance(data, str) else data
    make_dirs(path.parent)
    try:
        import tempfile  # not on the up-to-date paths (start-up time, bench/)

        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is None:
            try:
                st = path.lstat()
            except FileNotFoundError:
                st = None
            if st is not None and stat.S_ISLNK(st.st_mode):
                log.warning("warning: %s: was a symbolic link; replaced it, not followed", path)
                st = None
            mode = st.st_mode & 0o7777 if st is not None else 0o666 & ~umask()
        tmp.chmod(mode)
        tmp.replace(path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.filename in (None, name):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def profile_files(directory: Path) -> list[Path]:
    """The profile files in a directory, sorted; hidden files are not profiles.

    Editors leave dot-files next to the file being edited (Emacs's `.#minimal.toml`
    lock symlinks, often dangling); they must not break every command meanwhile.
    Here rather than in profiles.py: finding the project needs it, parsing them not.
    """
    return sorted(p for p in directory.glob("*.toml") if not p.name.startswith("."))


def read_bytes_nofollow(path: Path) -> bytes:
    """A regular file's bytes; a symlink or anything else is an OSError naming it."""
    fd = open_nofollow(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def is_stream_script(path: Path) -> bool:
    """streamLayeredImage gives a script that writes the image; buildLayeredImage an archive."""
    if not path.is_file():
        return False
    with path.open("rb") as fh:
        return fh.read(2) == b"#!"


def write_if_changed(path: Path, data: str | bytes) -> bool:
    """atomic_write unless the file already holds data; True when it wrote.

    Files rewritten on every run (the staged flake) then cost a read, not an fsync.
    """
    payload = data.encode() if isinstance(data, str) else data
    try:
        if read_bytes_nofollow(path) == payload:
            return False
    except OSError:
        pass
    atomic_write(path, payload)
    return True


# Parsers of data a user or a checkout controls. Python's parsers recurse, so a deeply
# nested document raises RecursionError (not ValueError) and would escape every
# `except ValueError`: it is turned into one.

NESTED_TOO_DEEPLY = "nested too deeply"


def load_json(text: str | bytes) -> Any:
    """json.loads whose every failure is a ValueError (deep nesting included)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(NESTED_TOO_DEEPLY) from None


def load_toml(text: str) -> dict[str, Any]:
    """tomllib.loads whose every failure is a TOMLDecodeError (deep nesting included)."""
    import tomllib  # only where TOML is read (start-up time of the repeat runs)

    try:
        return tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError(NESTED_TOO_DEEPLY) from None


# A cache file holds one value valid for one key (a hash of what produced the value).
# A missing, corrupt or stale cache is simply a miss, so callers never fail on one.


def read_cache(path: Path, key: str) -> Any:
    try:
        doc = load_json(read_bytes_nofollow(path).decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key:
        return None
    return doc.get("value")


def write_cache(path: Path, key: str, value: Any) -> None:
    atomic_write(path, json.dumps({"key": key, "value": value}, sort_keys=True) + "\n")
