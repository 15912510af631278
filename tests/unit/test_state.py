"""What an --override-input stands for in the fingerprint, and whether its text pins it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rpbuild.state import override_identity, override_is_pinned


def test_a_local_checkout_is_the_same_input_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "rosenpass"
    checkout.mkdir()
    (checkout / "flake.nix").write_text("{ outputs = _: { }; }\n")
    (tmp_path / "project" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "project")
    here = override_identity("path:../rosenpass")
    assert override_identity(str(checkout)) == here
    monkeypatch.chdir(tmp_path / "project" / "sub")
    assert override_identity("path:../../rosenpass") == here
    assert override_identity("../../rosenpass") == here
    assert override_identity("path:../../rosenpass?dir=x") != here  # another flake in it
    (checkout / "flake.nix").write_text("{ outputs = _: { x = 1; }; }\n")
    assert override_identity("../../rosenpass") != here  # an edit is another input
    assert os.path.isdir("../../rosenpass")


@pytest.mark.parametrize(
    ("url", "pinned"),
    [
        ("path:/src/rosenpass", True),
        ("../rosenpass", True),
        ("github:rosenpass/rosenpass/" + "0123456789abcdef" * 2 + "01234567", True),
        ("git+https://example.org/rp.git?rev=" + "a" * 40, True),
        ("https://example.org/rp.tar.gz?narHash=sha256-xyz", True),
        ("github:rosenpass/rosenpass", False),
        ("github:rosenpass/rosenpass/main", False),
        ("git+file:///src/rosenpass", False),
        ("git+https://example.org/rp.git?ref=v1.0", False),
    ],
)
def test_only_a_commit_a_hash_or_a_local_path_pins_an_override(url: str, pinned: bool) -> None:
    assert override_is_pinned(url) is pinned


def test_the_digest_sees_nested_build_names_and_linked_directories(tmp_path: Path) -> None:
    """Only the top level's build products are skipped; a linked directory counts."""
    from rpbuild.state import local_tree_digest

    root = tmp_path / "checkout"
    (root / "src" / "result").mkdir(parents=True)
    (root / "src" / "result" / "a.rs").write_text("fn main() {}\n")
    (root / "result").symlink_to("/nix/store")  # nix build's link: not source
    (root / "vendored").symlink_to(root / "src")
    before = local_tree_digest(root)
    (root / "src" / "result" / "a.rs").write_text("fn main() { changed(); }\n")
    assert local_tree_digest(root) != before
    changed = local_tree_digest(root)
    (root / "vendored").unlink()
    (root / "vendored").symlink_to(root / "src" / "result")
    assert local_tree_digest(root) != changed
    (root / "result").unlink()
    (root / "result").symlink_to("/nix/var")
    moved = local_tree_digest(root)
    (root / "result").unlink()
    (root / "result").symlink_to("/nix/store")
    assert local_tree_digest(root) == moved  # the top-level result link does not count
