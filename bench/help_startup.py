#!/usr/bin/env python3
"""`rpbuild --help` against a bare `python -c 'import typer'`.

Why: `--help` (and shell completion, and every typo) should feel instant; rpbuild imports
its heavy modules (rich, jinja2, nix wrappers) inside the commands and builds only the
command that runs (fast_start.keep_only_what_runs). The floor for a typer CLI is importing typer,
so the ratio shows what rpbuild adds on top. Target: at most 1.2x (medians). The slowest
imports are always listed, from `python -X importtime -m rpbuild --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

from _common import (
    RPBUILD,
    VENV_PYTHON,
    Result,
    Stats,
    bytecode_cache,
    emit,
    machine,
    timed,
    verdict,
)

TARGET = 1.2
COMMANDS = {
    "rpbuild --help": [RPBUILD, "--help"],
    "python -m rpbuild --help": [VENV_PYTHON, "-m", "rpbuild", "--help"],
    "python -c 'import typer'": [VENV_PYTHON, "-c", "import typer"],
    # For transparency: rpbuild ends a help (and the repeat runs) with os._exit, skipping
    # the interpreter's teardown, which the floor above pays. This is the floor without it.
    "import typer; os._exit(0)": [VENV_PYTHON, "-c", "import os, typer; os._exit(0)"],
    "python -c pass": [VENV_PYTHON, "-c", "pass"],
}


def slowest_imports(limit: int) -> list[tuple[int, int, str]]:
    """(cumulative us, self us, module) of the slowest imports of `rpbuild --help`."""
    proc = subprocess.run(
        [VENV_PYTHON, "-X", "importtime", "-m", "rpbuild", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((int(m.group(2)), int(m.group(1)), m.group(4)))
    return sorted(rows, reverse=True)[:limit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=21, help="timed runs of each command")
    args = parser.parse_args()

    print("machine:", json.dumps(machine()))
    for argv in COMMANDS.values():  # warm the page cache and the .pyc files
        timed(argv)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):  # interleaved, so drift hits every command alike
        for name, argv in COMMANDS.items():
            samples[name].append(timed(argv))
    stats = {name: Stats(tuple(s)) for name, s in samples.items()}
    for name, st in stats.items():
        print(f"{name:<28} {st.show()}")

    # For comparison, what a shell with PYTHONDONTWRITEBYTECODE=1 sees: rpbuild's own modules
    # (an editable install, no .pyc next to them) are compiled from source on every start.
    no_cache = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    no_cache["PYTHONDONTWRITEBYTECODE"] = "1"
    uncached = Stats(tuple(timed(COMMANDS["rpbuild --help"], env=no_cache) for _ in range(9)))
    print(f"{'rpbuild --help, no .pyc':<28} {uncached.show()}   (PYTHONDONTWRITEBYTECODE=1)")

    ours, floor = stats["rpbuild --help"], stats["python -c 'import typer'"]
    ratio = ours.median / floor.median
    met = ratio <= TARGET
    print(f"ratio rpbuild --help / import typer, medians: {ratio:.2f}x")
    print(f"target <= {TARGET}x: {verdict(met)}")

    print("\nslowest imports of `python -X importtime -m rpbuild --help` (cumulative):")
    for cumulative, own, module in slowest_imports(12):
        print(f"    {module:<40} {cumulative / 1000:7.1f} ms  (self {own / 1000:5.1f} ms)")
    emit(
        Result(
            name="help_startup",
            command="rpbuild --help vs python -c 'import typer'",
            ours=ours,
            baseline=floor,
            baseline_name="python -c 'import typer'",
            ratio=ratio,
            target=f"<= {TARGET}x import typer",
            met=met,
            notes=(
                f"python -m rpbuild --help: median "
                f"{stats['python -m rpbuild --help'].median * 1000:.0f} ms",
                f"python -c pass: median {stats['python -c pass'].median * 1000:.0f} ms",
                "import typer without teardown (os._exit): median "
                f"{stats['import typer; os._exit(0)'].median * 1000:.0f} ms",
                f"rpbuild --help without bytecode cache: median {uncached.median * 1000:.0f} ms",
            ),
        )
    )
    return 0


if __name__ == "__main__":
    with bytecode_cache():
        code = main()
    sys.exit(code)
