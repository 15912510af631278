#!/usr/bin/env python3
"""Run every benchmark in bench/ and print one summary table (Markdown, for bench/README.md).

Why: the benchmarks are read together (the start-up cost measured by help_startup
explains most of the repeat runs), so they are re-run together, on one machine, with the
machine and date next to the numbers. Docker is shared: run it under
`flock /tmp/rpbuild-docker.lock` on a machine where others use Docker too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import machine, mib

HERE = Path(__file__).resolve().parent
BENCHES = (
    "image_uptodate.py",
    "help_startup.py",
    "sizes_vs_pathinfo.py",
    "changed_path.py",
    "release_bytes.py",
)


def run_bench(script: str) -> list[dict[str, Any]] | None:
    """Run one benchmark, echoing its output; its BENCH-RESULT lines, or None if it failed."""
    print(f"\n===== {script} =====", flush=True)
    proc = subprocess.Popen([sys.executable, str(HERE / script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    results = []
    for line in proc.stdout:
        sys.stdout.write(line)
        if line.startswith("BENCH-RESULT "):
            results.append(json.loads(line.removeprefix("BENCH-RESULT ")))
    if proc.wait() != 0:
        print(f"{script}: FAILED (exit {proc.returncode})")
        return None
    return results


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def met(value: bool | None) -> str:
    return "–" if value is None else ("yes" if value else "**no**")


def written(r: dict[str, Any]) -> str:
    if r.get("ours_bytes") is None:
        return ""
    return f"{mib(r['ours_bytes'])} / {mib(r['baseline_bytes'])}"


def main() -> int:
    info = machine()
    runs = [(script, run_bench(script)) for script in BENCHES]
    print("\n===== summary =====")
    print(
        f"{info['date']}; {info['nproc']} x {info['cpu']}, {info['memory']}; {info['os']}; "
        f"{info['nix']}; Docker {info['docker']}; {info['python']}\n"
    )
    print(
        "| benchmark | reproduce | rpbuild (median / min) | compared with | its median / min "
        "| ratio | target | met? | written: rpbuild / other |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    failed = False
    for script, results in runs:
        if results is None:
            failed = True
            print(f"| {script} | `bench/{script}` | failed | | | | | | |")
            continue
        for r in results:
            print(
                f"| {r['name']} | `bench/{script}` | {ms(r['ours_median_s'])} / "
                f"{ms(r['ours_min_s'])} | {r['baseline']} | {ms(r['baseline_median_s'])} / "
                f"{ms(r['baseline_min_s'])} | {r['ratio']:.2f}x | {r['target']} | "
                f"{met(r['met'])} | {written(r)} |"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
