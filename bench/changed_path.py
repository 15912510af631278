#!/usr/bin/env python3
"""The changed path: `rpbuild image` after an edit to `with-wireguard`, against plain
`nix build && docker load` of the same change, with the bytes each writes to disk.

Two edits, each made anew (a fresh value) before every timed run of each side:
  - description: one package's `description` in profiles/with-wireguard.toml. That text is
    documentation: it reaches flake.nix (the profiles' JSON) but not the image. rpbuild
    re-renders flake.nix, finds the image's fingerprint unchanged and starts no nix; the
    plain path evaluates the edited flake and loads the unchanged image again.
  - env: an `[image.env]` value in with-wireguard: the image config changes, so nix builds
    the image again and it is loaded.
The plain path is what the original project ran: the flake with `buildLayeredImage`
(`nix build` writes the gzipped archive into the store) and `docker load -i` of it.
rpbuild's flake uses `streamLayeredImage` and pipes the stream into `docker load`.
Both flakes are rendered by rpbuild from the same profiles (the plain one's rendering is
not timed: a plain user edits flake.nix by hand).

Bytes written: write_bytes of /proc/self/io around the run (a child's I/O is added to its
parent's when it is reaped, so this counts rpbuild, nix and its builders, the stream
script, the docker client) plus the write_bytes of dockerd and containerd (/proc/PID/io),
which write the loaded layers. Both are what reached the storage layer, not what was
read. The release's temporary archive is measured by bench/release_bytes.py.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from _common import (
    NIX_FLAGS,
    RPBUILD,
    Result,
    Stats,
    bytecode_cache,
    daemon_pids,
    daemon_written,
    emit,
    machine,
    make_project,
    mib,
    run,
    written_bytes,
)

PROFILE = "with-wireguard"
OURS_REF = "rpbuild-bench:changed"
PLAIN_REF = "rpbuild-bench:changed-plain"
SYSTEM = "x86_64-linux"


def edit_description(project: Path, value: str) -> None:
    """A new description for the package procps (documentation: not in the image)."""
    path = project / "profiles" / f"{PROFILE}.toml"
    text, n = re.subn(
        r'(name = "procps"\nattr = "procps"\ndescription = ")[^"]*(")',
        rf"\g<1>sysctl, ps and friends ({value})\g<2>",
        path.read_text(encoding="utf-8"),
    )
    if n != 1:
        raise SystemExit(f"bench: {path}: no description of the package procps")
    path.write_text(text, encoding="utf-8")


def edit_env(project: Path, value: str) -> None:
    path = project / "profiles" / f"{PROFILE}.toml"
    text = re.sub(r"\n# bench-env.*\Z", "", path.read_text(encoding="utf-8"), flags=re.S)
    path.write_text(text + f'\n# bench-env\n[image.env]\nBENCH_EDIT = "{value}"\n', "utf-8")


def measured(argv_runs: Callable[[], None], pids: list[int]) -> tuple[float, int, int]:
    """Seconds, bytes written by the run's own processes (rpbuild or nix and their
    children, the docker client), and bytes written by the engine's daemons."""
    w0, d0 = written_bytes(), daemon_written(pids)
    started = time.perf_counter()
    argv_runs()
    seconds = time.perf_counter() - started
    return seconds, written_bytes() - w0, daemon_written(pids) - d0


