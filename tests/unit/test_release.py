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

from rpbuild import lockfile, nix, process, registry
from rpbuild import release as rel
from rpbuild.errors import ProjectError, RpbuildError, ToolMissing
from rpbuild.nix import NixOptions
from rpbuild.project import Project, find_project
from rpbuild.sizes import compare
from rpbuild.sizes_json import load_report_file

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


TWO = ("x86_64-linux", "aarch64-linux")


def test_release_tags_include_each_architecture_with_several_systems() -> None:
    assert rel.release_tags("1.0", "debug", TWO[:1], snapshot=False) == ["1.0-debug"]
    assert rel.release_tags("1.0", "minimal", TWO, snapshot=True) == [
        "1.0-minimal-SNAPSHOT",
        "1.0-SNAPSHOT",
        "1.0-minimal-amd64-SNAPSHOT",
        "1.0-minimal-arm64-SNAPSHOT",
    ]


def test_a_version_that_fits_only_without_per_arch_tags_is_refused_naming_it() -> None:
    """With several systems the longest tag is VERSION-PROFILE-ARCH-SNAPSHOT; it once got
    through the check and failed in skopeo after other profiles were pushed."""
    profiles = ["debug", "with-wireguard"]
    # "-with-wireguard-SNAPSHOT" is 24 characters: 104 fit, and one system passes.
    version = "1." + "0" * 102
    rel.check_tags(version, profiles, TWO[:1], snapshot=True)
    # "-with-wireguard-arm64-SNAPSHOT" is 30: 98 fit.
    with pytest.raises(RpbuildError) as info:
        rel.check_tags(version, profiles, TWO, snapshot=True)
    assert info.value.message == (
        f"VERSION '{version}': too long: the tag '{version}-with-wireguard-amd64-SNAPSHOT' "
        "would have 134 characters, at most 128 (a version of up to 98 characters fits every tag)"
    )
    rel.check_tags(version[:98], profiles, TWO, snapshot=True)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("1.2.0 foo", "VERSION '1.2.0 foo': ' ' is not allowed in a tag"),
        ("1.2/0", "VERSION '1.2/0': '/' is not allowed in a tag"),
        ("-1.2.0", "VERSION '-1.2.0': a tag starts with a letter, a digit or '_'"),
        ("", "VERSION '': must not be empty"),
    ],
)
def test_a_version_that_spoils_every_tag_is_named(version: str, message: str) -> None:
    with pytest.raises(RpbuildError) as info:
        rel.check_tags(version, ["minimal"], TWO, snapshot=False)
    assert info.value.message.startswith(message)


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


def test_stream_image_reads_the_stream_and_writes_no_layer(tmp_path: Path) -> None:
    """Verifying a rebuild reads the stream script's output through tar (real tar, a
    real script): the same image as the archive, and nothing left in scratch."""
    config = {"architecture": "amd64", "os": "linux", "config": {"Labels": {"x": "y"}}}
    _archive(tmp_path / "image.tar", config)
    with tarfile.open(tmp_path / "image.tar", "a") as tar:  # a layer tar never extracted
        data = b"\0" * 4096
        info = tarfile.TarInfo("0123/layer.tar")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    script = tmp_path / "stream"
    script.write_text(f"#!/bin/sh\nexec cat {tmp_path / 'image.tar'}\n")
    script.chmod(0o755)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    streamed = registry.stream_image(script, scratch)
    assert streamed.image_id == registry.read_archive(tmp_path / "image.tar").image_id
    assert streamed.labels == {"x": "y"}
    assert list(scratch.iterdir()) == []
    script.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    with pytest.raises(registry.ArchiveStreamError):
        registry.stream_image(script, scratch)
    assert list(scratch.iterdir()) == []


def test_read_archive_refuses_garbage(tmp_path: Path) -> None:
    (tmp_path / "x.tar").write_bytes(b"not a tar")
    with pytest.raises(registry.ArchiveError, match="not a readable docker-archive"):
        registry.read_archive(tmp_path / "x.tar")


@pytest.mark.parametrize("config", [b"{not json", b"[1, 2]"])
def test_read_archive_refuses_a_bad_image_config(tmp_path: Path, config: bytes) -> None:
    """The config was parsed outside the error handling: a traceback."""
    archive = tmp_path / "x.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in (
            ("manifest.json", json.dumps([{"Config": "c.json", "RepoTags": ["a:b"]}]).encode()),
            ("c.json", config),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(registry.ArchiveError, match=r"x\.tar: "):
        registry.read_archive(archive)


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
    rel.check_report_dir(tmp_path / "r")
    rel.check_report_dir(tmp_path / "new" / "dirs" / "r")  # StagedReport makes them
    assert _tree(tmp_path) == []
    (tmp_path / "r").mkdir()
    with pytest.raises(rel.ReleaseRefused, match="already exists"):
        rel.check_report_dir(tmp_path / "r")


