"""Refusals decided before anything is built: the report location, the registry, overridden
inputs. check_pinned against a real git repository is in tests/integration/test_release.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpbuild import registry
from rpbuild.errors import RpbuildError
from rpbuild.nix import NixOptions
from rpbuild.release import model, preflight


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("below", ["r", "a/b/r"])
def test_report_under_a_file_is_refused_in_one_line(tmp_path: Path, below: str) -> None:
    (tmp_path / "afile").write_text("x")
    report = tmp_path / "afile" / below
    with pytest.raises(RpbuildError) as info:
        preflight.check_report_dir(report)
    assert info.value.message == f"--report {report}: {tmp_path / 'afile'} is not a directory"
    assert _tree(tmp_path) == ["afile"]


def test_report_location_checks_create_nothing(tmp_path: Path) -> None:
    preflight.check_report_dir(None)
    preflight.check_report_dir(tmp_path / "r")
    preflight.check_report_dir(tmp_path / "new" / "dirs" / "r")  # StagedReport makes them
    assert _tree(tmp_path) == []
    (tmp_path / "r").mkdir()
    with pytest.raises(model.ReleaseRefused, match="already exists"):
        preflight.check_report_dir(tmp_path / "r")


def test_a_snapshot_asks_the_registry_before_anything_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    def exists(ref: str, **_: object) -> bool:
        asked.append(ref)
        return True  # a snapshot may move its tags

    monkeypatch.setattr(registry, "exists", exists)
    options = model.ReleaseOptions(version="1.0.0", push="r.example/x", snapshot=True)
    preflight.check_registry(options, ["minimal", "debug"])
    assert asked == ["r.example/x:1.0.0-minimal-SNAPSHOT"]
    with pytest.raises(model.ReleaseRefused, match="already in the registry"):
        preflight.check_registry(
            model.ReleaseOptions(version="1.0.0", push="r.example/x"), ["debug"]
        )


@pytest.mark.parametrize(
    ("overrides", "snapshot", "allowed", "refused"),
    [
        ((), False, False, False),
        ((("rosenpass", "path:/src/rosenpass"),), False, False, True),
        ((("rosenpass", "path:/src/rosenpass"),), True, False, False),
        ((("rosenpass", "path:/src/rosenpass"),), False, True, False),
    ],
    ids=["pinned", "overridden", "snapshot", "allowed"],
)
def test_overridden_inputs_need_a_snapshot_or_an_explicit_allow(
    overrides: tuple[tuple[str, str], ...], snapshot: bool, allowed: bool, refused: bool
) -> None:
    options = model.ReleaseOptions(
        version="1.0.0",
        snapshot=snapshot,
        allow_override_input=allowed,
        nix=NixOptions(overrides=overrides),
    )
    if refused:
        with pytest.raises(model.ReleaseRefused, match=r"^--override-input rosenpass: "):
            preflight.check_overrides(options)
    else:
        preflight.check_overrides(options)
