"""What release.json records of an image, a tag and a verification, and which systems a
release builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpbuild import registry
from rpbuild.errors import ExitCode
from rpbuild.release import model

LABELS = {
    "dev.rpbuild.rosenpass.source": "nixpkgs",
    "dev.rpbuild.rosenpass.version": "0.2.2",
    "other": "x",
}


def verification(*, reproducible: bool) -> model.Verification:
    return model.Verification(
        profile="minimal",
        system="x86_64-linux",
        out_path="/nix/store/x",
        image_id="sha256:" + "1" * 64,
        rebuilt_image_id="sha256:" + "1" * 64,
        reproducible=reproducible,
        reason=None if reproducible else "differs",
        seconds=1.23456,
    )


def built(verified: model.Verification | None) -> model.BuiltImage:
    archive = registry.ArchiveImage(
        path=Path("/x.tar"),
        image_id="sha256:" + "1" * 64,
        config={"architecture": "arm64", "os": "linux", "config": {"Labels": LABELS}},
        repo_tags=(),
    )
    return model.BuiltImage(
        profile="minimal",
        system="aarch64-linux",
        out_path="/nix/store/x",
        fingerprint="f",
        archive=archive,
        verification=verified,
    )


def test_an_image_records_its_rosenpass_and_whether_it_was_verified() -> None:
    doc = built(verification(reproducible=True)).as_dict()
    assert doc["architecture"] == "arm64"
    assert doc["rosenpass"] == {"source": "nixpkgs", "version": "0.2.2", "rev": None}
    assert doc["labels"] == LABELS
    assert doc["verified"] is True
    assert doc["verification"]["seconds"] == 1.235
    assert doc["manifest_digest"] is None and doc["reference"] is None
    assert built(verification(reproducible=False)).as_dict()["verified"] is False
    unverified = built(None).as_dict()
    assert unverified["verified"] is False and unverified["verification"] is None


def test_a_verification_records_every_field() -> None:
    assert set(verification(reproducible=True).as_dict()) == {
        "profile", "system", "out_path", "image_id", "rebuilt_image_id", "recorded_image_id",
        "reproducible", "reason", "seconds",
    }  # fmt: skip


def test_a_pushed_tag_lists_its_platforms() -> None:
    tag = model.PushedTag("r/x:1", "sha256:a", "minimal", "list", ("linux/amd64", "linux/arm64"))
    assert tag.as_dict() == {
        "reference": "r/x:1",
        "digest": "sha256:a",
        "profile": "minimal",
        "kind": "list",
        "platforms": ["linux/amd64", "linux/arm64"],
    }


@pytest.mark.parametrize(
    ("systems", "expected"),
    [
        ((), ["x86_64-linux"]),
        (("aarch64-linux", "x86_64-linux", "aarch64-linux"), ["aarch64-linux", "x86_64-linux"]),
    ],
    ids=["default", "each-once-in-order"],
)
def test_the_systems_a_release_builds(systems: tuple[str, ...], expected: list[str]) -> None:
    assert model.release_systems(model.ReleaseOptions(version="1", systems=systems)) == expected


def test_refusals_are_failed_checks() -> None:
    assert model.ReleaseRefused("x").exit_code == ExitCode.CHECK_FAILED
    assert model.NotReproducible("x").exit_code == ExitCode.CHECK_FAILED
