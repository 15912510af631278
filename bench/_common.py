"""Helpers shared by the benchmarks: a throwaway project, timing, the machine's description.

Benchmarks run rpbuild and nix as a user would (subprocesses), never rpbuild's Python API,
so that interpreter start-up and every process rpbuild starts are part of what is measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
RPBUILD = str(VENV_BIN / "rpbuild")
VENV_PYTHON = str(VENV_BIN / "python")
NIX_FLAGS = ["--extra-experimental-features", "nix-command flakes"]

# The stand-in flakes build from host files, so nix's sandbox is off for the benchmarks'
# nix calls (and their children's), as tests/conftest.py does for the tests; nothing
# machine-wide is changed.
_NIX_BENCH_CONFIG = "sandbox = false"
if _NIX_BENCH_CONFIG not in os.environ.get("NIX_CONFIG", ""):
    os.environ["NIX_CONFIG"] = "\n".join(
        line for line in (os.environ.get("NIX_CONFIG", ""), _NIX_BENCH_CONFIG) if line
    )
NO_SUBSTITUTERS = ["--option", "substituters", ""]


@dataclass(frozen=True)
class Stats:
    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    def show(self) -> str:
        return f"median {self.median * 1000:8.1f} ms   min {self.min * 1000:8.1f} ms"


@dataclass(frozen=True)
class Result:
    """One benchmark's verdict, as bench/run_all.py collects it (one JSON line).

    baseline is what the target compares with: the floor program for the repeat runs,
    `import typer` for --help, the plain nix commands for the changed path.
    """

    name: str
    command: str
    ours: Stats
    baseline: Stats
    baseline_name: str
    ratio: float
    target: str
    met: bool | None  # None: measured and reported, no target
    notes: tuple[str, ...] = ()
    ours_bytes: int | None = None  # bytes written to disk per run, when measured
    baseline_bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "command": self.command,
            "ours_median_s": round(self.ours.median, 4),
            "ours_min_s": round(self.ours.min, 4),
            "baseline": self.baseline_name,
            "baseline_median_s": round(self.baseline.median, 4),
            "baseline_min_s": round(self.baseline.min, 4),
            "ratio": round(self.ratio, 2),
            "target": self.target,
            "met": self.met,
            "notes": list(self.notes),
            "ours_bytes": self.ours_bytes,
            "baseline_bytes": self.baseline_bytes,
        }


def emit(result: Result) -> None:
    """The machine-readable last line of every benchmark."""
    print("BENCH-RESULT " + json.dumps(result.as_dict(), sort_keys=True))


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run to completion (env: the whole environment); a failure stops the benchmark."""
    proc = subprocess.run(
        list(argv),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"bench: failed (exit {proc.returncode}): {' '.join(argv)}")
    return proc


