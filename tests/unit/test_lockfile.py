"""flake.lock as data: a lock nix would misread, or that pins too little, is refused by name;
pins, diffs, and the table `lock update` prints. update_lock against the real nix is in
tests/integration/test_lock_update.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rpbuild import lockfile
from rpbuild.errors import ProjectError, RpbuildError
from rpbuild.nix import NixOptions
from rpbuild.project import find_project
from tests.conftest import REPO

LOCK = REPO / "flake.lock"
DATA = Path(__file__).resolve().parent.parent / "data"


def test_the_projects_lock_passes() -> None:
    lockfile.check(LOCK, LOCK.read_bytes())


def without_root_input(name: str) -> bytes:
    data = json.loads(LOCK.read_text())
    del data["nodes"][data["root"]]["inputs"][name]
    return json.dumps(data).encode()


def with_version(version: object) -> bytes:
    data = json.loads(LOCK.read_text())
    data["version"] = version
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"", "flake.lock: not valid JSON (Expecting value: line 1 column 1 (char 0))"),
        (b"{truncated", "flake.lock: not valid JSON"),
        (b"\xff\xfe", "flake.lock: not valid JSON"),
        (b"[]", "flake.lock: not a flake lock file (no 'nodes')"),
        (b'{"version": 7, "nodes": []}', "flake.lock: not a flake lock file (no 'nodes')"),
        (with_version(99), "flake.lock: unsupported lock file version 99"),
        (with_version("7"), "flake.lock: unsupported lock file version '7'"),
        (
            without_root_input("nixpkgs"),
            "flake.lock: input 'nixpkgs' is not pinned; run `rpbuild lock update nixpkgs`",
        ),
        (
            without_root_input("rosenpass"),
            "flake.lock: input 'rosenpass' is not pinned; run `rpbuild lock update rosenpass`",
        ),
    ],
    ids=["empty", "truncated", "not-utf8", "list", "nodes-list", "v99", "v-str", "no-np", "no-rp"],
)
def test_a_broken_lock_is_refused_naming_the_file(text: bytes, message: str) -> None:
    with pytest.raises(ProjectError) as info:
        lockfile.check(Path("flake.lock"), text)
    assert info.value.message.startswith(message), info.value.message
    assert "\n" not in info.value.message


def lock(**inputs: dict[str, Any]) -> dict[str, Any]:
    nodes: dict[str, Any] = {"root": {"inputs": {name: name for name in inputs}}}
    for name, locked in inputs.items():
        nodes[name] = {"locked": locked, "original": {}}
    return {"nodes": nodes, "root": "root", "version": 7}


GH = {"type": "github", "owner": "NixOS", "repo": "nixpkgs", "narHash": "sha256-AAAA"}


def test_pins_walk_nested_inputs_and_skip_follows() -> None:
    data = json.loads((DATA / "nix" / "flake-metadata.json").read_text())["locks"]
    pins = lockfile.pins(data)
    assert lockfile.direct_inputs(data) == ["nixpkgs", "rosenpass"]
    assert pins["nixpkgs"].rev == "63143ac2c9186be6d9da6035fa22620018c85932"
    assert pins["nixpkgs"].date == "2024-01-02"
    assert pins["nixpkgs"].source == "github:NixOS/nixpkgs"
    assert pins["rosenpass/fenix"].short == "81ab0b4f7ae9"
    # fenix's nixpkgs follows rosenpass/nixpkgs: listed once, under rosenpass
    assert "rosenpass/fenix/nixpkgs" not in pins
    assert "rosenpass/nixpkgs" in pins


def test_diff_reports_changed_new_and_removed_inputs() -> None:
    old = lock(nixpkgs={**GH, "rev": "a" * 40, "lastModified": 1700000000})
    new = lock(
        nixpkgs={**GH, "rev": "b" * 40, "lastModified": 1710000000},
        rosenpass={"type": "path", "path": "/src/rp", "narHash": "sha256-XYZ0123456789abc"},
    )
    changes = {c.path: c for c in lockfile.diff(old, new)}
    assert set(changes) == {"nixpkgs", "rosenpass"}
    assert changes["nixpkgs"].old is not None and changes["nixpkgs"].old.short == "a" * 12
    assert changes["rosenpass"].old is None
    assert changes["rosenpass"].new is not None
    assert changes["rosenpass"].new.short == "XYZ012345678"  # no rev: the hash
    assert lockfile.diff(new, new) == []
    assert [c.path for c in lockfile.diff(new, old) if c.new is None] == ["rosenpass"]


def test_lock_changes_table_and_no_change_message() -> None:
    old = lock(nixpkgs={**GH, "rev": "a" * 40, "lastModified": 1700000000})
    new = lock(nixpkgs={**GH, "rev": "b" * 40, "lastModified": 1710000000})
    result = lockfile.LockUpdate(
        changes=tuple(lockfile.diff(old, new)), created=False, path=Path("flake.lock")
    )
    lines = lockfile.lock_changes_lines(result)
    assert lines[0] == "flake.lock: updated; 1 input(s) changed"
    assert lines[1].split() == ["input", "old", "old", "date", "new", "new", "date"]
    assert lines[2].split() == ["nixpkgs", "a" * 12, "2023-11-14", "b" * 12, "2024-03-09"]
    same = lockfile.LockUpdate(
        changes=(), created=False, path=Path("flake.lock"), inputs=("nixpkgs",)
    )
    assert lockfile.lock_changes_lines(same) == [
        "flake.lock: no change (nixpkgs already at the newest revision)"
    ]


def test_broken_lock_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "flake.lock"
    assert lockfile.read(path) is None
    path.write_text("{")
    with pytest.raises(ProjectError, match=r"flake.lock: not valid JSON"):
        lockfile.read(path)
    path.write_text("[]")
    with pytest.raises(ProjectError, match="not a flake lock file"):
        lockfile.read(path)


# -- lock update's refusals, before nix is asked -------------------------------------------


def test_lock_update_outside_a_project_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rpbuild.nix.lock_update", _never)
    outside = find_project(start=tmp_path)
    assert outside.builtin
    with pytest.raises(ProjectError, match=r"^not in an rpbuild project: `rpbuild lock update`"):
        lockfile.update_lock(outside, [], NixOptions())


def test_lock_update_of_an_unknown_input_is_refused_and_changes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rpbuild.nix.lock_update", _never)
    before = (project / "flake.lock").read_bytes()
    with pytest.raises(RpbuildError) as info:
        lockfile.update_lock(find_project(project), ["nixpkgs", "nope/x"], NixOptions())
    assert info.value.message == (
        f"{project.resolve() / 'flake.lock'}: no flake input 'nope/x' (inputs: nixpkgs, rosenpass)"
    )
    assert (project / "flake.lock").read_bytes() == before


def _never(*_: object, **__: object) -> None:
    raise AssertionError("nix was asked")


def test_pinned_inputs_are_the_direct_inputs_with_their_overrides() -> None:
    data = lock(
        nixpkgs={**GH, "rev": "a" * 40, "lastModified": 1700000000},
        rosenpass={"type": "path", "path": "/src/rp", "narHash": "sha256-XYZ"},
    )
    inputs = lockfile.pinned_inputs(json.dumps(data).encode(), [("rosenpass", "path:/x")])
    assert list(inputs) == ["nixpkgs", "rosenpass"]
    assert inputs["nixpkgs"]["rev"] == "a" * 40 and inputs["nixpkgs"]["override"] is None
    assert inputs["nixpkgs"]["date"] == "2023-11-14"
    assert inputs["rosenpass"]["override"] == "path:/x"
    assert inputs["rosenpass"]["nar_hash"] == "sha256-XYZ"
