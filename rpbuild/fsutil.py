"""Atomic file writes (a reader sees the old file or the new one, never half of one),
and the small keyed JSON caches built on them."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: str | bytes, *, mode: int | None = None) -> None:
    """Write via a temporary file in the same directory and rename over the target.

    A failure names the target, never the temporary file (which is gone again).
    """
    import tempfile  # not at the top: the read-only repeat runs never write

    payload = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)  # its errors name the directory
    try:
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
            mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
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
        if path.read_bytes() == payload:
            return False
    except OSError:
        pass
    atomic_write(path, payload)
    return True


# A cache file holds one value valid for one key (a hash of what produced the value).
# A missing, corrupt or stale cache is simply a miss, so callers never fail on one.


def read_cache(path: Path, key: str) -> Any:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key:
        return None
    return doc.get("value")


def write_cache(path: Path, key: str, value: Any) -> None:
    atomic_write(path, json.dumps({"key": key, "value": value}, sort_keys=True) + "\n")
