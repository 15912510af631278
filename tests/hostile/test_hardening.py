"""Hostile inputs: planted symlinks, deep nesting, wrong shapes, impossible dates and
control characters. Each is refused in one line naming what is at fault, or (state and
caches) is a warning and a rebuild; nothing is written through a link."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from rpbuild import build, lockfile, nix
from rpbuild.errors import ProfileError, ProjectError, RpbuildError, one_line
from rpbuild.fsutil import atomic_write, load_json, make_dirs, read_cache, write_cache
from rpbuild.profiles import instant_problem, load_profiles
from rpbuild.state import ImageRecord, State, load_state, project_lock, save_state
from tests.conftest import REPO, Run, RunCli

DEEP = 50_000


def one_error_line(run: Run) -> str:
    """The contract for a user's mistake: non-zero, exactly one error line, no traceback."""
    assert run.returncode != 0, run
    assert "Traceback" not in run.stderr, run.stderr
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("rpbuild: error:")]
    assert len(errors) == 1, run.stderr
    return errors[0]


# -- symlinks under .rpbuild ---------------------------------------------------------


def test_a_planted_lock_link_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    state = tmp_path / "project" / ".rpbuild"
    state.mkdir(parents=True)
    (state / "lock").symlink_to(victim)
    with (
        pytest.raises(ProjectError, match=r"\.rpbuild/lock: a symbolic link"),
        project_lock(state / "lock"),
    ):
        pass
    assert victim.read_text() == "precious\n"


