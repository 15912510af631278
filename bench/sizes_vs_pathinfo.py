#!/usr/bin/env python3
"""`rpbuild sizes --json` (all three profiles, everything built) against its floor,
bench/floor_sizes.py: Python, `import typer`, the one `nix path-info -rS --json` call over
the same roots, and parsing it. The plain call alone is shown too.

Why: `rpbuild sizes` promises to measure every profile with a single `nix path-info` call, so
once everything is built a repeat run should cost what the least program making that call
costs. Target: at most 1.3x the floor (medians). One `rpbuild -v sizes --json` run is broken
down (its log lines are stamped as they arrive), with the slowest imports.

The plain call gets the same root paths rpbuild measures: every package path of every profile
in rpbuild's own --json report. Its output also cross-checks rpbuild's closure sizes.
Runs on a throwaway copy of the project; cleans up after itself.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _common import (
    NIX_FLAGS,
    NO_SUBSTITUTERS,
    RPBUILD,
    Result,
    Stats,
    bytecode_cache,
    emit,
    floor_run,
    import_costs,
    machine,
    make_project,
    run,
    show_breakdown,
    timed,
    verbose_breakdown,
    verdict,
)

TARGET = 1.3
SYSTEM = "x86_64-linux"


def nar_graph(text: str) -> dict[str, tuple[int, list[str]]]:
    """narSize and references per store path, from path-info JSON of any nix version."""
    data: Any = json.loads(text)
    if isinstance(data, list):  # before 2.19
        items = {str(i["path"]): i for i in data}
    elif isinstance(data.get("info"), dict):  # --json-format 2: base names
        store = str(data.get("storeDir", "/nix/store"))
        items = {f"{store}/{k}": v for k, v in data["info"].items()}
    else:
        items = {k: v for k, v in data.items() if k.startswith("/")}
    graph = {}
    for path, info in items.items():
        refs = [r if r.startswith("/") else f"/nix/store/{r}" for r in info["references"]]
        graph[path] = (int(info["narSize"]), refs)
    return graph


def closure_size(graph: Mapping[str, tuple[int, list[str]]], roots: list[str]) -> int:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(graph[path][1])
    return sum(graph[p][0] for p in seen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=7, help="timed runs of each side")
    args = parser.parse_args()

    print("machine:", json.dumps(machine()))
    tmp = Path(tempfile.mkdtemp(prefix="rpbuild-bench-sizes-"))
    try:
        project = tmp / "project"
        overrides = make_project(project)
        ours = [RPBUILD, "sizes", "--json", *overrides]
        started = time.perf_counter()
        report = json.loads(run(ours, cwd=project).stdout)  # builds what is missing
        print(f"warm-up: first `rpbuild sizes --json` {time.perf_counter() - started:.2f} s")
        profiles = {p["name"]: p for p in report["profiles"]}
        roots = sorted({pkg["path"] for p in profiles.values() for pkg in p["packages"]})
        plain = ["nix", *NIX_FLAGS, *NO_SUBSTITUTERS, "path-info", "-rS", "--json", *roots]
        print(f"profiles {', '.join(sorted(profiles))}; {len(roots)} root paths")

        # What a shell script doing rpbuild's job would run: the same two nix calls.
        staged = tmp / "staged"
        shutil.copytree(project / ".rpbuild" / "flake", staged)
        evaluate = [
            "nix",
            *NIX_FLAGS,
            "eval",
            "--json",
            f"path:{staged}#rpbuild.{SYSTEM}",
            *overrides,
        ]

        graph = nar_graph(run(plain).stdout)
        for name, p in sorted(profiles.items()):
            expected = closure_size(graph, [pkg["path"] for pkg in p["packages"]])
            agree = "agrees" if expected == p["closure_size"] else "DIFFERS"
            print(
                f"  {name:<16} rpbuild {p['closure_size']:>10} B, path-info {expected:>10} B: "
                f"{agree}"
            )

        run(evaluate)
        a: list[float] = []
        b: list[float] = []
        c: list[float] = []
        f: list[float] = []
        for _ in range(args.runs):
            f.append(floor_run("floor_sizes.py", *plain[1:], cwd=project))
            a.append(timed(ours, cwd=project))
            b.append(timed(plain, cwd=project))
            t0 = time.perf_counter()
            run(evaluate)
            run(plain)
            c.append(time.perf_counter() - t0)
        sa, sb, sc, sf = Stats(tuple(a)), Stats(tuple(b)), Stats(tuple(c)), Stats(tuple(f))
        ratio = sa.median / sf.median
        met = ratio <= TARGET
        print(f"\n(a) rpbuild sizes --json (3 profiles)    {sa.show()}")
        print(f"(f) floor: python, typer, (b), parse    {sf.show()}")
        print(f"ratio (a)/(f), medians: {ratio:.2f}x   target <= {TARGET}x: {verdict(met)}")
        print(f"(b) nix path-info -rS --json ROOTS...   {sb.show()}")
        print(f"(c) nix eval + nix path-info, no Python {sc.show()}")
        print(f"(a)/(b): {sa.median / sb.median:.1f}x, (a)/(c): {sa.median / sc.median:.1f}x")
        print("\nwhere `rpbuild -v sizes --json` spends its time (median of 5 runs):")
        steps = verbose_breakdown([RPBUILD, "-v", *ours[1:]], cwd=project)
        show_breakdown(steps)
        print("  slowest top-level imports of that run (python -X importtime):")
        show_breakdown(import_costs(ours[1:], cwd=project))
        emit(
            Result(
                name="sizes_vs_pathinfo",
                command="rpbuild sizes --json (everything built) vs bench/floor_sizes.py",
                ours=sa,
                baseline=sf,
                baseline_name="floor: python + import typer + nix path-info -rS --json + parse",
                ratio=ratio,
                target=f"<= {TARGET}x floor",
                met=met,
                notes=(
                    f"the plain nix path-info call: {sb.median * 1000:.0f} ms; nix eval + "
                    f"path-info without Python: {sc.median * 1000:.0f} ms",
                    *(f"{s.what}: {s.seconds * 1000:.0f} ms" for s in steps if s.what != "TOTAL"),
                ),
            )
        )
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    with bytecode_cache():
        code = main()
    sys.exit(code)
