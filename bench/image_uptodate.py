#!/usr/bin/env python3
"""Up-to-date `rpbuild image` against its floor (bench/floor_image.py), and against
`nix build && docker load` of the same ~100 MB image.

Why: a CI job or a shell runs `rpbuild image` again and again; when nothing changed it
should cost what the least program doing the job with the same parts costs: Python,
`import typer`, one `docker image inspect` and parsing it. Target: rpbuild at most 1.3x
that floor (medians). The naive job (`nix build` finds the image built, but the stream
is still piped into `docker load`) is shown for scale.

All three run in the same invocation, interleaved, on a throwaway project whose profile
`bench` is `minimal` plus the stand-in nixpkgs' 100 MiB `bigPayload`. The naive side builds
a copy of the very flake rpbuild staged, so both produce the same store path and image ID.
Cleans up its temporary directory and the rpbuild-bench:bench image.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    NIX_FLAGS,
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
    verbose_breakdown,
    verdict,
)

TARGET = 1.3
REFERENCE = "rpbuild-bench:bench"
SYSTEM = "x86_64-linux"
BENCH_PROFILE = """\
# minimal plus 100 MiB, for bench/image_uptodate.py (the stand-in nixpkgs only).
description = "minimal plus a 100 MiB stand-in payload"
extends = "minimal"

[image]
name = "rpbuild-bench"
tag = "bench"

[[package]]
name = "big-payload"
attr = "bigPayload"
description = "100 MiB of zeros (stand-in nixpkgs only)"
reason = "Makes the image about 100 MB, the size of a real rosenpass image"
required = false
"""


def naive(installable: str, overrides: list[str]) -> tuple[float, float]:
    """`nix build --json` then `OUT | docker load`: seconds of the build and of the load."""
    started = time.perf_counter()
    proc = run(["nix", *NIX_FLAGS, "build", "--no-link", "--json", installable, *overrides])
    out = json.loads(proc.stdout)[0]["outputs"]["out"]
    built = time.perf_counter()
    producer = subprocess.Popen([out], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    load = subprocess.run(
        ["docker", "load"], stdin=producer.stdout, capture_output=True, text=True, check=False
    )
    assert producer.stdout is not None
    producer.stdout.close()
    if producer.wait() != 0 or load.returncode != 0:
        raise SystemExit(f"bench: `{out} | docker load` failed: {load.stderr.strip()}")
    return built - started, time.perf_counter() - built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=7, help="timed runs of each side")
    args = parser.parse_args()

    print("machine:", json.dumps(machine()))
    tmp = Path(tempfile.mkdtemp(prefix="rpbuild-bench-image-"))
    try:
        project = tmp / "project"
        overrides = make_project(project, {"bench": BENCH_PROFILE})
        ours = [RPBUILD, "image", "--profile", "bench", *overrides]

        started = time.perf_counter()
        first = json.loads(run([*ours, "--json"], cwd=project).stdout)
        print(
            f"warm-up: first `rpbuild image --profile bench` (build + load) "
            f"{time.perf_counter() - started:.2f} s, image {first['size'] / 1e6:.1f} MB, "
            f"{first['out_path']}"
        )
        if first["reference"] != REFERENCE:
            raise SystemExit(f"bench: expected {REFERENCE}, rpbuild made {first['reference']}")

        # The naive job builds exactly what rpbuild staged (flake.nix, flake.lock and the
        # fingerprint file), copied so that rpbuild's later runs cannot change it under us.
        naive_dir = tmp / "naive"
        shutil.copytree(project / ".rpbuild" / "flake", naive_dir)
        installable = f"path:{naive_dir}#packages.{SYSTEM}.bench"
        proc = run(["nix", *NIX_FLAGS, "build", "--no-link", "--json", installable, *overrides])
        naive_out = json.loads(proc.stdout)[0]["outputs"]["out"]
        if naive_out != first["out_path"]:
            raise SystemExit(f"bench: naive build gave {naive_out}, rpbuild {first['out_path']}")
        naive(installable, overrides)  # warm the page cache for the load side too

        run(ours, cwd=project)  # the first up-to-date run fills the bytecode cache
        a: list[float] = []
        b: list[float] = []
        b_build: list[float] = []
        b_load: list[float] = []
        floor: list[float] = []
        for _ in range(args.runs):
            floor.append(floor_run("floor_image.py", REFERENCE))
            t0 = time.perf_counter()
            out = run(ours, cwd=project).stdout
            a.append(time.perf_counter() - t0)
            if "up to date" not in out:
                raise SystemExit(f"bench: rpbuild image was not up to date:\n{out}")
            nb, nl = naive(installable, overrides)
            b.append(nb + nl)
            b_build.append(nb)
            b_load.append(nl)

        sa, sb, sf = Stats(tuple(a)), Stats(tuple(b)), Stats(tuple(floor))
        ratio = sa.median / sf.median
        met = ratio <= TARGET
        print(f"\n(a) rpbuild image --profile bench (up to date)  {sa.show()}")
        print(f"(f) floor: python, import typer, inspect, parse {sf.show()}")
        print(f"ratio (a)/(f), medians: {ratio:.2f}x   target <= {TARGET}x: {verdict(met)}")
        print(f"(b) nix build --json && OUT | docker load      {sb.show()}")
        print(f"      of which nix build (already built)        {Stats(tuple(b_build)).show()}")
        print(f"      of which OUT | docker load                {Stats(tuple(b_load)).show()}")
        print(f"(b)/(a), medians: {sb.median / sa.median:.1f}x (for scale)")
        print(
            "\nwhere the up-to-date `rpbuild -v image --profile bench` spends its time "
            "(median of 5 runs):"
        )
        show_breakdown(verbose_breakdown([RPBUILD, "-v", *ours[1:]], cwd=project))
        print("  slowest top-level imports of that run (python -X importtime):")
        show_breakdown(import_costs(ours[1:], cwd=project))
        emit(
            Result(
                name="image_uptodate",
                command="rpbuild image --profile bench (up to date) vs bench/floor_image.py",
                ours=sa,
                baseline=sf,
                baseline_name="floor: python + import typer + docker image inspect + parse",
                ratio=ratio,
                target=f"<= {TARGET}x floor",
                met=met,
                notes=(
                    f"nix build && docker load of the same image: {sb.median * 1000:.0f} ms "
                    f"({sb.median / sa.median:.1f}x rpbuild)",
                ),
            )
        )
        return 0
    finally:
        subprocess.run(
            ["docker", "image", "rm", "--force", REFERENCE], capture_output=True, check=False
        )
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    with bytecode_cache():
        code = main()
    sys.exit(code)
