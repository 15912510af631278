#!/usr/bin/env python3
"""Run every benchmark in bench/ and print one summary table (Markdown, for bench/README.md).

Why: the three benchmarks are read together (the start-up cost measured by help_startup
explains most of the other two), so they should be re-run together, on one machine, with
the machine and date next to the numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import machine

HERE = Path(__file__).resolve().parent
BENCHES = ("image_uptodate.py", "help_startup.py", "sizes_vs_pathinfo.py")


def run_bench(script: str) -> dict[str, Any] | None:
    """Run one benchmark, echoing its output; its BENCH-RESULT line, or None if it failed."""
    print(f"\n===== {script} =====", flush=True)
    proc = subprocess.Popen([sys.executable, str(HERE / script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    result = None
    for line in proc.stdout:
        sys.stdout.write(line)
        if line.startswith("BENCH-RESULT "):
            result = json.loads(line.removeprefix("BENCH-RESULT "))
    if proc.wait() != 0:
        print(f"{script}: FAILED (exit {proc.returncode})")
        return None
    return result


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def best(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.2f}x"


def main() -> int:
    info = machine()
    results = [(script, run_bench(script)) for script in BENCHES]
    print("\n===== summary =====")
    print(
        f"{info['date']}; {info['nproc']} x {info['cpu']}, {info['memory']}; {info['os']}; "
        f"{info['nix']}; Docker {info['docker']}; {info['python']}\n"
    )
    print(
        "| benchmark | reproduce | ours (median / min) | baseline (median / min) | ratio "
        "| target | met? | best possible |"
    )
    print("|---|---|---|---|---|---|---|---|")
    failed = False
    for script, r in results:
        if r is None:
            failed = True
            print(f"| {script} | `bench/{script}` | failed | | | | | |")
            continue
        print(
            f"| {r['name']} | `bench/{script}` | {ms(r['ours_median_s'])} / "
            f"{ms(r['ours_min_s'])} | {ms(r['baseline_median_s'])} / "
            f"{ms(r['baseline_min_s'])} | {r['ratio']:.2f}x | {r['target']} | "
            f"{'yes' if r['met'] else 'no'} | {best(r.get('best_possible'))} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