def timed(
    argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> float:
    """Wall-clock seconds of one run, output discarded."""
    started = time.perf_counter()
    run(argv, cwd=cwd, env=env)
    return time.perf_counter() - started


HERE = Path(__file__).resolve().parent


def floor_run(program: str, *args: str, cwd: Path | None = None) -> float:
    """Seconds of one floor program (bench/floor_image.py, bench/floor_sizes.py) in the
    venv's Python: the least program doing the job with the parts rpbuild must use
    (Python, typer, the one engine or nix call, parsing its answer). The targets are
    ratios to it, timed in the same interleaved loop as rpbuild."""
    return timed([VENV_PYTHON, str(HERE / program), *args], cwd=cwd)


@contextlib.contextmanager
def bytecode_cache() -> Iterator[Path]:
    """Let the Python processes the benchmark starts cache bytecode, in a private directory.

    A user's rpbuild runs from cached .pyc files. An environment with
    PYTHONDONTWRITEBYTECODE=1 (as some CI and agent shells set) recompiles rpbuild's own
    ~4,500 lines on every start instead, which is not what is to be measured; the cache goes
    to a temporary PYTHONPYCACHEPREFIX so that nothing is written next to the sources.
    """
    saved = {k: os.environ.get(k) for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    prefix = Path(tempfile.mkdtemp(prefix="rpbuild-bench-pycache-"))
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    try:
        yield prefix
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(prefix, ignore_errors=True)


@dataclass(frozen=True)
class Step:
    what: str
    seconds: float


def verbose_breakdown(argv: Sequence[str], *, cwd: Path | None = None, runs: int = 5) -> list[Step]:
    """_verbose_once `runs` times; the median of each step (the steps are the same each run)."""
    samples = [_verbose_once(argv, cwd=cwd) for _ in range(runs)]
    if any(len(s) != len(samples[0]) for s in samples):
        return samples[-1]
    return [
        Step(steps[0].what, statistics.median(step.seconds for step in steps))
        for steps in zip(*samples, strict=True)
    ]


def _verbose_once(argv: Sequence[str], *, cwd: Path | None = None) -> list[Step]:
    """Where one `rpbuild -v ...` run spends its time.

    rpbuild -v logs `running: CMD` before and `exit N: CMD` after every command, without
    timestamps; the lines are stamped here as they arrive. The gaps are rpbuild's own Python:
    start-up (interpreter, imports, loading profiles, rendering) before the first command,
    and work between and after commands.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    stamped = [(time.perf_counter() - started, line.rstrip("\n")) for line in proc.stderr]
    code = proc.wait()
    total = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"bench: failed (exit {code}): {' '.join(argv)}")
    steps: list[Step] = []
    last = 0.0
    begun: tuple[float, str] | None = None
    for at, line in stamped:
        m = re.match(r"rpbuild: (running|exit \d+): (.*)", line)
        if m is None:
            continue
        if m.group(1) == "running":
            label = "python start-up, imports, own work" if not steps else "python between"
            steps.append(Step(label, at - last))
            begun = (at, m.group(2))
        elif begun is not None:
            steps.append(Step(short_command(begun[1]), at - begun[0]))
            last = at
            begun = None
    steps.append(Step("python after last command (report, output, exit)", total - last))
    steps.append(Step("TOTAL", total))
    return steps


def short_command(cmd: str) -> str:
    """`nix ... eval ...` -> `nix eval`, `docker image inspect X` -> `docker image inspect`."""
    words = cmd.split()
    tool = Path(words[0]).name
    for sub in ("eval", "path-info", "build", "--version", "version", "inspect", "load", "tag"):
        if sub in words[1:]:
            return f"{tool} {sub}"
    return tool


def show_breakdown(steps: Sequence[Step]) -> None:
    for step in steps:
        print(f"    {step.what:<52} {step.seconds * 1000:8.1f} ms")


def import_costs(args: Sequence[str], *, cwd: Path | None = None, limit: int = 8) -> list[Step]:
    """The slowest top-level imports of `python -X importtime -m rpbuild ARGS` (cumulative).

    Top-level means imported by rpbuild or the interpreter, not by another import; lazy
    imports inside commands (rich, jinja2, pydantic by typer's parameter coercion) show here.
    """
    proc = subprocess.run(
        [VENV_PYTHON, "-X", "importtime", "-m", "rpbuild", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)$", line)
        if m:
            rows.append(Step(m.group(2), int(m.group(1)) / 1e6))
    return sorted(rows, key=lambda r: r.seconds, reverse=True)[:limit]


def make_project(root: Path, extra_profiles: Mapping[str, str] | None = None) -> list[str]:
    """A copy of this repository's project files (like tests/conftest.py) under root.

    The stand-in nixpkgs and rosenpass flakes are copied too: others may edit
    tests/standin while a benchmark runs, and a changed stand-in would make rpbuild
    (rightly) rebuild in the middle of the timings. Returns the nix flags that point the
    flake's inputs at the copies and keep nix off the binary cache.
    """
    root.mkdir(parents=True, exist_ok=True)
    for name in ("profiles", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy2(REPO / "flake.lock", root / "flake.lock")
    for name, text in (extra_profiles or {}).items():
        (root / "profiles" / f"{name}.toml").write_text(text, encoding="utf-8")
    standin = root / "standin"
    for name in ("nixpkgs", "rosenpass"):
        shutil.copytree(REPO / "tests" / "standin" / name, standin / name)
    return [
        "--override-input",
        "nixpkgs",
        f"path:{standin / 'nixpkgs'}",
        "--override-input",
        "rosenpass",
        f"path:{standin / 'rosenpass'}",
        *NO_SUBSTITUTERS,
    ]


def _first_line(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, check=False).stdout
    except OSError:
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


def machine() -> dict[str, str]:
    """nproc, CPU model, memory, versions and the date: what bench/README.md records."""
    cpu = "?"
    with Path("/proc/cpuinfo").open(encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with Path("/proc/meminfo").open(encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "os": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "kernel": platform.release(),
        "nix": _first_line(["nix", "--version"]),
        "docker": _first_line(["docker", "version", "--format", "{{.Server.Version}}"]),
        "python": _first_line([VENV_PYTHON, "--version"]),
    }


def verdict(met: bool) -> str:
    return "MET" if met else "NOT MET"


def written_bytes() -> int:
    """write_bytes of /proc/self/io: what this process and every child (and their
    children) it has waited for caused to be written to storage. A child's I/O is added
    to its parent's when the parent reaps it, so the difference around a run is what
    that run's processes wrote."""
    return _io_field(Path("/proc/self/io"), "write_bytes")


def _io_field(path: Path, field: str) -> int:
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        if key == field:
            return int(value)
    raise SystemExit(f"bench: no {field} in {path}")


def daemon_pids(names: Sequence[str] = ("dockerd", "containerd")) -> list[int]:
    """The engine's daemons: `docker load` is written by them, not by its client."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text(encoding="utf-8").strip()
            except OSError:
                continue
            if comm in names:
                pids.append(int(entry.name))
    return pids


def daemon_written(pids: Sequence[int]) -> int:
    """write_bytes of the engine's daemons, summed (root can read their /proc/PID/io)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):  # the daemon went away
            total += _io_field(Path(f"/proc/{pid}/io"), "write_bytes")
    return total


def mib(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"
