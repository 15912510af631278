"""Repeat runs answered from what the last full run recorded.

`rpbuild image` when nothing changed and `rpbuild sizes` when everything is built are
run again and again (CI jobs, shells). The full path parses the profiles, checks the
lock, renders and fingerprints before it makes the one call that must be made (the
engine's inspect, nix's path-info). Each full run that succeeds records its answer
under a key over the raw bytes of everything it read: the profile files, templates,
lock, settings and flake.nix, the command's options, local overrides by content, and
rpbuild itself. A repeat run with the same key makes only that one call. Any
difference or doubt is a miss: the full path runs, reports and records again.

This module imports only what those repeat runs use (bench/ counts every millisecond).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpbuild import TEMPLATE_VERSION, __version__
from rpbuild.fsutil import atomic_write, profile_files

if TYPE_CHECKING:
    from rpbuild.project import Project
    from rpbuild.sizes import SizeReport

MEMO_FILE = "memo.json"
MEMO_FORMAT = "rpbuild-memo/1"
MEMO_ENTRIES = 64  # enough for every profile x system x engine x tag a project uses
FINGERPRINT_LABEL = "dev.rpbuild.fingerprint"
_TEMPLATES = ("flake.nix.j2", "entrypoint.sh")
_PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ImageResult:
    """What `rpbuild image` reports, from a build or from a repeat run."""

    profile: str
    system: str
    engine: str
    reference: str
    image_id: str
    size: int
    seconds: float
    up_to_date: bool
    fingerprint: str
    out_path: str
    rendered: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "system": self.system,
            "engine": self.engine,
            "reference": self.reference,
            "image_id": self.image_id,
            "size": self.size,
            "seconds": round(self.seconds, 3),
            "up_to_date": self.up_to_date,
            "fingerprint": self.fingerprint,
            "out_path": self.out_path,
            "rendered": self.rendered,
        }


def _code_identity() -> str:
    """rpbuild's own modules by name, size and mtime: an edited checkout is a miss.

    Subpackages (rpbuild/views/, ...) count too; __pycache__ and _data (the wheel's
    templates and profiles, which are inputs of their own) are not code.
    """
    entries = []
    dirs = [""]
    while dirs:
        rel = dirs.pop(0)
        for entry in sorted(os.scandir(_PACKAGE_DIR / rel), key=lambda e: e.name):
            if entry.name.endswith(".py"):
                st = entry.stat()
                entries.append(f"{rel}{entry.name}:{st.st_size}:{st.st_mtime_ns}")
            elif not entry.name.startswith(("_", ".")) and entry.is_dir():
                dirs.append(f"{rel}{entry.name}/")
    return ";".join(entries)


def _read(path: Path) -> bytes:
    """A file's bytes; a missing one hashes differently from any content."""
    try:
        return b"F" + path.read_bytes()
    except FileNotFoundError:
        return b"-"


def input_key(
    project: Project, request: Mapping[str, Any], overrides: Sequence[tuple[str, str]]
) -> str | None:
    """The key over every input of one command; None when there can be none: an
    override that can move without any local change (only nix can tell), or a file
    that cannot be read (the full path says which)."""
    from rpbuild.state import override_identity, override_is_pinned

    if not all(override_is_pinned(url) for _, url in overrides):
        return None
    if overrides and not _plausible(project, overrides):
        return None
    h = hashlib.sha256()

    def part(name: str, data: bytes) -> None:
        h.update(f"{name}\0{len(data)}\0".encode() + data)

    try:
        part("rpbuild", f"{__version__}/{TEMPLATE_VERSION}/{project.builtin}".encode())
        part("code", _code_identity().encode())
        part("root", str(project.root).encode())
        part("request", json.dumps(request, sort_keys=True).encode())
        for path in profile_files(project.profiles_dir):
            part(f"profile:{path.name}", _read(path))
        for name in _TEMPLATES:
            part(f"template:{name}", _read(project.templates_dir / name))
        part("lock", _read(project.lock_path))
        part("settings", _read(project.root / "rpbuild.toml"))
        part("flake", _read(project.flake_path))
        for name, url in overrides:
            part(f"override:{name}", override_identity(url).encode())
    except OSError:
        return None
    return h.hexdigest()


