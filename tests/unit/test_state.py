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
