"""`rpbuild lock update` against the real nix, offline.

The project's template is changed so that its inputs are local git repositories
(copies of the stand-in flakes): nix locks them with a revision and a date, exactly
as it does GitHub inputs, without the network.
"""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import pytest

from tests.conftest import STANDIN, RunCli, commit_all, git

pytestmark = [
    pytest.mark.nix,
    pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed"),
    pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed"),
    pytest.mark.skipif(platform.machine() != "x86_64", reason="stand-ins build on x86_64"),
]

OFFLINE = ["--option", "substituters", ""]


@pytest.fixture
def local_inputs(project: Path, tmp_path: Path) -> dict[str, Path]:
    """nixpkgs and rosenpass as local git repositories the project's flake points at."""
    sources = {}
    for name in ("nixpkgs", "rosenpass"):
        src = tmp_path / "inputs" / name
        shutil.copytree(STANDIN / name, src)
        git(src, "init", "-q")
        commit_all(src, f"{name} stand-in")
        sources[name] = src
    template = project / "templates" / "flake.nix.j2"
    text = template.read_text()
    text = text.replace(
        '"github:NixOS/nixpkgs/nixos-unstable"', f'"git+file://{sources["nixpkgs"]}"'
    )
    text = text.replace('"github:rosenpass/rosenpass"', f'"git+file://{sources["rosenpass"]}"')
    template.write_text(text)
    (project / "flake.lock").unlink()
    return sources


def lock_update(rpbuild: RunCli, project: Path, *inputs: str) -> tuple[int, str, str]:
    done = rpbuild("--project", str(project), "lock", "update", *inputs, *OFFLINE)
    return done.returncode, done.stdout, done.stderr


def rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows by input name."""
    return {line.split()[0]: line.split() for line in stdout.splitlines()[2:]}


def test_lock_update_creates_updates_and_says_when_nothing_changed(
    project: Path, local_inputs: dict[str, Path], rpbuild: RunCli
) -> None:
    code, out, err = lock_update(rpbuild, project)
    assert code == 0, err
    assert out.startswith(f"{project / 'flake.lock'}: created; 2 input(s) changed")
    lock = json.loads((project / "flake.lock").read_text())
    revs = {n: lock["nodes"][n]["locked"]["rev"] for n in ("nixpkgs", "rosenpass")}
    assert revs["rosenpass"] == git(local_inputs["rosenpass"], "rev-parse", "HEAD").strip()
    table = rows(out)
    assert table["nixpkgs"][1:2] == ["(new)"] and table["nixpkgs"][2] == revs["nixpkgs"][:12]

    code, out, err = lock_update(rpbuild, project)
    assert code == 0, err
    assert (
        out.strip()
        == f"{project / 'flake.lock'}: no change (every input already at the newest revision)"
    )

    # A new rosenpass commit: only rosenpass moves, old and new rev and date shown.
    (local_inputs["rosenpass"] / "NEWS").write_text("a change\n")
    new_rev = commit_all(local_inputs["rosenpass"], "news")
    code, out, err = lock_update(rpbuild, project, "rosenpass")
    assert code == 0, err
    assert out.startswith(f"{project / 'flake.lock'}: updated; 1 input(s) changed")
    table = rows(out)
    assert set(table) == {"rosenpass"}
    _, old, old_date, new, new_date = table["rosenpass"]
    assert (old, new) == (revs["rosenpass"][:12], new_rev[:12])
    assert len(old_date) == len(new_date) == len("2024-01-02")
    lock = json.loads((project / "flake.lock").read_text())
    assert lock["nodes"]["rosenpass"]["locked"]["rev"] == new_rev
    assert lock["nodes"]["nixpkgs"]["locked"]["rev"] == revs["nixpkgs"]

    # --json: one document with its format, the changes as data.
    (local_inputs["rosenpass"] / "NEWS").write_text("another change\n")
    newer = commit_all(local_inputs["rosenpass"], "more news")
    code, out, err = lock_update(rpbuild, project, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["format"] == "rpbuild-lock-update/1" and document["changed"] is True
    [change] = document["changes"]
    assert change["input"] == "rosenpass"
    assert (change["old"]["rev"], change["new"]["rev"]) == (new_rev, newer)
    code, out, err = lock_update(rpbuild, project, "--json")
    assert json.loads(out) == {"format": "rpbuild-lock-update/1", "changed": False, "changes": []}


def test_failed_update_leaves_the_lock_as_it_was(
    project: Path, local_inputs: dict[str, Path], rpbuild: RunCli
) -> None:
    assert lock_update(rpbuild, project)[0] == 0
    before = (project / "flake.lock").read_bytes()
    shutil.rmtree(local_inputs["nixpkgs"])
    code, _, err = lock_update(rpbuild, project, "nixpkgs")
    assert code != 0
    errors = [line for line in err.splitlines() if line.startswith("rpbuild: error:")]
    assert len(errors) == 1 and "flake.lock: left as it was" in errors[0], err
    assert (project / "flake.lock").read_bytes() == before
    assert not [p for p in (project / ".rpbuild").iterdir() if p.name.startswith("lock-update-")]


def test_unknown_input_is_refused_by_name(
    project: Path, local_inputs: dict[str, Path], rpbuild: RunCli
) -> None:
    assert lock_update(rpbuild, project)[0] == 0
    code, _, err = lock_update(rpbuild, project, "nixpkgz")
    assert code == 2
    assert "no flake input 'nixpkgz' (inputs: nixpkgs, rosenpass)" in err
