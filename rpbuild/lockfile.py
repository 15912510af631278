"""flake.lock read as data: what each input is pinned to, and what changed between two locks.

Pure functions over the lock's JSON, so `rpbuild lock update` and the release report
can say what an input is pinned to without asking nix (and without the network).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rpbuild.errors import ProjectError


@dataclass(frozen=True)
class Pin:
    """One locked input, named by its path from the root flake (`rosenpass/nixpkgs`)."""

    path: str
    type: str
    rev: str | None
    last_modified: int | None
    nar_hash: str | None
    source: str  # where it comes from: owner/repo, a URL or a local path

    @property
    def date(self) -> str | None:
        """The commit (or file) date nix records, as YYYY-MM-DD."""
        if self.last_modified is None:
            return None
        return datetime.fromtimestamp(self.last_modified, UTC).strftime("%Y-%m-%d")

    @property
    def short(self) -> str:
        """What identifies the pinned version for a human: the short rev, else the hash."""
        if self.rev:
            return self.rev[:12]
        if self.nar_hash:
            return self.nar_hash.removeprefix("sha256-")[:12]
        return "?"

    def as_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "source": self.source,
            "rev": self.rev,
            "last_modified": self.last_modified,
            "date": self.date,
            "nar_hash": self.nar_hash,
        }


@dataclass(frozen=True)
class Change:
    path: str
    old: Pin | None  # None: the input is new
    new: Pin | None  # None: the input is gone


def read(path: Path) -> dict[str, Any] | None:
    """The lock's JSON, or None when there is no lock; a broken lock names the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProjectError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProjectError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
        raise ProjectError(f"{path}: not a flake lock file (no 'nodes')")
    return data


#: The inputs flake.nix declares (templates/flake.nix.j2); each must be pinned.
FLAKE_INPUTS = ("nixpkgs", "rosenpass")
#: Lock file versions nix reads (2.8 and later write 7).
LOCK_VERSIONS = range(5, 8)
LOCK_FIX = "restore it from version control or run `rpbuild lock update`"


def check(path: Path, text: bytes, inputs: Sequence[str] = FLAKE_INPUTS) -> dict[str, Any]:
    """Refuse a lock before nix sees it, naming the file and the input at fault; the
    lock's data when it passes.

    nix reports a broken lock as a bare JSON parser error, and with --override-input
    it resolves an input the lock lacks from its URL (unpinned) instead of failing.
    """
    try:
        data = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProjectError(f"{path}: not valid JSON ({exc}); {LOCK_FIX}") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
        raise ProjectError(f"{path}: not a flake lock file (no 'nodes'); {LOCK_FIX}")
    version = data.get("version")
    if not isinstance(version, int) or version not in LOCK_VERSIONS:
        raise ProjectError(f"{path}: unsupported lock file version {version!r}; {LOCK_FIX}")
    pinned = pins(data)
    for name in inputs:
        if name not in pinned:
            raise ProjectError(
                f"{path}: input '{name}' is not pinned; run `rpbuild lock update {name}`"
            )
    return data


def _source(locked: Mapping[str, Any]) -> str:
    kind = str(locked.get("type", ""))
    if kind in ("github", "gitlab", "sourcehut"):
        return f"{kind}:{locked.get('owner', '?')}/{locked.get('repo', '?')}"
    if kind == "path" and "path" in locked:
        return f"path:{locked['path']}"
    if kind in ("git", "hg") and "url" in locked:
        return f"{kind}+{locked['url']}"
    if "url" in locked:
        return str(locked["url"])
    return kind or "?"


def pins(lock: Mapping[str, Any] | None) -> dict[str, Pin]:
    """Every input reachable from the root by name, keyed by its path.

    `follows` entries (lists) are skipped: they point at an input that is listed
    under its own path already.
    """
    if not lock:
        return {}
    nodes: Mapping[str, Any] = lock.get("nodes") or {}
    out: dict[str, Pin] = {}
    stack: list[tuple[str, str, frozenset[str]]] = [
        ("", str(lock.get("root", "root")), frozenset())
    ]
    while stack:
        prefix, node_name, seen = stack.pop()
        node = nodes.get(node_name)
        if not isinstance(node, dict) or node_name in seen:
            continue
        for name, ref in sorted((node.get("inputs") or {}).items()):
            if not isinstance(ref, str):
                continue
            path = f"{prefix}/{name}" if prefix else name
            child = nodes.get(ref)
            locked = child.get("locked") if isinstance(child, dict) else None
            if isinstance(locked, dict):
                rev = locked.get("rev")
                modified = locked.get("lastModified")
                nar = locked.get("narHash")
                out[path] = Pin(
                    path=path,
                    type=str(locked.get("type", "")),
                    rev=str(rev) if rev is not None else None,
                    last_modified=int(modified) if isinstance(modified, int) else None,
                    nar_hash=str(nar) if nar is not None else None,
                    source=_source(locked),
                )
            stack.append((path, ref, seen | {node_name}))
    return dict(sorted(out.items()))


def direct_inputs(lock: Mapping[str, Any] | None) -> list[str]:
    """Names of the root flake's own inputs, in the lock's order."""
    if not lock:
        return []
    nodes = lock.get("nodes") or {}
    root = nodes.get(str(lock.get("root", "root"))) or {}
    return list((root.get("inputs") or {}).keys())


def diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[Change]:
    """Inputs whose pin differs (rev, hash or date), appeared or disappeared; by path."""
    before, after = pins(old), pins(new)
    changes = []
    for path in sorted(set(before) | set(after)):
        a, b = before.get(path), after.get(path)
        if (
            a is None
            or b is None
            or (a.rev, a.nar_hash, a.last_modified, a.source)
            != (
                b.rev,
                b.nar_hash,
                b.last_modified,
                b.source,
            )
        ):
            changes.append(Change(path=path, old=a, new=b))
    return changes
