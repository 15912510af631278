"""Lock files: removed with what they guard, and never held by two runs at once even
when one removes the file another is waiting on."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

from rpbuild.project import find_project
from rpbuild.state import project_lock
from rpbuild.topology import lifecycle as topology
from tests.conftest import REPO

HOLD = """
import sys, time
from pathlib import Path
from rpbuild.state import project_lock
path, mode = Path(sys.argv[1]), sys.argv[2]
with project_lock(path, on_wait=lambda: print("waiting", flush=True)) as held:
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
    if mode == "remove":
        held.remove()
    print("released", flush=True)
"""


def _start(path: Path, mode: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), mode, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def test_a_removed_lock_is_never_held_twice(tmp_path: Path) -> None:
    """A removes the file B waits on; C comes after: B and C must still take turns."""
    path = tmp_path / ".rpbuild" / "topology" / "t.lock"
    a = _start(path, "remove", 1.0)
    assert a.stdout is not None and a.stdout.readline() == "held\n"
    b = _start(path, "keep", 1.0)
    assert b.stdout is not None and b.stdout.readline() == "waiting\n"
    assert a.wait(timeout=30) == 0
    assert b.stdout.readline() == "held\n"  # on a new file, since A removed its own
    c = _start(path, "keep", 0.0)
    assert c.stdout is not None and c.stdout.readline() == "waiting\n"
    assert b.wait(timeout=30) == 0 and c.wait(timeout=30) == 0
    assert c.stdout.read() == "held\nreleased\n"


def test_the_topology_lock_goes_with_the_topology(tmp_path: Path) -> None:
    project = find_project(REPO)
    project = dataclasses.replace(project, state_dir=tmp_path / ".rpbuild")
    lock = topology.state_file(project, "gone").with_suffix(".lock")
    with topology._claimed(project, "gone", print):
        assert lock.is_file()
    assert not lock.exists()  # no state file: nothing runs under the name
    state = topology.state_file(project, "running")
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text("{}")
    with topology._claimed(project, "running", print):
        pass
    assert state.with_suffix(".lock").is_file()  # `up` left it running: the lock stays


def test_project_lock_still_serialises(tmp_path: Path) -> None:
    path = tmp_path / ".rpbuild" / "lock"
    with project_lock(path):
        other = _start(path, "keep", 0.0)
        assert other.stdout is not None and other.stdout.readline() == "waiting\n"
        time.sleep(0.2)
        assert other.poll() is None
    assert other.wait(timeout=30) == 0
