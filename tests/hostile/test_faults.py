"""Faults during `rpbuild image`, against the real nix and Docker with the stand-ins:
SIGKILL at random moments (no cleanup can run), and an image stream that runs out of
space. Run under `flock /tmp/rpbuild-docker.lock` (they load images)."""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpbuild.project import find_project
from rpbuild.render import render_flake
from rpbuild.state import load_state
from tests.conftest import STANDIN_OVERRIDES, Run

pytestmark = [pytest.mark.nix, pytest.mark.docker]

KILLS = int(os.environ.get("RPBUILD_FAULT_KILLS", "6"))
SEED = int(os.environ.get("RPBUILD_FAULT_SEED", "15"))


def docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)


def image_id(ref: str) -> str | None:
    out = docker("image", "inspect", "--format", "{{.Id}}", ref)
    return out.stdout.strip() if out.returncode == 0 else None


@pytest.fixture
def tag() -> Iterator[str]:
    ref = f"rpbuild-test/{uuid.uuid4().hex[:10]}:fault"
    yield ref
    docker("image", "rm", "--force", ref)


def start(
    project: Path, tag: str, marker: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """rpbuild image in the background; every process it starts inherits the marker."""
    full = {
        **os.environ,
        "RPBUILD_FAULT_MARK": marker,
        "XDG_STATE_HOME": str(project.parent / "xdg"),
    }
    full.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "rpbuild", "image", "--tag", tag, *STANDIN_OVERRIDES],
        cwd=project,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_image(project: Path, tag: str, marker: str, env: dict[str, str] | None = None) -> Run:
    proc = start(project, tag, marker, env)
    out, err = proc.communicate(timeout=600)
    return Run(proc.returncode, out, err)


def marked_processes(marker: str) -> list[int]:
    """Processes started by the run (nix, the stream script, docker load): children run
    in their own sessions, so they outlive a SIGKILLed rpbuild for a moment."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if f"RPBUILD_FAULT_MARK={marker}".encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def wait_for_orphans(marker: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while marked_processes(marker):
        assert time.monotonic() < deadline, "processes of the killed run did not end"
        time.sleep(0.2)


def assert_invariants(project: Path, tag: str) -> None:
    """What a killed run must leave: a valid state that claims nothing false, a free
    lock, no temporary files."""
    state_dir = project / ".rpbuild"
    state, warning = load_state(state_dir / "state.json")
    assert warning is None, warning
    for record in state.images.values():  # no record disagrees with the engine
        assert image_id(record.reference) == record.image_id, record
    lock = state_dir / "lock"
    if lock.exists():
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises when still held
        finally:
            os.close(fd)
    leftovers = [p for p in project.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name]
    # SIGKILL allows no cleanup: only atomic_write's own temporary file may be left, in a
    # directory the next run sweeps under the project lock (checked after that run).
    assert all(
        p.name.startswith(".") and p.parent in (state_dir, state_dir / "flake") for p in leftovers
    ), leftovers
    staged = state_dir / "flake" / "rpbuild-build.json"
    if staged.exists():
        json.loads(staged.read_text())


def rendered(project: Path) -> bytes:
    """flake.nix as `rpbuild render` would write it now."""
    proj = find_project(project)
    return render_flake(proj, proj.load_profiles()).text.encode()


def test_sigkill_at_random_moments_of_image_leaves_nothing_broken(project: Path, tag: str) -> None:
    rng = random.Random(SEED)
    marker = uuid.uuid4().hex
    first = run_image(project, tag, marker)
    assert first.returncode == 0, first.stderr
    profile = project / "profiles" / "minimal.toml"
    base = profile.read_text()
    kills: list[float] = []
    duration = 1.5  # of a run that renders, builds and loads: measured below
    for i in range(KILLS):
        # A new image each time (its env changes), so the run renders, builds and loads.
        profile.write_text(base.replace("[image]", f'[image]\nenv = {{ FAULT = "{i}" }}', 1))
        flake_before = (project / "flake.nix").read_bytes()
        flake_wanted = rendered(project)
        started = time.monotonic()
        proc = start(project, tag, marker)
        delay = rng.uniform(0.05, duration)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills.append(round(time.monotonic() - started, 2))
        wait_for_orphans(marker)
        flake_after_kill = (project / "flake.nix").read_bytes()
        assert_invariants(project, tag)
        edited = profile.read_text()
        profile.write_text(edited.replace(f'FAULT = "{i}"', f'FAULT = "{i}-again"'))
        began = time.monotonic()
        again = run_image(project, tag, marker)  # a full run: renders, builds, loads
        duration = time.monotonic() - began
        assert again.returncode == 0, again.stderr
        swept = [p for p in project.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name]
        assert swept == []  # the next run leaves nothing behind
        assert flake_after_kill in (flake_before, flake_wanted)  # whole, old or new
        data = json.loads((project / ".rpbuild" / "state.json").read_text())
        (record,) = data["images"].values()
        assert record["image_id"] == image_id(tag)
        assert_invariants(project, tag)
    print(f"killed after {kills} s")
    assert kills, "every run finished before its kill: nothing was tested"


def _stream_script(marker: str) -> int | None:
    for pid in marked_processes(marker):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"-stream-" in cmdline:
            return pid
    return None


def test_a_stream_script_that_dies_is_named_not_the_engine(project: Path, tag: str) -> None:
    """SIGKILL the image stream script half-way through the load: the error names it
    (not `docker load`'s truncated stream), and nothing is loaded or recorded. The stream
    script is upstream's kind of producer (nixpkgs' streamLayeredImage), and a kill is a
    real way for it to fail (the stand-in's own temporary files are not upstream's, so a
    full TMPDIR is tested with real processes in test_pipe.py instead)."""
    profile = project / "profiles" / "minimal.toml"
    profile.write_text(
        profile.read_text()
        + '\n[[package]]\nname = "big"\nattr = "bigPayload"\ndescription = "d"\nreason = "r"\n'
    )
    marker = uuid.uuid4().hex
    proc = start(project, tag, marker)
    deadline = time.monotonic() + 300
    pid = None
    while pid is None and proc.poll() is None and time.monotonic() < deadline:
        pid = _stream_script(marker)
        time.sleep(0.01)
    assert pid is not None, "the stream script was never seen running"
    os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    wait_for_orphans(marker)
    assert proc.returncode == 3, err  # a failure at run time (README: exit codes)
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("rpbuild: error:")]
    assert len(errors) == 1, err
    assert "the image stream script" in errors[0] and "exit -9" in errors[0], errors
    assert image_id(tag) is None
    state, warning = load_state(project / ".rpbuild" / "state.json")
    assert warning is None and state.images == {}
    assert_invariants(project, tag)
