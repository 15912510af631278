"""flake.lock read as data: what each input is pinned to, and what changed between two locks;
and `rpbuild lock update`, which changes it.

Reading is pure functions over the lock's JSON, so `rpbuild lock update` and the release
report can say what an input is pinned to without asking nix (and without the network).
update_lock imports nix, rendering and the project lock only when it runs: the build
pipeline imports this module, so this module must not import the pipeline.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpbuild.errors import NixError, ProjectError, RpbuildError
from rpbuild.fsutil import load_json
from rpbuild.notify import Notify, quiet

if TYPE_CHECKING:
    from rpbuild import nix
    from rpbuild.project import Project


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
        data = load_json(text)
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
        data = load_json(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProjectError(f"{path}: not valid JSON ({exc}); {LOCK_FIX}") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
        raise ProjectError(f"{path}: not a flake lock file (no 'nodes'); {LOCK_FIX}")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in LOCK_VERSIONS:
        raise ProjectError(f"{path}: unsupported lock file version {_short(version)}; {LOCK_FIX}")
    _check_shape(path, data)
    pinned = pins(data)
    for name in inputs:
        if name not in pinned:
            raise ProjectError(
                f"{path}: input '{name}' is not pinned; run `rpbuild lock update {name}`"
            )
    return data


def _short(value: object) -> str:
    """A value from the lock quoted in a message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_shape(path: Path, data: Mapping[str, Any]) -> None:
    """The structure nix relies on, checked so that a lock of another shape is one
    line naming the file rather than nix's internal assertion (2.8 asserts on a lock
    without `root`) or a type error here."""
    root = data.get("root")
    nodes: Mapping[str, Any] = data["nodes"]
    if not isinstance(root, str):
        raise ProjectError(f"{path}: no 'root' node named (a string); {LOCK_FIX}")
    if not isinstance(nodes.get(root), dict):
        raise ProjectError(f"{path}: the root node {_short(root)} is not in 'nodes'; {LOCK_FIX}")
    for name, node in nodes.items():
        where = f"{path}: node {_short(name)}"
        if not isinstance(node, dict):
            raise ProjectError(f"{where}: not an object; {LOCK_FIX}")
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            raise ProjectError(f"{where}: 'inputs' is not an object; {LOCK_FIX}")
        for input_name, ref in inputs.items():
            follows = isinstance(ref, list) and all(isinstance(r, str) for r in ref)
            if not follows and not (isinstance(ref, str) and isinstance(nodes.get(ref), dict)):
                raise ProjectError(
                    f"{where}: input {_short(input_name)} names no node ({_short(ref)}); {LOCK_FIX}"
                )
        for key in ("locked", "original"):
            if key in node and not isinstance(node[key], dict):
                raise ProjectError(f"{where}: '{key}' is not an object; {LOCK_FIX}")


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
    nodes = lock.get("nodes")
    if not isinstance(nodes, dict):
        return {}
    out: dict[str, Pin] = {}
    stack: list[tuple[str, str, frozenset[str]]] = [
        ("", str(lock.get("root", "root")), frozenset())
    ]
    while stack:
        prefix, node_name, seen = stack.pop()
        node = nodes.get(node_name)
        if not isinstance(node, dict) or node_name in seen:
            continue
        inputs = node.get("inputs")
        for name, ref in sorted(inputs.items() if isinstance(inputs, dict) else ()):
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


def input_paths(lock: Mapping[str, Any] | None) -> list[str]:
    """Every input path nix can override (`rosenpass`, `rosenpass/nixpkgs`), in the
    lock's order; an input that follows another is one too."""
    if not lock or not isinstance(lock.get("nodes"), dict):
        return []
    nodes: Mapping[str, Any] = lock["nodes"]
    out: list[str] = []
    stack = [("", str(lock.get("root", "root")), frozenset[str]())]
    while stack:
        prefix, node_name, seen = stack.pop(0)
        node = nodes.get(node_name)
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict) or node_name in seen:
            continue
        for name, ref in inputs.items():
            path = f"{prefix}/{name}" if prefix else str(name)
            out.append(path)
            if isinstance(ref, str):
                stack.append((path, ref, seen | {node_name}))
    return out