def median(values: list[int]) -> int:
    return sorted(values)[len(values) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=5, help="timed runs of each side")
    args = parser.parse_args()

    print("machine:", json.dumps(machine()))
    pids = daemon_pids()
    if not pids:
        raise SystemExit("bench: no dockerd/containerd process found to read I/O from")
    tmp = Path(tempfile.mkdtemp(prefix="rpbuild-bench-changed-"))
    try:
        ours_dir, plain_dir = tmp / "ours", tmp / "plain"
        overrides = make_project(ours_dir)
        shutil.copytree(ours_dir / "profiles", plain_dir / "profiles")
        shutil.copytree(ours_dir / "templates", plain_dir / "templates")
        shutil.copy2(ours_dir / "flake.lock", plain_dir / "flake.lock")
        ours = [RPBUILD, "image", "--profile", PROFILE, "--tag", OURS_REF, *overrides]

        def rpbuild_image() -> None:
            run(ours, cwd=ours_dir)

        def plain_build_and_load() -> None:
            installable = f"path:{plain_dir}#packages.{SYSTEM}.{PROFILE}"
            proc = run(["nix", *NIX_FLAGS, "build", "--no-link", "--json", installable, *overrides])
            out = json.loads(proc.stdout)[0]["outputs"]["out"]
            run(["docker", "load", "-i", out])

        def render_plain() -> None:
            """flake.nix of the plain side: rpbuild's, with the archive in the store."""
            run([RPBUILD, "render"], cwd=plain_dir)
            flake = plain_dir / "flake.nix"
            text = flake.read_text(encoding="utf-8")
            text = text.replace("dockerTools.streamLayeredImage", "dockerTools.buildLayeredImage")
            # The plain image is named by the profile (no rpbuild-build.json): its own tag.
            text = text.replace(
                "inherit (reference) name tag;", 'name = "rpbuild-bench"; tag = "changed-plain";'
            )
            flake.write_text(text, encoding="utf-8")

        # Warm-up: both sides build and load once, so that every timed run is a change.
        render_plain()
        rpbuild_image()
        plain_build_and_load()

        results = []
        for kind, edit in (("description", edit_description), ("env", edit_env)):
            ours_t: list[float] = []
            plain_t: list[float] = []
            ours_b: list[tuple[int, int]] = []
            plain_b: list[tuple[int, int]] = []
            for _ in range(args.runs):
                value = uuid.uuid4().hex[:12]
                edit(ours_dir, value)
                t, own, engine = measured(rpbuild_image, pids)
                ours_t.append(t)
                ours_b.append((own, engine))
                edit(plain_dir, value)
                render_plain()
                t, own, engine = measured(plain_build_and_load, pids)
                plain_t.append(t)
                plain_b.append((own, engine))
            so, sp = Stats(tuple(ours_t)), Stats(tuple(plain_t))
            bo, bp = median([a + b for a, b in ours_b]), median([a + b for a, b in plain_b])
            o_own, o_eng = median([a for a, _ in ours_b]), median([b for _, b in ours_b])
            p_own, p_eng = median([a for a, _ in plain_b]), median([b for _, b in plain_b])
            print(f"\n{kind} edit in {PROFILE}, {args.runs} runs each, interleaved:")
            print(
                f"  (a) rpbuild image                     {so.show()}   wrote {mib(bo)} "
                f"(rpbuild, nix: {mib(o_own)}; dockerd, containerd: {mib(o_eng)})"
            )
            print(
                f"  (b) nix build && docker load -i OUT   {sp.show()}   wrote {mib(bp)} "
                f"(nix, docker client: {mib(p_own)}; dockerd, containerd: {mib(p_eng)})"
            )
            print(f"  (b)/(a) time {sp.median / so.median:.1f}x")  # fmt: skip
            results.append(
                Result(
                    name=f"changed_path_{kind}",
                    command=f"{kind} edit in {PROFILE}: rpbuild image vs "
                    "nix build && docker load -i (buildLayeredImage)",
                    ours=so,
                    baseline=sp,
                    baseline_name="nix build (archive in the store) && docker load -i",
                    ratio=so.median / sp.median,
                    target="measured (no target)",
                    met=None,
                    notes=(
                        f"rpbuild side: its processes {o_own} B, the engine {o_eng} B",
                        f"plain side: its processes {p_own} B, the engine {p_eng} B",
                    ),
                    ours_bytes=bo,
                    baseline_bytes=bp,
                )
            )
        for result in results:
            emit(result)
        return 0
    finally:
        for ref in (OURS_REF, PLAIN_REF):
            subprocess.run(["docker", "image", "rm", "--force", ref], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    with bytecode_cache():
        code = main()
    sys.exit(code)
