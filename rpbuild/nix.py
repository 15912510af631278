"""One function per nix operation, each returning typed values. (Work in progress.)"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PathInfo:
    """What `nix path-info --json` says of one store path, whatever the nix version."""

    path: str  # full store path, e.g. /nix/store/abc...-name
    nar_size: int
    closure_size: int | None  # only with -S
    references: tuple[str, ...]  # full store paths, sorted; may include the path itself
