"""What the topology's unit tests share: a fake clock, and a scripted engine executable
that rpbuild runs through its real process helper."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rpbuild.engine import Engine

ENGINE = Engine(name="docker", binary="/usr/bin/docker")
DAEMON_DOWN = "Cannot connect to the Docker daemon at unix:///tmp/nonexistent.sock."
UNREACHABLE = {"": (1, "", DAEMON_DOWN)}  # every command, `docker version` too


class FakeClock:
    """time as the topology modules see it: sleeping only moves the clock on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    clock_module = SimpleNamespace(monotonic=fake.monotonic, sleep=fake.sleep, time=lambda: 1000.0)
    for module in ("lifecycle", "checks"):
        monkeypatch.setattr(f"rpbuild.topology.{module}.time", clock_module)
    return fake


# A stand-in engine executable: rpbuild runs it through its real process helper, so
# nothing in rpbuild is patched. Answers are looked up by the first matching argv prefix
# (arguments after the binary, joined by spaces): (code, stdout, stderr), or a dict whose
# key "after PREFIX" answers once a call starting with PREFIX was made, else "default".
_FAKE_ENGINE = """#!{python}
import json, pathlib, sys
here = pathlib.Path(sys.argv[0]).resolve().parent
line = " ".join(sys.argv[1:])
log = here / "calls"
before = log.read_text().splitlines() if log.exists() else []
with log.open("a") as fh:
    fh.write(line + "\\n")
for prefix, answer in json.loads((here / "answers.json").read_text()):
    if line.startswith(prefix):
        if isinstance(answer, dict):
            done = [k for k in answer if k.startswith("after ")
                    and any(b.startswith(k[6:]) for b in before)]
            answer = answer[done[0]] if done else answer["default"]
        code, out, err = answer
        sys.stdout.write(out)
        sys.stderr.write(err)
        sys.exit(code)
sys.stderr.write("unexpected engine call: " + line + "\\n")
sys.exit(99)
"""


class FakeEngine:
    """A scripted `docker` that really runs: see _FAKE_ENGINE."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        answers: dict[str, Any],
        name: str = "docker",
    ) -> None:
        self.dir = tmp_path / f"fake-{name}"
        self.dir.mkdir(exist_ok=True)
        (self.dir / "answers.json").write_text(json.dumps(list(answers.items())))
        (self.dir / "calls").unlink(missing_ok=True)
        exe = self.dir / name
        exe.write_text(_FAKE_ENGINE.replace("{python}", sys.executable))
        exe.chmod(0o755)
        self.engine = Engine(name=name, binary=str(exe))
        # Only the fake on PATH: no real compose tool is found behind its back.
        monkeypatch.setenv("PATH", str(self.dir))

    @property
    def calls(self) -> list[str]:
        log = self.dir / "calls"
        return log.read_text().splitlines() if log.exists() else []
