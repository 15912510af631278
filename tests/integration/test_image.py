"""`rpbuild image` against the real nix and the real Docker engine, with the stand-in inputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    ROSENPASS_SOURCE,
    STANDIN,
    STANDIN_OVERRIDES,
    Run,
    RunCli,
    commit_all,
    git,
    use_rosenpass_source,
)

pytestmark = [pytest.mark.nix, pytest.mark.docker]


NO_SUBST = ["--option", "substituters", ""]


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=120
    )


def image_id(ref: str) -> str | None:
    result = docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


@pytest.fixture
def tag() -> Iterator[str]:
    """A reference of this test's own, removed afterwards."""
    ref = f"rpbuild-test/{uuid.uuid4().hex[:10]}:img"
    yield ref
    docker("image", "rm", "--force", ref, check=False)


@pytest.fixture
def nix_shim(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A PATH whose `nix` records every call before running the real one."""
    shim = tmp_path / "shim"
    shim.mkdir()
    log = tmp_path / "nix-calls.log"
    real = shutil.which("nix")
    assert real is not None
    (shim / "nix").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    (shim / "nix").chmod(0o755)
    return {"PATH": f"{shim}:{os.environ['PATH']}"}, log


def nix_calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def build(
    rpbuild: RunCli,
    project: Path,
    *args: str,
    env: dict[str, str] | None = None,
    overrides: list[str] = STANDIN_OVERRIDES,
) -> dict[str, Any]:
    result = rpbuild("image", *args, *overrides, "--json", cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def add_to_profile(project: Path, profile: str, text: str) -> None:
    path = project / "profiles" / f"{profile}.toml"
    path.write_text(path.read_text() + "\n" + text)


RUN_CHECKS = {
    "minimal": (["/bin/cat", "/etc/protocols"], "icmp"),
    "with-wireguard": (["/bin/wg", "--version"], "wireguard-tools"),
    "debug": (["/bin/bash", "-c", "echo debug-shell-works"], "debug-shell-works"),
}


@pytest.mark.parametrize("profile", ["minimal", "with-wireguard", "debug"])
def test_every_profile_builds_loads_and_runs(
    rpbuild: RunCli, project: Path, tag: str, profile: str
) -> None:
    data = build(rpbuild, project, "--profile", profile, "--tag", tag)
    assert data["reference"] == tag and data["up_to_date"] is False
    assert data["image_id"] == image_id(tag)
    inspect = json.loads(docker("image", "inspect", tag).stdout)[0]
    labels = inspect["Config"]["Labels"]
    assert labels["dev.rpbuild.fingerprint"] == data["fingerprint"]
    assert labels["dev.rpbuild.profile"] == profile
    for key in ("title", "description", "version", "revision", "source", "created"):
        assert labels[f"org.opencontainers.image.{key}"], key
    # Which rosenpass the image holds, and from where (rpbuild.toml's rosenpass_source).
    source = ROSENPASS_SOURCE or "nixpkgs"
    assert labels["dev.rpbuild.rosenpass.source"] == source
    assert labels["dev.rpbuild.rosenpass.version"] == "0.2.1-standin"
    assert labels["org.opencontainers.image.version"] == "0.2.1-standin"
    # nixpkgs fetched rosenpass at the tag v<version>; a path: flake has no revision.
    revision = "v0.2.1-standin" if source == "nixpkgs" else "unknown"
    assert labels["org.opencontainers.image.revision"] == revision
    assert labels["dev.rpbuild.rosenpass.rev"] == revision
    assert inspect["Architecture"] == "amd64"
    (entry, *args), expected = RUN_CHECKS[profile]
    out = docker("run", "--rm", "--pull", "never", "--entrypoint", entry, tag, *args).stdout
    assert expected in out
    # rosenpass and the entrypoint are in every image
    ls = docker(
        "run", "--rm", "--pull", "never", "--entrypoint", "/bin/ls", tag, "/bin"
    ).stdout.split()
    assert {"rp", "rosenpass", "rpbuild-entrypoint", "ip", "grep"} <= set(ls)


def test_second_run_is_up_to_date_and_starts_no_nix(
    rpbuild: RunCli, project: Path, tag: str, nix_shim: tuple[dict[str, str], Path]
) -> None:
    env, log = nix_shim
    first = build(rpbuild, project, "--tag", tag, env=env)
    assert first["up_to_date"] is False
    assert nix_calls(log) >= 1
    calls = nix_calls(log)
    text = rpbuild("image", "--tag", tag, *STANDIN_OVERRIDES, cwd=project, env=env)
    assert text.returncode == 0
    assert f"{tag}: up to date" in text.stdout
    assert nix_calls(log) == calls, "the up-to-date path must not start nix"
    second = build(rpbuild, project, "--tag", tag, env=env)
    assert second["up_to_date"] is True and second["image_id"] == first["image_id"]
    assert nix_calls(log) == calls


def test_changes_that_define_the_image_rebuild(
    rpbuild: RunCli, project: Path, tag: str, nix_shim: tuple[dict[str, str], Path]
) -> None:
    env, log = nix_shim
    first = build(rpbuild, project, "--tag", tag, env=env)

    # flake.lock changed (any byte of it: it pins everything)
    lock = project / "flake.lock"
    data = json.loads(lock.read_text())
    data["nodes"]["systems"]["locked"]["lastModified"] += 1
    lock.write_text(json.dumps(data, indent=2) + "\n")
    calls = nix_calls(log)
    after_lock = build(rpbuild, project, "--tag", tag, env=env)
    assert after_lock["up_to_date"] is False and nix_calls(log) > calls
    assert after_lock["fingerprint"] != first["fingerprint"]

    # the profile changed
    add_to_profile(project, "minimal", '[image.env]\nRPBUILD_TEST = "yes"\n')
    after_profile = build(rpbuild, project, "--tag", tag, env=env)
    assert after_profile["up_to_date"] is False and after_profile["rendered"] is True
    env_list = json.loads(docker("image", "inspect", tag).stdout)[0]["Config"]["Env"]
    assert "RPBUILD_TEST=yes" in env_list

    # another profile changed: this one stays up to date
    add_to_profile(project, "debug", '[image.env]\nONLY_DEBUG = "1"\n')
    assert build(rpbuild, project, "--tag", tag, env=env)["up_to_date"] is True

    # the image was removed from the engine
    docker("image", "rm", "--force", tag)
    removed = build(rpbuild, project, "--tag", tag, env=env)
    assert removed["up_to_date"] is False and image_id(tag) == removed["image_id"]

    # --force
    assert build(rpbuild, project, "--tag", tag, "--force", env=env)["up_to_date"] is False

    # the system is part of the fingerprint as well
    assert build(rpbuild, project, "--tag", tag, env=env)["up_to_date"] is True


def test_local_override_checkout_edits_rebuild(
    rpbuild: RunCli, project: Path, tag: str, tmp_path: Path
) -> None:
    checkout = tmp_path / "rosenpass-checkout"
    shutil.copytree(STANDIN / "rosenpass", checkout)
    overrides = ["--override-input", "rosenpass", f"path:{checkout}"]
    first = build(rpbuild, project, "--tag", tag, *overrides)
    assert build(rpbuild, project, "--tag", tag, *overrides)["up_to_date"] is True
    rp = checkout / "rp.sh"
    rp.write_text(rp.read_text() + "\n# edited\n")
    edited = build(rpbuild, project, "--tag", tag, *overrides)
    assert edited["up_to_date"] is False and edited["fingerprint"] != first["fingerprint"]


def test_corrupt_or_foreign_state_warns_and_rebuilds(
    rpbuild: RunCli, project: Path, tag: str
) -> None:
    build(rpbuild, project, "--tag", tag)
    state = project / ".rpbuild" / "state.json"
    for garbage in ("{not json", '{"format": "someone-else/9", "images": {}}', "[]"):
        state.write_text(garbage)
        result = rpbuild("image", "--tag", tag, *STANDIN_OVERRIDES, cwd=project)
        assert result.returncode == 0, result.stderr
        assert "warning:" in result.stderr and "state.json" in result.stderr
        assert "built and loaded" in result.stdout
        assert json.loads(state.read_text())["format"] == "rpbuild-state/1"


def test_two_runs_at_once_wait_for_each_other(
    rpbuild: RunCli, project: Path, tag: str, tmp_path: Path
) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "COLUMNS": "200"}
    argv = [sys.executable, "-m", "rpbuild", "image", "--tag", tag, "--force", *STANDIN_OVERRIDES]
    procs = [
        subprocess.Popen(
            argv, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert any("another rpbuild is running in this project; waiting" in err for _, err in outputs)
    state = json.loads((project / ".rpbuild" / "state.json").read_text())
    assert [rec["reference"] for rec in state["images"].values()] == [tag]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_nix_and_keeps_the_previous_image(
    sig: signal.Signals, rpbuild: RunCli, project: Path, tag: str, tmp_path: Path
) -> None:
    before = build(rpbuild, project, "--tag", tag)
    state_before = (project / ".rpbuild" / "state.json").read_bytes()
    add_to_profile(
        project,
        "minimal",
        '[[package]]\nname = "slow"\nattr = "rpbuildTestSlow"\ndescription = "d"\nreason = "r"\n',
    )
    proc = _start_image(project, tag, tmp_path)
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        seen.append(line)
        if "rpbuild-test-slow" in line or time.monotonic() > deadline:
            break
    assert any("rpbuild-test-slow" in line for line in seen), seen
    proc.send_signal(sig)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130, "".join(seen) + rest
    assert "interrupted" in rest
    assert "Traceback" not in rest
    assert "built rpbuild-test-slow" not in rest  # stopped, not built
    left = subprocess.run(["pgrep", "-f", "rpbuild-test-slow"], capture_output=True, text=True)
    assert left.stdout.strip() == "", "nix or its builder still runs"
    assert (project / ".rpbuild" / "state.json").read_bytes() == state_before
    assert image_id(tag) == before["image_id"]


def _start_image(
    project: Path, tag: str, tmp_path: Path, path: str | None = None
) -> subprocess.Popen[str]:
    """`rpbuild image --tag TAG` in the background, for tests that interrupt it."""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    if path is not None:
        env["PATH"] = path
    return subprocess.Popen(
        [sys.executable, "-m", "rpbuild", "image", "--tag", tag, *STANDIN_OVERRIDES],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _error_lines(result: Run) -> list[str]:
    return [ln for ln in result.stderr.splitlines() if ln.startswith("rpbuild: error:")]


def test_failed_build_shows_log_tail_and_nix_log_command(
    rpbuild: RunCli, project: Path, tag: str
) -> None:
    add_to_profile(
        project,
        "minimal",
        '[[package]]\nname = "broken"\nattr = "rpbuildTestFailing"\ndescription = "d"\nreason = "r"\n',
    )
    result = rpbuild("image", "--tag", tag, *STANDIN_OVERRIDES, cwd=project)
    assert result.returncode != 0
    [error] = _error_lines(result)
    assert error.startswith(
        "rpbuild: error: profiles/minimal.toml: build of rpbuild-test-failing-1"
    )
    assert "failing build line 30" in result.stderr
    assert "failing build line 5\n" not in result.stderr  # only the tail
    assert " log /nix/store/" in result.stderr and "rpbuild-test-failing-1.drv" in result.stderr
    assert "Traceback" not in result.stderr
    assert image_id(tag) is None
    assert not (project / ".rpbuild" / "state.json").exists()


def test_unreachable_input_is_named_with_the_override_hint(
    rpbuild: RunCli, project: Path, tag: str
) -> None:
    result = rpbuild(
        "image",
        "--tag",
        tag,
        "--option",
        "substituters",
        "",
        "--option",
        "download-attempts",
        "1",
        cwd=project,
    )
    assert result.returncode != 0
    [error] = _error_lines(result)
    assert "nixpkgs" in error or "rosenpass" in error
    assert "--override-input" in result.stderr


def test_missing_tools_and_daemon_have_clear_errors(
    rpbuild: RunCli, project: Path, tag: str, tmp_path: Path
) -> None:
    bare = tmp_path / "bare-bin"
    bare.mkdir()
    for tool in ("docker",):
        found = shutil.which(tool)
        assert found is not None
        (bare / tool).symlink_to(found)
    no_nix = rpbuild(
        "image", "--tag", tag, *STANDIN_OVERRIDES, cwd=project, env={"PATH": str(bare)}
    )
    assert no_nix.returncode == 3
    assert (
        _error_lines(no_nix) == ["rpbuild: error: nix is not installed"]
        or "nix" in _error_lines(no_nix)[0]
    )

    (bare / "docker").unlink()
    nix_only = tmp_path / "nix-bin"
    nix_only.mkdir()
    (nix_only / "nix").symlink_to(shutil.which("nix") or "/usr/bin/nix")
    no_engine = rpbuild(
        "image", "--tag", tag, *STANDIN_OVERRIDES, cwd=project, env={"PATH": str(nix_only)}
    )
    assert no_engine.returncode == 3
    assert "docker is not installed" in _error_lines(no_engine)[0]
    assert "apt-get install docker.io" in no_engine.stderr

    daemon_down = rpbuild(
        "image",
        "--tag",
        tag,
        *STANDIN_OVERRIDES,
        cwd=project,
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"},
    )
    assert daemon_down.returncode == 3
    assert _error_lines(daemon_down) == [
        f"rpbuild: error: the Docker daemon at DOCKER_HOST=unix://{tmp_path}/no-such.sock "
        "is not running or not reachable"
    ]
    assert "rpbuild: hint: check DOCKER_HOST" in daemon_down.stderr


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")
def test_podman_loads_the_same_image(rpbuild: RunCli, project: Path) -> None:
    ref = f"localhost/rpbuild-test-{uuid.uuid4().hex[:8]}:img"
    try:
        data = build(rpbuild, project, "--engine", "podman", "--tag", ref)
        assert data["engine"] == "podman" and data["up_to_date"] is False
        out = subprocess.run(
            [
                "podman",
                "image",
                "inspect",
                "--format",
                '{{index .Labels "dev.rpbuild.fingerprint"}}',
                ref,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert out == data["fingerprint"]
        assert build(rpbuild, project, "--engine", "podman", "--tag", ref)["up_to_date"] is True
    finally:
        subprocess.run(["podman", "image", "rm", "--force", ref], capture_output=True)


def test_tag_leaves_the_profiles_own_name_alone(rpbuild: RunCli, project: Path, tag: str) -> None:
    own = f"rpbuild-test/{uuid.uuid4().hex[:10]}"
    minimal = project / "profiles" / "minimal.toml"
    minimal.write_text(minimal.read_text().replace('name = "rosenpass"', f'name = "{own}"', 1))
    try:
        first = build(rpbuild, project)
        assert first["reference"] == f"{own}:minimal"
        add_to_profile(project, "minimal", '[image.env]\nCHANGED = "1"\n')
        since = docker("system", "info", "--format", "{{.SystemTime}}").stdout.strip()
        tagged = build(rpbuild, project, "--tag", tag)
        assert tagged["image_id"] != first["image_id"]
        assert image_id(tag) == tagged["image_id"]
        assert image_id(f"{own}:minimal") == first["image_id"], "--tag moved the default name"
        # Not even for a moment: the image is built under the asked name and loaded as
        # such, so a concurrent run in another project never sees the default name move.
        until = docker("system", "info", "--format", "{{.SystemTime}}").stdout.strip()
        events = docker(
            "events", "--since", since, "--until", until, "--filter", "type=image",
            "--format", "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
        ).stdout  # fmt: skip
        assert own not in events, events
        assert docker("image", "inspect", "--format", "{{json .RepoTags}}", tag).stdout.strip() == (
            json.dumps([tag])
        )
        docker("image", "rm", f"{own}:minimal")
        build(rpbuild, project, "--tag", tag, "--force")
        assert image_id(f"{own}:minimal") is None, "--tag left the default name behind"
    finally:
        docker("image", "rm", "--force", f"{own}:minimal", check=False)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("me/BAD:x", "--tag me/BAD:x: the repository 'me/BAD' must be lower case"),
        ("", "--tag: empty"),
        (":x", "--tag :x: no repository name"),
        # Docker's grammar, as --push reads it too: not a host, so not a reference.
        ("my_host.com/foo", "--tag my_host.com/foo: 'my_host.com' is taken as a registry host"),
        ("registry-.io/x", "--tag registry-.io/x: 'registry-.io' is taken as a registry host"),
    ],
)
def test_a_bad_tag_is_refused_before_building(
    rpbuild: RunCli, project: Path, nix_shim: tuple[dict[str, str], Path], bad: str, why: str
) -> None:
    """An empty --tag is an error, not the default name (it used to load rosenpass:minimal)."""
    env, log = nix_shim
    result = rpbuild("image", "--tag", bad, *STANDIN_OVERRIDES, cwd=project, env=env)
    assert result.returncode == 2
    [line] = _error_lines(result)
    assert line.startswith(f"rpbuild: error: {why}"), line
    assert nix_calls(log) == 0


def test_a_lock_missing_an_input_is_refused_even_with_overrides(
    rpbuild: RunCli, project: Path, nix_shim: tuple[dict[str, str], Path], tag: str
) -> None:
    """With --override-input for the other input, nix would resolve nixpkgs unpinned."""
    env, log = nix_shim
    lock = project / "flake.lock"
    data = json.loads(lock.read_text())
    del data["nodes"][data["root"]]["inputs"]["nixpkgs"]
    lock.write_text(json.dumps(data, indent=2) + "\n")
    before = lock.read_bytes()
    rosenpass_only = ["--override-input", "rosenpass", f"path:{STANDIN / 'rosenpass'}"]
    result = rpbuild("image", "--tag", tag, *rosenpass_only, cwd=project, env=env)
    assert result.returncode != 0
    assert _error_lines(result) == [
        f"rpbuild: error: {lock}: input 'nixpkgs' is not pinned; run `rpbuild lock update nixpkgs`"
    ]
    assert nix_calls(log) == 0 and lock.read_bytes() == before
    lock.write_text("{not json")
    result = rpbuild("sizes", *STANDIN_OVERRIDES, cwd=project, env=env)
    assert _error_lines(result)[0].startswith(f"rpbuild: error: {lock}: not valid JSON")
    assert nix_calls(log) == 0


@pytest.mark.parametrize("spoil", ["state-dir", "rpbuild-file"])
def test_unusable_state_paths_fail_before_building(
    rpbuild: RunCli, project: Path, nix_shim: tuple[dict[str, str], Path], tag: str, spoil: str
) -> None:
    """They used to fail only when saving the state, after the image was loaded."""
    env, log = nix_shim
    if spoil == "state-dir":
        (project / ".rpbuild" / "state.json").mkdir(parents=True)
        expected = f"{project / '.rpbuild' / 'state.json'}: not a regular file; remove it"
    else:
        (project / ".rpbuild").write_text("")
        expected = f"{project / '.rpbuild'}: not a directory; remove or rename it"
    result = rpbuild("image", "--tag", tag, *STANDIN_OVERRIDES, cwd=project, env=env)
    assert result.returncode != 0
    [error] = _error_lines(result)
    assert error.startswith(f"rpbuild: error: {expected}"), error
    assert nix_calls(log) == 0 and image_id(tag) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--override-input", "nosuchinput", "path:/tmp"],
            "--override-input nosuchinput: the flake has no input 'nosuchinput' "
            "(its inputs: nixpkgs, rosenpass)",
        ),
        (["--override-input", "rosenpass", ""], "--override-input rosenpass: empty URL"),
        (
            ["--override-input", "", "path:/tmp"],
            "--override-input: empty NAME (before 'path:/tmp')",
        ),
        (
            ["--override-input", "rosenpass", "path:/nonexistent/rp"],
            "--override-input rosenpass path:/nonexistent/rp: no such directory",
        ),
        (
            ["--override-input", "rosenpass", "path:/etc"],
            "--override-input rosenpass path:/etc: no flake.nix in /etc",
        ),
        (
            ["--override-input", "rosenpass", f"path:{STANDIN / 'rosenpass' / 'flake.nix'}"],
            f"--override-input rosenpass path:{STANDIN / 'rosenpass' / 'flake.nix'}: not a "
            "directory (name the directory that holds flake.nix)",
        ),
        (
            ["--engine", "bogus"],
            "Invalid value for '--engine': 'bogus' is not one of 'docker', 'podman'. "
            "(see `rpbuild image --help`)",
        ),
    ],
    ids=["unknown-input", "empty-url", "empty-name", "missing-dir", "no-flake", "file", "engine"],
)
def test_bad_options_are_refused_before_nix_runs(
    rpbuild: RunCli,
    project: Path,
    nix_shim: tuple[dict[str, str], Path],
    tag: str,
    args: list[str],
    message: str,
) -> None:
    env, log = nix_shim
    result = rpbuild("image", "--tag", tag, *args, *STANDIN_OVERRIDES, cwd=project, env=env)
    assert result.returncode == 2, result.stderr
    assert _error_lines(result) == [f"rpbuild: error: {message}"]
    assert nix_calls(log) == 0 and image_id(tag) is None


def _template_before_tag_support(project: Path) -> None:
    """The project's own flake template as rpbuild wrote it before images took --tag."""
    path = project / "templates" / "flake.nix.j2"
    text = path.read_text()
    start = text.index("          reference = ((build.references")
    text = text[:start] + text[text.index("          };\n", start) + len("          };\n") :]
    text = text.replace(
        "inherit (reference) name tag;\n            inherit (profile.image) created maxLayers;",
        "inherit (profile.image) name tag created maxLayers;",
    )
    assert "reference" not in text
    path.write_text(text)


def test_a_project_template_from_before_tag_support_is_refused_with_tag(
    rpbuild: RunCli, project: Path, tag: str, nix_shim: tuple[dict[str, str], Path]
) -> None:
    """`rpbuild init` copies the template into the project. One that cannot name the image
    is refused with --tag before nix runs (it used to load under the default name and
    retag: a second path for projects that 0.1 never had)."""
    env, log = nix_shim
    _template_before_tag_support(project)
    result = rpbuild("image", "--tag", tag, *STANDIN_OVERRIDES, cwd=project, env=env)
    assert result.returncode == 2, result.stderr
    assert _error_lines(result) == [
        f"rpbuild: error: {project / 'templates' / 'flake.nix.j2'}: predates --tag support "
        "(it cannot name the image); update it from `rpbuild init`"
    ]
    assert nix_calls(log) == 0 and image_id(tag) is None


def test_a_moving_override_is_asked_of_nix_and_a_local_one_is_known_from_anywhere(
    rpbuild: RunCli, project: Path, tag: str, tmp_path: Path, nix_shim: tuple[dict[str, str], Path]
) -> None:
    """A git or branch override can move without any local change: nix resolves it
    (the load is skipped when the build is the recorded one). A local checkout is the
    same input whichever relative path names it."""
    env, log = nix_shim
    use_rosenpass_source(project, "flake")  # the image must depend on the rosenpass input
    repo = tmp_path / "rp-git"
    shutil.copytree(STANDIN / "rosenpass", repo)
    git(repo, "init", "-q")
    commit_all(repo, "stand-in rosenpass")
    nixpkgs = ["--override-input", "nixpkgs", f"path:{STANDIN / 'nixpkgs'}"]
    moving = [*nixpkgs, "--override-input", "rosenpass", f"git+file://{repo}", *NO_SUBST]
    first = build(rpbuild, project, "--tag", tag, *moving, env=env, overrides=[])
    calls = nix_calls(log)
    again = rpbuild("image", "--tag", tag, *moving, "--json", cwd=project, env=env)
    assert json.loads(again.stdout)["up_to_date"] is True, again.stderr
    assert nix_calls(log) > calls  # nix resolved the override; nothing was loaded
    (repo / "rp.sh").write_text((repo / "rp.sh").read_text() + "\n# moved\n")
    commit = commit_all(repo, "move the branch")
    moved = build(rpbuild, project, "--tag", tag, *moving, env=env, overrides=[])
    assert moved["up_to_date"] is False and moved["image_id"] != first["image_id"]
    labels = json.loads(docker("image", "inspect", tag).stdout)[0]["Config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == commit

    local = tmp_path / "rp-local"
    shutil.copytree(STANDIN / "rosenpass", local)
    sub = project / "sub"
    sub.mkdir()
    near = build(rpbuild, project, "--tag", tag, *nixpkgs, "--override-input", "rosenpass",
                 "path:../rp-local", *NO_SUBST, overrides=[])  # fmt: skip
    calls = nix_calls(log)
    result = rpbuild("image", "--tag", tag, *nixpkgs, "--override-input", "rosenpass",
                     "../../rp-local", *NO_SUBST, "--json", cwd=sub, env=env)  # fmt: skip
    far = json.loads(result.stdout)
    assert far["up_to_date"] is True and far["fingerprint"] == near["fingerprint"]
    assert nix_calls(log) == calls


def test_ctrl_c_after_the_daemon_took_the_stream_still_keeps_the_previous_image(
    project: Path, rpbuild: RunCli, tag: str, tmp_path: Path
) -> None:
    """Stopping `docker load` does not stop the daemon, which commits a stream it has
    received whole. A shim lets the real load finish, then hangs like a client that has
    not returned yet: Ctrl-C then must give the tag back to the previous image."""
    before = build(rpbuild, project, "--tag", tag)
    state_before = (project / ".rpbuild" / "state.json").read_bytes()
    add_to_profile(project, "minimal", '[image.env]\nLOADED_BUT_INTERRUPTED = "1"\n')
    real = shutil.which("docker")
    assert real is not None
    shim, marker = tmp_path / "shim", tmp_path / "loaded"
    shim.mkdir()
    (shim / "docker").write_text(
        f'#!/bin/sh\nif [ "$1" = load ]; then\n  {real} "$@"\n  touch {marker}\n'
        f'  exec sleep 60\nfi\nexec {real} "$@"\n'
    )
    (shim / "docker").chmod(0o755)
    proc = _start_image(project, tag, tmp_path, path=f"{shim}:{os.environ['PATH']}")
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), proc.communicate()
    new_id = image_id(tag)
    assert new_id != before["image_id"]  # the daemon did take the new image
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"{tag} is the previous image again" in err and "Traceback" not in err
    assert image_id(tag) == before["image_id"]
    assert image_id(str(new_id)) is None  # the new image is gone again
    assert (project / ".rpbuild" / "state.json").read_bytes() == state_before