def test_rpbuild_image_refuses_a_planted_lock_link(
    rpbuild: RunCli, project: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    before = victim.stat()
    (project / ".rpbuild").mkdir()
    (project / ".rpbuild" / "lock").symlink_to(victim)
    run = rpbuild("image", "--profile", "minimal", cwd=project)
    line = one_error_line(run)
    assert ".rpbuild/lock: a symbolic link" in line
    after = victim.stat()
    assert victim.read_text() == "precious\n"
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_a_linked_state_directory_is_never_written_into(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "project"
    root.mkdir()
    (root / ".rpbuild").symlink_to(elsewhere, target_is_directory=True)
    with (
        pytest.raises(ProjectError, match="symbolic link"),
        project_lock(root / ".rpbuild" / "lock"),
    ):
        pass
    with pytest.raises(OSError, match="symbolic link"):
        atomic_write(root / ".rpbuild" / "state.json", "{}")
    with pytest.raises(OSError, match="symbolic link"):
        make_dirs(root / ".rpbuild" / "flake")
    assert list(elsewhere.iterdir()) == []
    # One level down as well: .rpbuild real, .rpbuild/topology a link.
    (root / ".rpbuild").unlink()
    (root / ".rpbuild").mkdir()
    (root / ".rpbuild" / "topology").symlink_to(elsewhere, target_is_directory=True)
    with (
        pytest.raises(ProjectError, match="topology: a symbolic link"),
        project_lock(root / ".rpbuild" / "topology" / "t.lock"),
    ):
        pass
    assert list(elsewhere.iterdir()) == []


def test_a_linked_state_file_or_cache_is_replaced_with_a_warning_not_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text('{"key": "k", "value": "from the victim"}\n')
    state_dir = tmp_path / ".rpbuild"
    state_dir.mkdir()
    (state_dir / "cache.json").symlink_to(victim)
    assert read_cache(state_dir / "cache.json", "k") is None  # not read through the link
    write_cache(state_dir / "cache.json", "k", "ours")
    assert "was a symbolic link; replaced it" in caplog.text
    assert not (state_dir / "cache.json").is_symlink()
    assert victim.read_text() == '{"key": "k", "value": "from the victim"}\n'
    (state_dir / "state.json").symlink_to(victim)
    state, warning = load_state(state_dir / "state.json")
    assert state.images == {} and warning is not None and "symbolic link" in warning


@pytest.mark.parametrize("mask", [0o077, 0o022, 0o002])
def test_state_files_and_lock_follow_the_umask(tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        state_dir = tmp_path / "p" / ".rpbuild"
        with project_lock(state_dir / "lock"):
            save_state(state_dir / "state.json", State())
            write_cache(state_dir / "render-cache.json", "k", 1)
    finally:
        os.umask(old)
    for name in ("lock", "state.json", "render-cache.json"):
        assert stat.S_IMODE((state_dir / name).stat().st_mode) == 0o666 & ~mask, name
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o777 & ~mask
    assert not [p for p in state_dir.iterdir() if p.name.endswith(".tmp")]


# -- bounded parsers -------------------------------------------------------------------


def test_deep_json_is_a_value_error_not_a_recursion_error() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        load_json("[" * DEEP + "]" * DEEP)


def test_a_deeply_nested_profile_is_one_line_naming_it(rpbuild: RunCli, project: Path) -> None:
    (project / "profiles" / "deep.toml").write_text("x = " + "[" * DEEP + "]" * DEEP + "\n")
    line = one_error_line(rpbuild("profiles", cwd=project))
    assert "profiles/deep.toml: invalid TOML: nested too deeply" in line


@pytest.mark.parametrize(
    ("lock", "says"),
    [
        ("[" * DEEP + "]" * DEEP, "nested too deeply"),
        (
            '{"version": 7, "nodes": {"root": {"inputs": ["nixpkgs"]}}, "root": "root"}',
            "'inputs' is not an object",
        ),
        ('{"version": 7, "nodes": {"root": {"inputs": {}}}}', "no 'root' node"),
        ('{"version": 7, "nodes": {"root": {}}, "root": "gone"}', "root node 'gone' is not"),
        (
            '{"version": 7, "nodes": {"root": {"inputs": {"nixpkgs": "n"}}}, "root": "root"}',
            "input 'nixpkgs' names no node",
        ),
        (
            '{"version": 7, "nodes": {"root": {"inputs": {}}, "n": {"locked": 3}}, "root": "root"}',
            "'locked' is not an object",
        ),
        ('{"version": true, "nodes": {}}', "unsupported lock file version True"),
    ],
)
def test_a_malformed_lock_is_one_line_naming_the_file(
    rpbuild: RunCli, project: Path, lock: str, says: str
) -> None:
    (project / "flake.lock").write_text(lock)
    line = one_error_line(rpbuild("image", "--profile", "minimal", cwd=project))
    assert "flake.lock:" in line and says in line, line
    assert not (project / "flake.nix").exists()  # checked before anything is written


def test_lock_helpers_take_any_shape() -> None:
    shapes: list[dict[str, object]] = [
        {"nodes": []},
        {"nodes": {"root": {"inputs": []}}},
        {"nodes": {"root": 3}},
    ]
    for shape in shapes:
        assert lockfile.pins(shape) == {}
        assert lockfile.direct_inputs(shape) == []
        assert lockfile.input_paths(shape) == []


def _record(**change: object) -> dict[str, object]:
    rec = ImageRecord("p", "x86_64-linux", "docker", "r:p", "f", "sha256:1", "/nix/store/x", 1, "t")
    return {**rec.__dict__, **change}


@pytest.mark.parametrize(
    "images",
    [
        {"k": _record(size="12 MB")},
        {"k": _record(size=True)},
        {"k": _record(profile=None)},
        {"k": _record(extra=1)},
        {"k": []},
        [],
        "x",
    ],
)
def test_a_state_of_the_wrong_shape_is_a_warning_and_a_rebuild(
    tmp_path: Path, images: object
) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"format": "rpbuild-state/1", "images": images}))
    state, warning = load_state(path)
    assert state.images == {} and warning is not None and "rebuilding" in warning


def test_deep_state_and_cache_files_are_warnings(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("[" * DEEP + "]" * DEEP)
    state, warning = load_state(path)
    assert state.images == {} and warning is not None
    assert read_cache(path, "k") is None


# -- dates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("created", "says"),
    [
        ("2023-13-01T00:00:00Z", "there is no month 13"),
        ("2023-02-30T00:00:00Z", "February 2023 has days 1 to 28"),
        ("0000-01-01T00:00:00Z", "there is no year 0"),
        ("2023-01-01T24:00:00Z", "not a time of day"),
        ("2023-01-01T23:59:60Z", "not a time of day"),
        ("２０２３-01-01T00:00:00Z", "not a UTC timestamp"),
    ],
)
def test_an_impossible_created_date_is_refused_naming_the_profile(
    project: Path, rpbuild: RunCli, created: str, says: str
) -> None:
    path = project / "profiles" / "minimal.toml"
    text = path.read_text()
    path.write_text(text.replace("[image]", f'[image]\ncreated = "{created}"', 1))
    assert f'created = "{created}"' in path.read_text()
    with pytest.raises(ProfileError, match=r"minimal\.toml: image\.created") as info:
        load_profiles(project / "profiles")
    assert says in info.value.message
    line = one_error_line(rpbuild("image", "--profile", "minimal", cwd=project))
    assert "minimal.toml: image.created" in line
    assert not (project / "flake.nix").exists()


