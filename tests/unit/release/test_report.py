"""The release report: written whole or not at all, the previous report found and read,
SUMMARY.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rpbuild.errors import RpbuildError
from rpbuild.release import model
from rpbuild.release import report as rep
from rpbuild.sizes import compare
from rpbuild.sizes_json import load_report_file

DATA = Path(__file__).resolve().parents[2] / "data"


def test_write_report_is_all_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "1.0.0"
    rep.write_report(target, {"a.txt": "A", "b.txt": "B"})
    assert sorted(p.name for p in target.iterdir()) == ["a.txt", "b.txt"]
    with pytest.raises(model.ReleaseRefused, match="appeared during the release"):
        rep.write_report(target, {"c.txt": "C"})
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["1.0.0"]


def _release_json(directory: Path, version: str, stamp: str, *, snapshot: bool = False) -> None:
    directory.mkdir(parents=True)
    doc: dict[str, Any] = {"format": rep.REPORT_FORMAT, "version": version}
    doc |= {"released_at": stamp, "snapshot": snapshot}
    (directory / rep.RELEASE_JSON).write_text(json.dumps(doc))


def test_previous_report_is_the_newest_release_next_to_this_one(tmp_path: Path) -> None:
    _release_json(tmp_path / "0.9.0", "0.9.0", "2024-01-01T00:00:00Z")
    _release_json(tmp_path / "1.0.0", "1.0.0", "2024-02-01T00:00:00Z")
    _release_json(tmp_path / "1.1.0-s", "1.1.0", "2024-03-01T00:00:00Z", snapshot=True)
    (tmp_path / "junk").mkdir()
    here = tmp_path / "1.1.0"
    assert rep.find_previous(here, None, snapshot=False) == tmp_path / "1.0.0"
    assert rep.find_previous(here, None, snapshot=True) == tmp_path / "1.1.0-s"
    assert rep.find_previous(here, tmp_path / "0.9.0", snapshot=False) == tmp_path / "0.9.0"
    assert rep.find_previous(None, None, snapshot=False) is None
    with pytest.raises(RpbuildError, match="not a release report"):
        rep.find_previous(here, tmp_path / "junk", snapshot=False)


def test_summary_names_inputs_digests_tags_and_size_changes() -> None:
    sizes = load_report_file(DATA / "sizes" / "report-v1.json")
    report: dict[str, Any] = {
        "version": "1.1.0",
        "snapshot": False,
        "released_at": "2024-03-01T00:00:00Z",
        "git": {"commit": "c" * 40, "clean": True},
        "rpbuild_version": "0.1.0",
        "nix_version": "2.8.0",
        "verified": True,
        "inputs": {
            "nixpkgs": {
                "rev": "a" * 40,
                "date": "2024-01-02",
                "nar_hash": "sha256-N",
                "source": "github:NixOS/nixpkgs",
                "override": None,
            }
        },
        "images": [
            {
                "profile": "minimal",
                "system": "x86_64-linux",
                "reference": "r/x:1.1.0-minimal",
                "manifest_digest": "sha256:" + "d" * 64,
                "image_id": "sha256:" + "e" * 64,
                "verified": True,
                "verification": {"reason": None},
            }
        ],
        "tags": [
            {
                "reference": "r/x:1.1.0-minimal",
                "digest": "sha256:" + "d" * 64,
                "kind": "image",
                "platforms": ["linux/amd64"],
            }
        ],
        "previous": {"version": "1.0.0", "report": "../1.0.0"},
    }
    text = rep.render_summary(
        report, {"x86_64-linux": sizes}, {"x86_64-linux": compare(sizes, sizes)}
    )
    assert text.startswith("# rosenpass images 1.1.0\n")
    assert f"commit `{'c' * 12}` (clean tree)" in text
    assert f"| nixpkgs | `{'a' * 40}` | 2024-01-02 |" in text
    assert "sha256:" + "d" * 64 in text and "sha256:" + "e" * 64 in text
    assert "against release 1.0.0" in text
    assert "## Image sizes: x86_64-linux" in text
    assert "### Changes" in text


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_staged_report_is_renamed_whole_or_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dirs" / "r"
    with rep.StagedReport(target) as staged:
        # Made up front, parents and all: the location is proved, not guessed.
        assert staged.tmp.parent == target.parent and staged.tmp.name.startswith("r.tmp-")
        staged.write("a.txt", "A")
    assert _tree(tmp_path) == []  # left without commit(): removed, parents too
    with pytest.raises(RpbuildError, match="boom"), rep.StagedReport(target) as staged:
        staged.write("a.txt", "A")
        raise RpbuildError("boom")
    assert _tree(tmp_path) == []
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "keep").write_text("someone else's")
    with rep.StagedReport(target) as staged:
        staged.write("a.txt", "A")
        staged.commit()
    assert _tree(tmp_path) == ["new", "new/dirs", "new/dirs/r", "new/dirs/r/a.txt", "new/keep"]
    assert (target.stat().st_mode & 0o777) == 0o755


def test_a_report_location_only_a_real_mkdir_refuses_is_refused_in_one_line() -> None:
    """os.access says yes to root for /proc; creating the directory says no."""
    report = Path("/proc/rpbuild-no-such-dir/r")
    with pytest.raises(RpbuildError) as info:
        rep.StagedReport(report)
    assert info.value.message == (
        f"--report {report}: cannot create /proc/rpbuild-no-such-dir: No such file or directory"
    )


def test_write_report_turns_os_errors_into_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RpbuildError, match=r"^--report .*/afile/r: cannot create it: "):
        rep.write_report(tmp_path / "afile" / "r", {"a.txt": "A"})


# -- a previous report of another shape -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("[]", "(top level): expected an object, got a list"),
        ('{"sizes": [1]}', "sizes: expected an object of system: file name, got a list"),
        ('{"version": "1"}', "sizes: expected an object of system: file name, got nothing"),
        (
            '{"sizes": {"x86_64-linux": 1}}',
            "sizes.x86_64-linux: expected a file name in the report directory, got a number",
        ),
        (
            '{"sizes": {"x86_64-linux": "../../etc/passwd"}}',
            "sizes.x86_64-linux: expected a file name in the report directory, got a string",
        ),
        ('{"sizes": {}, "version": null}', "version: expected a string, got null"),
        ('{"sizes": {}, "version": "1"}', "format: None, not 'rpbuild-release/1'"),
    ],
    ids=["list", "sizes-list", "no-sizes", "size-number", "size-path", "version", "format"],
)
def test_a_malformed_previous_report_names_the_file_and_the_key(
    tmp_path: Path, text: str, fault: str
) -> None:
    """`--previous` with release.json `[]` was an AttributeError traceback."""
    (tmp_path / rep.RELEASE_JSON).write_text(text)
    with pytest.raises(RpbuildError) as info:
        rep.load_previous(tmp_path)
    assert info.value.message.startswith(f"{tmp_path / rep.RELEASE_JSON}: {fault}")


def test_a_previous_report_rpbuild_wrote_is_read(tmp_path: Path) -> None:
    (tmp_path / "sizes-x86_64-linux.json").write_text(
        (DATA / "sizes" / "report-v1.json").read_text()
    )
    doc: dict[str, Any] = {"format": rep.REPORT_FORMAT, "version": "1.0.0"}
    doc["sizes"] = {"x86_64-linux": "sizes-x86_64-linux.json"}
    (tmp_path / rep.RELEASE_JSON).write_text(json.dumps(doc))
    data, reports = rep.load_previous(tmp_path)
    assert data["version"] == "1.0.0" and list(reports) == ["x86_64-linux"]


def test_the_terminal_lines_say_what_was_pushed_or_built_and_where_the_report_is() -> None:
    tag = {"reference": "r/x:1.0-minimal", "digest": "sha256:d"}
    pushed: dict[str, Any] = {"version": "1.0", "tags": [tag], "images": []}
    pushed["signing"] = {"method": "gpg", "key": "ABCD"}
    result = model.ReleaseResult(pushed, "", Path("reports/1.0"), verified=True)
    assert rep.summary_lines(result) == [
        "released 1.0:",
        "  r/x:1.0-minimal  sha256:d",
        "every image reproducible",
        "every tag signed (gpg, ABCD)",
        "report: reports/1.0 (with the SBOMs and the provenance)",
    ]
    image = {"profile": "minimal", "system": "x86_64-linux", "image_id": "sha256:e"}
    built: dict[str, Any] = {"version": "1.0", "tags": [], "images": [image]}
    result = model.ReleaseResult(built, "", None, verified=False)
    assert rep.summary_lines(result) == [
        "built 1.0 (not pushed: no --push):",
        "  minimal (x86_64-linux)  sha256:e",
        "NOT every image reproducible (see the report)",
    ]