def test_staged_report_is_renamed_whole_or_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dirs" / "r"
    with rel.StagedReport(target) as staged:
        # Made up front, parents and all: the location is proved, not guessed.
        assert staged.tmp.parent == target.parent and staged.tmp.name.startswith("r.tmp-")
        staged.write("a.txt", "A")
    assert _tree(tmp_path) == []  # left without commit(): removed, parents too
    with pytest.raises(RpbuildError, match="boom"), rel.StagedReport(target) as staged:
        staged.write("a.txt", "A")
        raise RpbuildError("boom")
    assert _tree(tmp_path) == []
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "keep").write_text("someone else's")
    with rel.StagedReport(target) as staged:
        staged.write("a.txt", "A")
        staged.commit()
    assert _tree(tmp_path) == ["new", "new/dirs", "new/dirs/r", "new/dirs/r/a.txt", "new/keep"]
    assert (target.stat().st_mode & 0o777) == 0o755


def test_a_report_location_only_a_real_mkdir_refuses_is_refused_in_one_line() -> None:
    """os.access says yes to root for /proc; creating the directory says no."""
    report = Path("/proc/rpbuild-no-such-dir/r")
    with pytest.raises(RpbuildError) as info:
        rel.StagedReport(report)
    assert info.value.message == (
        f"--report {report}: cannot create /proc/rpbuild-no-such-dir: No such file or directory"
    )