def test_real_instants_pass() -> None:
    for ok in ("1970-01-01T00:00:01Z", "2024-02-29T23:59:59.123Z", "9999-12-31T23:59:59Z"):
        assert instant_problem(ok) is None


# -- one line ----------------------------------------------------------------------------


def test_control_characters_in_messages_are_escaped() -> None:
    err = RpbuildError("unknown system 'x\nrpbuild: fake\x1b]0;t\x07'", hint="a\rb")
    assert err.message == "unknown system 'x\\nrpbuild: fake\\x1b]0;t\\x07'"
    assert err.hint == "a\\rb"
    err.message += "\n"
    assert "\n" not in err.message
    assert one_line("\x1b[31;1merror:\x1b[0m colour") == "error: colour"


def test_a_newline_in_system_or_profile_file_stays_on_one_line(
    rpbuild: RunCli, project: Path
) -> None:
    line = one_error_line(rpbuild("image", "--profile", "minimal", "--system", "x\ny", cwd=project))
    assert "x\\ny" in line
    (project / "profiles" / "bad\nname.toml").write_text("")
    line = one_error_line(rpbuild("profiles", cwd=project))
    assert "bad\\nname.toml" in line


# -- nested overrides ----------------------------------------------------------------------


def test_nested_overrides_are_checked_against_the_lock() -> None:
    lock = json.loads((REPO / "flake.lock").read_text())
    paths = lockfile.input_paths(lock)
    assert "rosenpass/nixpkgs" in paths
    nested = next(p for p in paths if p.count("/") == 1)
    build.check_overrides(paths, nix.NixOptions(overrides=((nested, "github:o/r/" + "a" * 40),)))
    with pytest.raises(ProjectError, match=r"flake\.lock has no input 'nope' under 'rosenpass'"):
        build.check_overrides(paths, nix.NixOptions(overrides=(("rosenpass/nope", "github:o/r"),)))
    with pytest.raises(ProjectError, match="the flake has no input 'nope'"):
        build.check_overrides(paths, nix.NixOptions(overrides=(("nope/x", "github:o/r"),)))


# -- limits nix and the engine enforce ---------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "says"),
    [
        ("me/" + "a" * 192 + ":x", "its last component is 192 characters; nix store names"),
        ("me/" + "/".join(["b" * 60] * 5) + ":x", "the name is 307 characters"),
    ],
)
def test_a_tag_too_long_for_nix_or_the_engine_is_named_before_nix_runs(
    rpbuild: RunCli, project: Path, tag: str, says: str
) -> None:
    line = one_error_line(rpbuild("image", "--profile", "minimal", "--tag", tag, cwd=project))
    assert "--tag: image reference too long" in line and says in line, line


def test_the_longest_name_nix_takes_passes() -> None:
    from rpbuild import reference
    from rpbuild.profiles import IMAGE_BASENAME_MAX, name_length_problem

    longest = "me/" + "a" * IMAGE_BASENAME_MAX
    assert name_length_problem(longest) is None
    assert name_length_problem(longest + "a") is not None
    assert str(reference.image_tag(longest, "t")) == longest + ":t"
    assert len("a" * IMAGE_BASENAME_MAX + "-customisation-layer") == 211


def test_a_profile_image_name_too_long_is_named(project: Path) -> None:
    path = project / "profiles" / "minimal.toml"
    path.write_text(path.read_text().replace('name = "rosenpass"', f'name = "{"n" * 200}"', 1))
    with pytest.raises(ProfileError, match=r"minimal\.toml: image\.name too long"):
        load_profiles(project / "profiles")


def test_a_deeply_nested_compose_file_is_one_line(rpbuild: RunCli, project: Path) -> None:
    deep = project / "compose.json"
    deep.write_text('{"services": ' + "[" * DEEP + "]" * DEEP + "}")
    line = one_error_line(rpbuild("up", "--compose-file", str(deep), cwd=project))
    assert "compose.json: not a compose file" in line and "nested too deeply" in line, line
