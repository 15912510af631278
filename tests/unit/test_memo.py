"""The repeat-run memo's key: every input the full path reads changes it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rpbuild import memo
from rpbuild.project import find_project

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for name in ("profiles", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy2(REPO / "flake.lock", root / "flake.lock")
    (root / "flake.nix").write_text("{ }\n")
    return root


def key(root: Path, **request: str) -> str | None:
    req = memo.image_request("minimal", "x86_64-linux", None, None) | request
    return memo.input_key(find_project(root), req, ())


@pytest.mark.parametrize(
    "edit",
    [
        "profiles/minimal.toml",
        "profiles/debug.toml",
        "templates/flake.nix.j2",
        "templates/entrypoint.sh",
        "flake.lock",
        "flake.nix",
        "rpbuild.toml",
        "profiles/new.toml",
    ],
)
def test_every_input_file_changes_the_key(project: Path, edit: str) -> None:
    before = key(project)
    path = project / edit
    path.write_bytes((path.read_bytes() if path.exists() else b"") + b"\n# edited\n")
    assert key(project) != before


def test_the_request_and_local_overrides_change_the_key(project: Path, tmp_path: Path) -> None:
    proj = find_project(project)
    base = memo.image_request("minimal", "x86_64-linux", None, None)
    assert memo.input_key(proj, base, ()) == memo.input_key(proj, dict(base), ())
    for change in ({"tag": "me/x:y"}, {"system": "aarch64-linux"}, {"engine": "podman"}):
        assert memo.input_key(proj, base | change, ()) != memo.input_key(proj, base, ())
    checkout = tmp_path / "rp"
    checkout.mkdir()
    (checkout / "flake.nix").write_text("{ }\n")
    local = (("rosenpass", f"path:{checkout}"),)
    first = memo.input_key(proj, base, local)
    (checkout / "rp.sh").write_text("edited\n")
    assert memo.input_key(proj, base, local) not in (first, None)


@pytest.mark.parametrize(
    "override",
    [("nosuchinput", "path:/"), ("rosenpass", "path:/"), ("rosenpass", "path:/nonexistent")],
)
def test_an_override_the_full_path_refuses_is_never_digested(
    project: Path, override: tuple[str, str]
) -> None:
    """No key, and fast: `--override-input typo path:/` must not hash the disk first."""
    assert memo.input_key(find_project(project), {"command": "image"}, (override,)) is None


def test_a_moving_override_has_no_key(project: Path) -> None:
    moving = (("rosenpass", "github:rosenpass/rosenpass"),)
    assert memo.input_key(find_project(project), {"command": "image"}, moving) is None


def test_records_are_bounded_and_a_corrupt_memo_is_a_miss(project: Path) -> None:
    proj = find_project(project)
    for i in range(memo.MEMO_ENTRIES + 5):
        memo.record(proj, f"k{i}", i)
    assert memo.lookup(proj, "k0") is None
    assert memo.lookup(proj, f"k{memo.MEMO_ENTRIES + 4}") == memo.MEMO_ENTRIES + 4
    (proj.state_dir / memo.MEMO_FILE).write_text("{not json")
    assert memo.lookup(proj, "k70") is None


def test_editing_a_module_in_a_subpackage_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "rpbuild"
    (package / "views").mkdir(parents=True)
    (package / "__pycache__").mkdir()
    (package / "cli.py").write_text("x = 1\n")
    (package / "views" / "image.py").write_text("y = 1\n")
    monkeypatch.setattr(memo, "_PACKAGE_DIR", package)
    before = memo._code_identity()
    assert "cli.py:" in before and "views/image.py:" in before
    (package / "__pycache__" / "cli.cpython-311.py").write_text("not code\n")
    assert memo._code_identity() == before
    (package / "views" / "image.py").write_text("y = 22\n")
    assert memo._code_identity() != before
