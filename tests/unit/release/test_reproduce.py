"""verify() compares image IDs in one form. Building and rebuilding for real is in
tests/integration/test_release.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from rpbuild import registry
from rpbuild.nix import NixOptions
from rpbuild.project import Project
from rpbuild.release import model, reproduce

# -- verify compares image IDs in one form ----------------------------------------------

HEX = "ab" * 32


def _verified(monkeypatch: pytest.MonkeyPatch, recorded_id: str) -> model.Verification:
    """verify() for an image whose archive ID is sha256:HEX, with recorded_id in the state."""
    archive = registry.ArchiveImage(
        path=Path("/x.tar"), image_id=f"sha256:{HEX}", config={}, repo_tags=()
    )
    image = model.BuiltImage(
        profile="minimal", system="x86_64-linux", out_path="/nix/store/x", fingerprint="f",
        archive=archive,
    )  # fmt: skip
    image.verification = model.Verification(
        profile="minimal", system="x86_64-linux", out_path="/nix/store/x",
        image_id=f"sha256:{HEX}", rebuilt_image_id=f"sha256:{HEX}", reproducible=True,
        reason=None,
    )  # fmt: skip
    record = SimpleNamespace(
        profile="minimal",
        system="x86_64-linux",
        fingerprint="f",
        out_path="/nix/store/x",
        image_id=recorded_id,
    )
    monkeypatch.setattr(reproduce, "check_system", lambda *_: None)
    monkeypatch.setattr(reproduce, "build_and_verify", lambda *_, **__: (None, [image]))
    monkeypatch.setattr(
        reproduce, "load_state", lambda _: (SimpleNamespace(images={"k": record}), None)
    )
    project = cast(Project, SimpleNamespace(state_dir=Path("/nonexistent")))
    return reproduce.verify(project, "minimal", "x86_64-linux", NixOptions())


@pytest.mark.parametrize("recorded", [HEX, f"sha256:{HEX}"], ids=["podman", "docker"])
def test_verify_accepts_the_same_id_with_or_without_the_prefix(
    monkeypatch: pytest.MonkeyPatch, recorded: str
) -> None:
    result = _verified(monkeypatch, recorded)
    assert result.reproducible and result.reason is None
    assert result.recorded_image_id == f"sha256:{HEX}"


def test_verify_still_sees_a_different_recorded_image(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _verified(monkeypatch, "cd" * 32)
    assert not result.reproducible
    assert result.reason == (
        f"the image `rpbuild image` loaded earlier is sha256:{'cd' * 32}, this build is sha256:{HEX}"
    )
