"""lockfile.check: a lock nix would misread, or that pins too little, is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rpbuild import lockfile
from rpbuild.errors import ProjectError
from tests.conftest import REPO

LOCK = REPO / "flake.lock"


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
