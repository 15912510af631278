"""release() refuses before anything is built: each later step is made to fail the test if
it is reached. The whole release against real tools is in tests/integration/test_release.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpbuild import nix, process
from rpbuild.errors import RpbuildError, ToolMissing
from rpbuild.project import find_project
from rpbuild.release import model, preflight, run
from rpbuild.sizes_json import load_report_file

DATA = Path(__file__).resolve().parents[2] / "data"


#: Every step of release() after the preflight, by the name run.py calls it under.
EVERY_STEP = ("check_pinned", "build_and_verify", "check_registry", "push_release", "size_report")


def _no_build_past(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make each named step of release() fail the test if it is reached."""

    def never(*_: object, **__: object) -> None:
        raise AssertionError("reached past the preflight")

    for name in names:
        if name == "size_report":
            monkeypatch.setattr("rpbuild.measure.size_report", never)
        else:
            monkeypatch.setattr(run, name, never)


def _pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = preflight.Pinned(commit="c" * 40, clean=True, lock_bytes=b"{}", changes=())
    monkeypatch.setattr(run, "check_pinned", lambda *_, **__: pinned)


def test_release_refuses_a_bad_report_location_before_anything_is_built(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`release --report FILE/r` once built, verified and pushed, then failed in a traceback."""
    _no_build_past(monkeypatch, *EVERY_STEP)
    (tmp_path / "afile").write_text("x")
    options = model.ReleaseOptions(version="1.0.0", report=tmp_path / "afile" / "r")
    with pytest.raises(RpbuildError, match=r"^--report .*/afile/r: .*/afile is not a directory$"):
        run.release(find_project(project), options)


def test_release_refuses_an_unwritable_report_location_before_anything_is_built(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root `--report /proc/x/y` passed the os.access check; the release built and
    pushed, then failed writing the report, and a retry was refused as already pushed."""
    _pinned(monkeypatch)
    _no_build_past(monkeypatch, "build_and_verify", "push_release", "size_report")
    options = model.ReleaseOptions(version="1.0.0", report=Path("/proc/rpbuild-x/y"))
    with pytest.raises(RpbuildError, match=r"^--report /proc/rpbuild-x/y: cannot create "):
        run.release(find_project(project), options)


def test_release_writes_the_sizes_before_building_and_removes_all_on_failure(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pinned(monkeypatch)
    _no_build_past(monkeypatch, "push_release")
    sizes = load_report_file(DATA / "sizes" / "report-v1.json")
    monkeypatch.setattr("rpbuild.measure.size_report", lambda *_, **__: sizes)
    monkeypatch.setattr(nix, "nix_version", lambda: "2.8.0")
    seen: list[str] = []

    def build(*_: object, **__: object) -> None:
        seen.extend(str(p.relative_to(tmp_path)) for p in tmp_path.glob("out/*/*"))
        raise RpbuildError("the build failed")

    monkeypatch.setattr(run, "build_and_verify", build)
    report = tmp_path / "out" / "1.0.0"
    options = model.ReleaseOptions(version="1.0.0", profiles=("minimal",), report=report)
    with pytest.raises(RpbuildError, match="the build failed"):
        run.release(find_project(project), options)
    (staged,) = seen
    assert staged.startswith("out/1.0.0.tmp-") and staged.endswith("/sizes-x86_64-linux.json")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("snapshot", [False, True], ids=["release", "snapshot"])
def test_push_without_skopeo_is_refused_before_anything_is_built(
    project: Path, monkeypatch: pytest.MonkeyPatch, snapshot: bool
) -> None:
    """A snapshot never asked the registry up front, so it found skopeo missing at the push."""
    _no_build_past(monkeypatch, *EVERY_STEP)
    monkeypatch.setattr(process, "which", lambda _: None)
    options = model.ReleaseOptions(version="1.0.0", push="r.example/x", snapshot=snapshot)
    with pytest.raises(ToolMissing, match=r"^skopeo is not installed; --push needs it$"):
        run.release(find_project(project), options)