def _no_build_past(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make each named step of release() fail the test if it is reached."""

    def never(*_: object, **__: object) -> None:
        raise AssertionError("reached past the preflight")

    for name in names:
        if name == "size_report":
            monkeypatch.setattr("rpbuild.measure.size_report", never)
        else:
            monkeypatch.setattr(rel, name, never)


def _pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = rel.Pinned(commit="c" * 40, clean=True, lock_bytes=b"{}", changes=())
    monkeypatch.setattr(rel, "check_pinned", lambda *_, **__: pinned)


def test_release_refuses_a_bad_report_location_before_anything_is_built(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`release --report FILE/r` once built, verified and pushed, then failed in a traceback."""
    _no_build_past(
        monkeypatch, "check_pinned", "build_and_verify", "_check_registry", "_push", "size_report"
    )
    (tmp_path / "afile").write_text("x")
    options = rel.ReleaseOptions(version="1.0.0", report=tmp_path / "afile" / "r")
    with pytest.raises(RpbuildError, match=r"^--report .*/afile/r: .*/afile is not a directory$"):
        rel.release(find_project(project), options)


def test_release_refuses_an_unwritable_report_location_before_anything_is_built(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root `--report /proc/x/y` passed the os.access check; the release built and
    pushed, then failed writing the report, and a retry was refused as already pushed."""
    _pinned(monkeypatch)
    _no_build_past(monkeypatch, "build_and_verify", "_push", "size_report")
    options = rel.ReleaseOptions(version="1.0.0", report=Path("/proc/rpbuild-x/y"))
    with pytest.raises(RpbuildError, match=r"^--report /proc/rpbuild-x/y: cannot create "):
        rel.release(find_project(project), options)


def test_release_writes_the_sizes_before_building_and_removes_all_on_failure(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pinned(monkeypatch)
    _no_build_past(monkeypatch, "_push")
    sizes = load_report_file(DATA / "sizes" / "report-v1.json")
    monkeypatch.setattr("rpbuild.measure.size_report", lambda *_, **__: sizes)
    monkeypatch.setattr(nix, "nix_version", lambda: "2.8.0")
    seen: list[str] = []

    def build(*_: object, **__: object) -> None:
        seen.extend(str(p.relative_to(tmp_path)) for p in tmp_path.glob("out/*/*"))
        raise RpbuildError("the build failed")

    monkeypatch.setattr(rel, "build_and_verify", build)
    report = tmp_path / "out" / "1.0.0"
    options = rel.ReleaseOptions(version="1.0.0", profiles=("minimal",), report=report)
    with pytest.raises(RpbuildError, match="the build failed"):
        rel.release(find_project(project), options)
    (staged,) = seen
    assert staged.startswith("out/1.0.0.tmp-") and staged.endswith("/sizes-x86_64-linux.json")
    assert not (tmp_path / "out").exists()


def test_write_report_turns_os_errors_into_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RpbuildError, match=r"^--report .*/afile/r: cannot create it: "):
        rel.write_report(tmp_path / "afile" / "r", {"a.txt": "A"})


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
    (tmp_path / rel.RELEASE_JSON).write_text(text)
    with pytest.raises(RpbuildError) as info:
        rel._previous_sizes(tmp_path)
    assert info.value.message.startswith(f"{tmp_path / rel.RELEASE_JSON}: {fault}")


def test_a_previous_report_rpbuild_wrote_is_read(tmp_path: Path) -> None:
    (tmp_path / "sizes-x86_64-linux.json").write_text(
        (DATA / "sizes" / "report-v1.json").read_text()
    )
    doc: dict[str, Any] = {"format": rel.REPORT_FORMAT, "version": "1.0.0"}
    doc["sizes"] = {"x86_64-linux": "sizes-x86_64-linux.json"}
    (tmp_path / rel.RELEASE_JSON).write_text(json.dumps(doc))
    data, reports = rel._previous_sizes(tmp_path)
    assert data["version"] == "1.0.0" and list(reports) == ["x86_64-linux"]


# -- what skopeo's failures mean ---------------------------------------------------------


def _skopeo_fails(monkeypatch: pytest.MonkeyPatch, message: str) -> None:
    """skopeo as installed, failing with this message as skopeo 1.9 prints it."""
    escaped = message.replace('"', '\\"')
    line = f'time="2024-01-01T00:00:00Z" level=fatal msg="{escaped}"\n'
    monkeypatch.setattr(process, "which", lambda _: "/usr/bin/skopeo")
    monkeypatch.setattr(process, "run", lambda argv, **_: process.Result(argv, 1, "", line))


PARSE = 'Error parsing image name "docker://r.example/x:1": '


@pytest.mark.parametrize(
    "message",
    [
        "reading manifest 1 in r.example/x: manifest unknown: manifest unknown",
        "reading manifest 1 in r.example/x: name unknown: repository name not known",
        "reading manifest 1 in r.example/x: StatusCode: 404, <html>",
    ],
)
def test_a_tag_the_registry_does_not_have_is_free(
    monkeypatch: pytest.MonkeyPatch, message: str
) -> None:
    _skopeo_fails(monkeypatch, PARSE + message)
    assert registry.exists("r.example/x:1") is False


@pytest.mark.parametrize(
    ("message", "hint"),
    [
        (
            'pinging container registry nonexistent.invalid: Get "http://nonexistent.invalid/v2/":'
            " dial tcp: lookup nonexistent.invalid on 10.0.0.53:53: no such host",
            "host name in --push does not resolve",
        ),
        (
            'pinging container registry 127.0.0.1:1: Get "http://127.0.0.1:1/v2/": '
            "dial tcp 127.0.0.1:1: connect: connection refused",
            "is the registry running",
        ),
        (
            'pinging container registry r.example: Get "https://r.example/v2/": '
            "x509: certificate signed by unknown authority",
            "TLS certificate is not trusted",
        ),
        (
            'pinging container registry r.example: Get "https://r.example/v2/": '
            "http: server gave HTTP response to HTTPS client",
            "use --no-tls-verify",
        ),
        (
            "reading manifest 1 in r.example/x: unauthorized: authentication required",
            "skopeo login",
        ),
        (
            "reading manifest 1 in r.example/x: denied: requested access to the resource is denied",
            "skopeo login",
        ),
        (
            # "not found" from something in front of the registry is no answer about the tag
            'pinging container registry r.example: Get "https://r.example/v2/": 404 not found',
            "is the registry running",
        ),
    ],
    ids=["dns", "refused", "x509", "plain-http", "unauthorized", "denied", "proxy-404"],
)
def test_a_registry_that_cannot_be_asked_is_an_error_with_a_fitting_hint(
    monkeypatch: pytest.MonkeyPatch, message: str, hint: str
) -> None:
    """ "no such host" once matched "no such" and counted as "tag not there yet"."""
    _skopeo_fails(monkeypatch, PARSE + message)
    with pytest.raises(registry.RegistryError) as info:
        registry.exists("r.example/x:1")
    assert info.value.message == f"cannot ask the registry for r.example/x:1: {message}"
    assert info.value.hint is not None and hint in info.value.hint


def test_no_registry_hint_for_a_failure_that_is_not_about_the_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ "is the registry running" was given for an invalid reference, too."""
    _skopeo_fails(monkeypatch, PARSE + "invalid reference format")
    with pytest.raises(registry.RegistryError) as info:
        registry.raw_manifest("r.example/x:1")
    assert info.value.message.endswith("failed: invalid reference format")
    assert info.value.hint is None


@pytest.mark.parametrize("snapshot", [False, True], ids=["release", "snapshot"])
def test_push_without_skopeo_is_refused_before_anything_is_built(
    project: Path, monkeypatch: pytest.MonkeyPatch, snapshot: bool
) -> None:
    """A snapshot never asked the registry up front, so it found skopeo missing at the push."""
    _no_build_past(
        monkeypatch, "check_pinned", "build_and_verify", "_check_registry", "_push", "size_report"
    )
    monkeypatch.setattr(process, "which", lambda _: None)
    options = rel.ReleaseOptions(version="1.0.0", push="r.example/x", snapshot=snapshot)
    with pytest.raises(ToolMissing, match=r"^skopeo is not installed; --push needs it$"):
        rel.release(find_project(project), options)


def test_a_snapshot_asks_the_registry_before_anything_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    def exists(ref: str, **_: object) -> bool:
        asked.append(ref)
        return True  # a snapshot may move its tags

    monkeypatch.setattr(registry, "exists", exists)
    options = rel.ReleaseOptions(version="1.0.0", push="r.example/x", snapshot=True)
    rel._check_registry(options, ["minimal", "debug"])
    assert asked == ["r.example/x:1.0.0-minimal-SNAPSHOT"]
    with pytest.raises(rel.ReleaseRefused, match="already in the registry"):
        rel._check_registry(rel.ReleaseOptions(version="1.0.0", push="r.example/x"), ["debug"])


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
