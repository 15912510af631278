"""The pure parts of releases: tags, lock pins and diffs, manifest lists, archives, the report."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from rpbuild import lockfile, registry
from rpbuild import release as rel
from rpbuild.errors import ProjectError, RpbuildError
from rpbuild.nix import NixOptions
from rpbuild.project import Project, find_project
from rpbuild.sizes import compare, load_report_file

DATA = Path(__file__).resolve().parent.parent / "data"


def lock(**inputs: dict[str, Any]) -> dict[str, Any]:
    nodes: dict[str, Any] = {"root": {"inputs": {name: name for name in inputs}}}
    for name, locked in inputs.items():
        nodes[name] = {"locked": locked, "original": {}}
    return {"nodes": nodes, "root": "root", "version": 7}


GH = {"type": "github", "owner": "NixOS", "repo": "nixpkgs", "narHash": "sha256-AAAA"}


def test_tags_for_minimal_gets_the_bare_version_and_snapshot_comes_last() -> None:
    assert rel.tags_for("1.2.0", "minimal", snapshot=False) == ["1.2.0-minimal", "1.2.0"]
    assert rel.tags_for("1.2.0", "debug", snapshot=False) == ["1.2.0-debug"]
    assert rel.tags_for("1.2.0", "minimal", snapshot=True) == [
        "1.2.0-minimal-SNAPSHOT",
        "1.2.0-SNAPSHOT",
    ]
    assert rel.arch_tag("1.2.0", "debug", "aarch64-linux", snapshot=True) == (
        "1.2.0-debug-arm64-SNAPSHOT"
    )


@pytest.mark.parametrize(
    "repo", ["127.0.0.1:5000/rpbuild/rosenpass", "ghcr.io/user/rosenpass", "rosenpass"]
)
def test_repositories_accepted(repo: str) -> None:
    assert registry.check_repository(repo) == repo


@pytest.mark.parametrize(
    ("repo", "why"),
    [
        ("ghcr.io/user/rosenpass:1.0", "without a tag"),
        ("ghcr.io/user/rosenpass@sha256:abc", "without a tag"),
        ("https://ghcr.io/user/rosenpass", "not a repository"),
        ("ghcr.io/User/Rosenpass", "not a repository"),
    ],
)
def test_repositories_refused_with_reason(repo: str, why: str) -> None:
    with pytest.raises(RpbuildError, match=why):
        registry.check_repository(repo)


def test_tags_are_checked() -> None:
    assert registry.check_tag("1.0.0-minimal") == "1.0.0-minimal"
    with pytest.raises(RpbuildError, match="not a valid image tag"):
        registry.check_tag("1.0/0")
    with pytest.raises(RpbuildError, match="not a valid image tag"):
        registry.check_tag("x" * 129)


def test_pins_walk_nested_inputs_and_skip_follows() -> None:
    data = json.loads((DATA / "nix" / "flake-metadata.json").read_text())["locks"]
    pins = lockfile.pins(data)
    assert lockfile.direct_inputs(data) == ["nixpkgs", "rosenpass"]
    assert pins["nixpkgs"].rev == "63143ac2c9186be6d9da6035fa22620018c85932"
    assert pins["nixpkgs"].date == "2024-01-02"
    assert pins["nixpkgs"].source == "github:NixOS/nixpkgs"
    assert pins["rosenpass/fenix"].short == "81ab0b4f7ae9"
    # fenix's nixpkgs follows rosenpass/nixpkgs: listed once, under rosenpass
    assert "rosenpass/fenix/nixpkgs" not in pins
    assert "rosenpass/nixpkgs" in pins


def test_diff_reports_changed_new_and_removed_inputs() -> None:
    old = lock(nixpkgs={**GH, "rev": "a" * 40, "lastModified": 1700000000})
    new = lock(
        nixpkgs={**GH, "rev": "b" * 40, "lastModified": 1710000000},
        rosenpass={"type": "path", "path": "/src/rp", "narHash": "sha256-XYZ0123456789abc"},
    )
    changes = {c.path: c for c in lockfile.diff(old, new)}
    assert set(changes) == {"nixpkgs", "rosenpass"}
    assert changes["nixpkgs"].old is not None and changes["nixpkgs"].old.short == "a" * 12
    assert changes["rosenpass"].old is None
    assert changes["rosenpass"].new is not None
    assert changes["rosenpass"].new.short == "XYZ012345678"  # no rev: the hash
    assert lockfile.diff(new, new) == []
    assert [c.path for c in lockfile.diff(new, old) if c.new is None] == ["rosenpass"]


def test_lock_changes_table_and_no_change_message() -> None:
    old = lock(nixpkgs={**GH, "rev": "a" * 40, "lastModified": 1700000000})
    new = lock(nixpkgs={**GH, "rev": "b" * 40, "lastModified": 1710000000})
    result = rel.LockUpdate(
        changes=tuple(lockfile.diff(old, new)), created=False, path=Path("flake.lock")
    )
    lines = rel.lock_changes_lines(result)
    assert lines[0] == "flake.lock: updated; 1 input(s) changed"
    assert lines[1].split() == ["input", "old", "old", "date", "new", "new", "date"]
    assert lines[2].split() == ["nixpkgs", "a" * 12, "2023-11-14", "b" * 12, "2024-03-09"]
    same = rel.LockUpdate(changes=(), created=False, path=Path("flake.lock"), inputs=("nixpkgs",))
    assert rel.lock_changes_lines(same) == [
        "flake.lock: no change (nixpkgs already at the newest revision)"
    ]


def test_broken_lock_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "flake.lock"
    assert lockfile.read(path) is None
    path.write_text("{")
    with pytest.raises(ProjectError, match=r"flake.lock: not valid JSON"):
        lockfile.read(path)
    path.write_text("[]")
    with pytest.raises(ProjectError, match="not a flake lock file"):
        lockfile.read(path)


def _archive(path: Path, config: dict[str, Any]) -> bytes:
    config_bytes = json.dumps(config).encode()
    name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = json.dumps([{"Config": name, "RepoTags": ["rosenpass:minimal"], "Layers": []}])
    with tarfile.open(path, "w") as tar:
        for member, data in ((name, config_bytes), ("manifest.json", manifest.encode())):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return config_bytes


def test_read_archive_gives_docker_image_id_and_platform(tmp_path: Path) -> None:
    config = {"architecture": "arm64", "os": "linux", "config": {"Labels": {"a": "b"}}}
    config_bytes = _archive(tmp_path / "image.tar", config)
    image = registry.read_archive(tmp_path / "image.tar")
    assert image.image_id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    assert image.platform == {"architecture": "arm64", "os": "linux"}
    assert image.labels == {"a": "b"}
    assert image.repo_tags == ("rosenpass:minimal",)


def test_read_archive_refuses_garbage(tmp_path: Path) -> None:
    (tmp_path / "x.tar").write_bytes(b"not a tar")
    with pytest.raises(registry.ArchiveError, match="not a readable docker-archive"):
        registry.read_archive(tmp_path / "x.tar")


def test_manifest_list_describes_each_manifest_by_its_exact_bytes() -> None:
    raw = '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}'
    entries = [
        registry.ListEntry(manifest=raw, platform={"architecture": "amd64", "os": "linux"}),
        registry.ListEntry(manifest=raw + " ", platform={"architecture": "arm64", "os": "linux"}),
    ]
    doc = json.loads(registry.manifest_list(entries))
    assert doc["mediaType"] == registry.MANIFEST_LIST
    first, second = doc["manifests"]
    assert first["digest"] == "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
    assert first["size"] == len(raw)
    assert first["mediaType"].endswith("manifest.v2+json")
    assert second["platform"]["architecture"] == "arm64"
    assert second["digest"] != first["digest"]


def test_write_report_is_all_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "1.0.0"
    rel.write_report(target, {"a.txt": "A", "b.txt": "B"})
    assert sorted(p.name for p in target.iterdir()) == ["a.txt", "b.txt"]
    with pytest.raises(rel.ReleaseRefused, match="appeared during the release"):
        rel.write_report(target, {"c.txt": "C"})
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["1.0.0"]


def _release_json(directory: Path, version: str, stamp: str, *, snapshot: bool = False) -> None:
    directory.mkdir(parents=True)
    doc: dict[str, Any] = {"format": rel.REPORT_FORMAT, "version": version}
    doc |= {"released_at": stamp, "snapshot": snapshot}
    (directory / rel.RELEASE_JSON).write_text(json.dumps(doc))


def test_previous_report_is_the_newest_release_next_to_this_one(tmp_path: Path) -> None:
    _release_json(tmp_path / "0.9.0", "0.9.0", "2024-01-01T00:00:00Z")
    _release_json(tmp_path / "1.0.0", "1.0.0", "2024-02-01T00:00:00Z")
    _release_json(tmp_path / "1.1.0-s", "1.1.0", "2024-03-01T00:00:00Z", snapshot=True)
    (tmp_path / "junk").mkdir()
    here = tmp_path / "1.1.0"
    assert rel.find_previous(here, None, snapshot=False) == tmp_path / "1.0.0"
    assert rel.find_previous(here, None, snapshot=True) == tmp_path / "1.1.0-s"
    assert rel.find_previous(here, tmp_path / "0.9.0", snapshot=False) == tmp_path / "0.9.0"
    assert rel.find_previous(None, None, snapshot=False) is None
    with pytest.raises(RpbuildError, match="not a release report"):
        rel.find_previous(here, tmp_path / "junk", snapshot=False)


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
    text = rel.render_summary(
        report, {"x86_64-linux": sizes}, {"x86_64-linux": compare(sizes, sizes)}
    )
    assert text.startswith("# rosenpass images 1.1.0\n")
    assert f"commit `{'c' * 12}` (clean tree)" in text
    assert f"| nixpkgs | `{'a' * 40}` | 2024-01-02 |" in text
    assert "sha256:" + "d" * 64 in text and "sha256:" + "e" * 64 in text
    assert "against release 1.0.0" in text
    assert "## Image sizes: x86_64-linux" in text
    assert "### Changes" in text


def test_skopeo_message_drops_the_log_decoration() -> None:
    stderr = (
        'time="2024-01-01T00:00:00Z" level=fatal msg="initializing source '
        'docker://r/x:1: reading manifest 1 in r/x: manifest unknown: \\"x\\""\n'
    )
    assert registry.skopeo_message(stderr) == (
        'initializing source docker://r/x:1: reading manifest 1 in r/x: manifest unknown: "x"'
    )
    assert registry.skopeo_message("plain failure\n") == "plain failure"
    assert registry.skopeo_message("") == ""


# -- the report location is checked before anything is built --------------------------


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("below", ["r", "a/b/r"])
def test_report_under_a_file_is_refused_in_one_line(tmp_path: Path, below: str) -> None:
    (tmp_path / "afile").write_text("x")
    report = tmp_path / "afile" / below
    with pytest.raises(RpbuildError) as info:
        rel.check_report_dir(report)
    assert info.value.message == f"--report {report}: {tmp_path / 'afile'} is not a directory"
    assert _tree(tmp_path) == ["afile"]


def test_report_location_checks_create_nothing(tmp_path: Path) -> None:
    rel.check_report_dir(None)
    rel.check_report_dir(tmp_path / "r")  # parent exists: probed, nothing left
    rel.check_report_dir(tmp_path / "new" / "dirs" / "r")  # made at the end, not now
    assert _tree(tmp_path) == []
    (tmp_path / "r").mkdir()
    with pytest.raises(rel.ReleaseRefused, match="already exists"):
        rel.check_report_dir(tmp_path / "r")


def test_release_refuses_a_bad_report_location_before_anything_is_built(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`release --report FILE/r` once built, verified and pushed, then failed in a traceback."""

    def never(*_: object, **__: object) -> None:
        raise AssertionError("reached past the preflight")

    for name in ("check_pinned", "build_and_verify", "_check_tags_free", "_push"):
        monkeypatch.setattr(rel, name, never)
    monkeypatch.setattr("rpbuild.measure.size_report", never)
    (tmp_path / "afile").write_text("x")
    options = rel.ReleaseOptions(version="1.0.0", report=tmp_path / "afile" / "r")
    with pytest.raises(RpbuildError, match=r"^--report .*/afile/r: .*/afile is not a directory$"):
        rel.release(find_project(project), options)