def _plausible(project: Project, overrides: Sequence[tuple[str, str]]) -> bool:
    """Overrides the full path would accept: an input the lock has, a directory with a
    flake.nix. Anything else is the full path's to refuse (by name), and is never
    digested here: `--override-input typo path:/` must not hash the whole disk first."""
    from rpbuild.state import local_path

    try:
        lock = json.loads(project.lock_path.read_bytes())
        root = lock["nodes"][lock["root"]]["inputs"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    for name, url in overrides:
        if not isinstance(root, dict) or name.split("/", 1)[0] not in root:
            return False
        local = local_path(url)
        if local is not None and not (local / "flake.nix").is_file():
            return False
    return True


def _memo_path(project: Project) -> Path:
    return project.state_dir / MEMO_FILE


def _entries(project: Project) -> dict[str, Any]:
    try:
        doc = json.loads(_memo_path(project).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("format") != MEMO_FORMAT:
        return {}
    entries = doc.get("entries")
    return entries if isinstance(entries, dict) else {}


def lookup(project: Project, key: str | None) -> Any:
    return None if key is None else _entries(project).get(key)


def record(project: Project, key: str | None, value: Any) -> None:
    """Remember a full run's answer (the newest MEMO_ENTRIES); never fails the run."""
    if key is None:
        return
    entries = _entries(project)
    entries.pop(key, None)
    entries[key] = value
    while len(entries) > MEMO_ENTRIES:
        entries.pop(next(iter(entries)))
    with contextlib.suppress(OSError):
        atomic_write(
            _memo_path(project),
            json.dumps({"format": MEMO_FORMAT, "entries": entries}, sort_keys=False) + "\n",
        )


def image_request(profile: str, system: str, engine: str | None, tag: str | None) -> dict[str, Any]:
    return {"command": "image", "profile": profile, "system": system, "engine": engine, "tag": tag}


class _Busy(Exception):
    """Another rpbuild holds the project lock: the full path waits, saying so."""


def _no_wait() -> None:
    raise _Busy


def cached_image(
    project: Project,
    *,
    profile: str,
    system: str,
    engine: str | None,
    tag: str | None,
    overrides: Sequence[tuple[str, str]],
) -> ImageResult | None:
    """The up-to-date answer of `rpbuild image` with one `image inspect`, or None."""
    from rpbuild import engine as engines
    from rpbuild.state import ImageRecord, load_state, project_lock

    started = time.monotonic()
    key = input_key(project, image_request(profile, system, engine, tag), overrides)
    known = lookup(project, key)
    if not isinstance(known, dict):
        return None
    eng = engines.detect(engine)
    if known.get("engine") != eng.name or known.get("binary") != eng.binary:
        return None
    fp, reference = known.get("fingerprint"), known.get("reference")
    try:
        with project_lock(project.state_dir / "lock", on_wait=_no_wait):
            state, warning = load_state(project.state_dir / "state.json")
            rec = state.images.get(ImageRecord.key_for(eng.name, system, str(reference)))
            if warning or rec is None or rec.fingerprint != fp:
                return None
            info = engines.inspect(eng, rec.reference)
    except _Busy:
        return None
    if info is None or info.labels.get(FINGERPRINT_LABEL) != fp:
        return None
    return ImageResult(
        profile=profile,
        system=system,
        engine=eng.name,
        reference=rec.reference,
        image_id=info.id,
        size=info.size,
        seconds=time.monotonic() - started,
        up_to_date=True,
        fingerprint=rec.fingerprint,
        out_path=rec.out_path,
        rendered=False,
    )


def remember_image(project: Project, key: str | None, result: ImageResult, binary: str) -> None:
    record(
        project,
        key,
        {
            "engine": result.engine,
            "binary": binary,
            "fingerprint": result.fingerprint,
            "reference": result.reference,
        },
    )


def sizes_request(names: Sequence[str], system: str) -> dict[str, Any]:
    return {"command": "sizes", "profiles": list(names), "system": system}


def cached_sizes(
    project: Project,
    names: Sequence[str],
    system: str,
    nix_options: Any,
) -> SizeReport | None:
    """`rpbuild sizes` with everything built: the one `nix path-info` call, or None."""
    from rpbuild import nix
    from rpbuild.errors import NixError
    from rpbuild.sizes import ProfileInput, compute_report, loaded_image_sizes, select_profiles
    from rpbuild.state import load_state

    key = input_key(project, sizes_request(names, system), nix_options.overrides)
    known = lookup(project, key)
    if not isinstance(known, dict):
        return None
    try:
        profiles = known["profiles"]
        selected = list(known["selected"])
        roots = sorted({path for p in profiles for _, path in p["packages"]})
        if not all(Path(path).exists() for path in roots):
            return None  # collected, or never built: the full path builds it
        try:
            infos = nix.path_info(roots, nix_options, recursive=True, closure_size=True)
        except NixError:
            return None  # an invalid path, say: the full path rebuilds and says so
        state, _ = load_state(project.state_dir / "state.json")
        image_sizes = loaded_image_sizes(
            state.images.values(),
            {p["name"]: p["reference"] for p in profiles},
            system,
            {p["name"]: p["fingerprint"] for p in profiles},
        )
        inputs = [
            ProfileInput(
                name=p["name"],
                packages=[(str(n), str(path)) for n, path in p["packages"]],
                extends=p["extends"],
                budget=p["budget"],
                image_size=image_sizes.get(p["name"]),
            )
            for p in profiles
        ]
    except (KeyError, TypeError, ValueError):
        return None
    report = compute_report(system, infos, inputs, nix_version=str(nix.nix_version()))
    return select_profiles(report, selected)


def remember_sizes(
    project: Project,
    key: str | None,
    selected: Iterable[str],
    profiles: Iterable[Mapping[str, Any]],
) -> None:
    record(project, key, {"selected": list(selected), "profiles": list(profiles)})