def direct_inputs(lock: Mapping[str, Any] | None) -> list[str]:
    """Names of the root flake's own inputs, in the lock's order."""
    if not lock:
        return []
    nodes = lock.get("nodes")
    root = nodes.get(str(lock.get("root", "root"))) if isinstance(nodes, dict) else None
    inputs = root.get("inputs") if isinstance(root, dict) else None
    return [str(name) for name in inputs] if isinstance(inputs, dict) else []


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


def pinned_inputs(
    lock_bytes: bytes, overrides: Sequence[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """The flake's direct inputs as flake.lock pins them, and any override used instead:
    what a release report and an SBOM record of where an image came from."""
    lock = load_json(lock_bytes)
    pins_ = pins(lock)
    override = dict(overrides)
    return {
        name: {**pins_[name].as_dict(), "override": override.get(name)}
        for name in direct_inputs(lock)
        if name in pins_
    }


# -- lock update ------------------------------------------------------------------


@dataclass(frozen=True)
class LockUpdate:
    changes: tuple[Change, ...]
    created: bool  # there was no flake.lock before
    path: Path
    inputs: tuple[str, ...] = ()  # what was asked for; none: every input


def update_lock(
    project: Project,
    inputs: Sequence[str],
    opts: nix.NixOptions,
    *,
    notify: Notify = quiet,
) -> LockUpdate:
    """`nix flake update` in a private copy; the project's lock is replaced atomically
    only when nix succeeded, so a failure leaves the old lock as it was."""
    from rpbuild import nix
    from rpbuild.fsutil import atomic_write
    from rpbuild.render import render_flake, write_flake
    from rpbuild.state import project_lock

    if project.builtin:
        raise ProjectError(
            "not in an rpbuild project: `rpbuild lock update` changes a project's flake.lock "
            "(use --project DIR)"
        )
    with project_lock(project.state_dir / "lock"):
        # Read under the lock: a concurrent update must not make the diff wrong.
        old = read(project.lock_path)
        known = direct_inputs(old)
        for name in inputs:
            if known and name.split("/", 1)[0] not in known:
                raise RpbuildError(
                    f"{project.lock_path}: no flake input '{name}' (inputs: {', '.join(known)})"
                )
        if write_flake(project, render_flake(project, project.load_profiles())):
            notify(f"{project.flake_path}: was stale, re-rendered from the profiles")
        project.state_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="lock-update-", dir=project.state_dir))
        try:
            shutil.copy2(project.flake_path, work / "flake.nix")
            if project.lock_path.is_file():
                shutil.copy2(project.lock_path, work / "flake.lock")
            notify("updating " + (", ".join(inputs) if inputs else "every input"))
            try:
                nix.lock_update(work, inputs, opts)
            except NixError as exc:
                raise NixError(
                    f"{project.lock_path}: left as it was: {exc.message}",
                    argv=exc.argv,
                    returncode=exc.returncode,
                    stderr_tail=exc.stderr_tail,
                    hint=exc.hint,
                ) from None
            new = read(work / "flake.lock")
            if new is None:
                raise RpbuildError(f"nix wrote no flake.lock for {project.flake_path}")
            new_bytes = (work / "flake.lock").read_bytes()
            old_bytes = project.lock_path.read_bytes() if project.lock_path.is_file() else None
            if new_bytes != old_bytes:
                atomic_write(project.lock_path, new_bytes)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return LockUpdate(
        changes=tuple(diff(old, new)),
        created=old is None,
        path=project.lock_path,
        inputs=tuple(inputs),
    )


def lock_changes_lines(result: LockUpdate) -> list[str]:
    """A plain table of the changed inputs: input, old rev and date, new rev and date."""
    if not result.changes:
        asked = ", ".join(result.inputs) if result.inputs else "every input"
        return [f"{result.path}: no change ({asked} already at the newest revision)"]
    rows = [("input", "old", "old date", "new", "new date")]
    for change in result.changes:
        old, new = change.old, change.new
        rows.append(
            (
                change.path,
                old.short if old else "(new)",
                (old.date or "–") if old else "",
                new.short if new else "(removed)",
                (new.date or "–") if new else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    verb = "created" if result.created else "updated"
    return [f"{result.path}: {verb}; {len(result.changes)} input(s) changed", *lines]