def test_write_report_turns_os_errors_into_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RpbuildError, match=r"^--report .*/afile/r: cannot create it: "):
        rel.write_report(tmp_path / "afile" / "r", {"a.txt": "A"})


# -- verify compares image IDs in one form ----------------------------------------------

HEX = "ab" * 32


def _verified(monkeypatch: pytest.MonkeyPatch, recorded_id: str) -> rel.Verification:
    """verify() for an image whose archive ID is sha256:HEX, with recorded_id in the state."""
    archive = registry.ArchiveImage(
        path=Path("/x.tar"), image_id=f"sha256:{HEX}", config={}, repo_tags=()
    )
    image = rel.BuiltImage(
        profile="minimal", system="x86_64-linux", out_path="/nix/store/x", fingerprint="f",
        archive=archive,
    )  # fmt: skip
    image.verification = rel.Verification(
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
    monkeypatch.setattr(rel, "check_system", lambda *_: None)
    monkeypatch.setattr(rel, "build_and_verify", lambda *_, **__: (None, [image]))
    monkeypatch.setattr(rel, "load_state", lambda _: (SimpleNamespace(images={"k": record}), None))
    project = cast(Project, SimpleNamespace(state_dir=Path("/nonexistent")))
    return rel.verify(project, "minimal", "x86_64-linux", NixOptions())


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
    options = rel.ReleaseOptions(
        version="1.0.0",
        snapshot=snapshot,
        allow_override_input=allowed,
        nix=NixOptions(overrides=overrides),
    )
    if refused:
        with pytest.raises(rel.ReleaseRefused, match=r"^--override-input rosenpass: "):
            rel.check_overrides(options)
    else:
        rel.check_overrides(options)
