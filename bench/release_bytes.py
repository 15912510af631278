#!/usr/bin/env python3
"""Bytes a release writes to disk per pushed image, and per image when nothing is pushed.

`rpbuild release` pushes with skopeo, which cannot read a docker-archive from a pipe
(1.9.3 refuses `docker-archive:/dev/stdin` and a FIFO: "archive/tar: invalid tar
header"), so each pushed image is streamed once into a temporary archive. Verifying the
rebuild reads its stream through tar and writes nothing of it; a release without --push
(and `rpbuild verify`) writes no archive at all. This measures both against the image's
uncompressed size (the length of its stream), with a real registry (docker-registry on
127.0.0.1, storage in a temporary directory). No Docker engine is involved.

Bytes written: write_bytes of /proc/self/io around each `rpbuild release` (rpbuild, nix,
dd, tar and skopeo are reaped children, so their I/O is included). The registry's own
writes (the pushed blobs, its storage) are counted apart, from its /proc/PID/io.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from _common import (
    NIX_FLAGS,
    RPBUILD,
    Result,
    Stats,
    bytecode_cache,
    emit,
    machine,
    make_project,
    mib,
    run,
    written_bytes,
)

REGISTRY_BIN = "/usr/bin/docker-registry"
PROFILE = "with-wireguard"
GIT = ["git", "-c", "user.name=rpbuild bench", "-c", "user.email=bench@rpbuild.invalid"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def registry(root: Path) -> Iterator[tuple[str, int]]:
    """docker-registry on 127.0.0.1 (plain HTTP): its host:port and its pid."""
    port = _free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    with (root / "registry.log").open("wb") as log:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=5):
                        break
                except (urllib.error.URLError, ConnectionError) as exc:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"bench: docker-registry did not start: {exc}") from None
                    time.sleep(0.1)
            yield f"127.0.0.1:{port}", proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def pid_written(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text(encoding="utf-8").splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split(":")[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=3, help="releases of each kind")
    args = parser.parse_args()
    if not Path(REGISTRY_BIN).exists() or shutil.which("skopeo") is None:
        raise SystemExit("bench: needs docker-registry and skopeo (bash .ci/setup)")

    print("machine:", json.dumps(machine()))
    tmp = Path(tempfile.mkdtemp(prefix="rpbuild-bench-release-"))
    try:
        project = tmp / "project"
        overrides = make_project(project)
        # The stand-ins live outside the project: the working tree stays clean.
        shutil.move(str(project / "standin"), str(tmp / "standin"))
        overrides = [o.replace(str(project / "standin"), str(tmp / "standin")) for o in overrides]
        (project / ".gitignore").write_text(".rpbuild/\n")
        run([RPBUILD, "render"], cwd=project)
        run([*GIT, "-C", str(project), "init", "-q"])
        run([*GIT, "-C", str(project), "add", "-A"])
        run([*GIT, "-C", str(project), "commit", "-q", "-m", "bench project"])

        # The image's size: the length of its stream (built by nix from the rendered flake;
        # the release's own build differs only by its fingerprint label).
        installable = f"path:{project}#packages.x86_64-linux.{PROFILE}"
        built = json.loads(
            run(["nix", *NIX_FLAGS, "build", "--no-link", "--json", installable, *overrides]).stdout
        )[0]["outputs"]["out"]
        stream = subprocess.run([built], capture_output=True, check=True).stdout
        image_bytes = len(stream)
        print(f"image {PROFILE}: stream (uncompressed archive) {mib(image_bytes)}")

        with registry(tmp / "registry") as (host, pid):
            rows: dict[str, tuple[list[float], list[int], list[int]]] = {}
            for i in range(args.runs):
                for kind in ("push", "no-push"):
                    push = ["--push", f"{host}/bench/rosenpass", "--no-tls-verify"]
                    argv = [
                        RPBUILD, "release", f"0.{i}.{0 if kind == 'push' else 1}",
                        "--profile", PROFILE, *(push if kind == "push" else []),
                        "--allow-override-input", *overrides,
                    ]  # fmt: skip
                    w0, r0 = written_bytes(), pid_written(pid)
                    started = time.perf_counter()
                    run(argv, cwd=project)
                    seconds = time.perf_counter() - started
                    times, ours, reg = rows.setdefault(kind, ([], [], []))
                    times.append(seconds)
                    ours.append(written_bytes() - w0)
                    reg.append(pid_written(pid) - r0)
        push_t, push_b, push_reg = rows["push"]
        plain_t, plain_b, _ = rows["no-push"]
        med = sorted(push_b)[len(push_b) // 2]
        med_plain = sorted(plain_b)[len(plain_b) // 2]
        print(f"\nrelease --push of {PROFILE} (1 image), {args.runs} runs:")
        print(f"  {Stats(tuple(push_t)).show()}")
        print(f"  written by the release (temporary archive, nix, skopeo): median {mib(med)} "
              f"= {med / image_bytes:.2f} x the image")  # fmt: skip
        print(f"  written by the registry (its storage): median "
              f"{mib(sorted(push_reg)[len(push_reg) // 2])}")  # fmt: skip
        print(f"release without --push: {Stats(tuple(plain_t)).show()}, written median "
              f"{mib(med_plain)} = {med_plain / image_bytes:.2f} x the image")  # fmt: skip
        emit(
            Result(
                name="release_bytes",
                command=f"rpbuild release --profile {PROFILE} --push (vs without --push)",
                ours=Stats(tuple(push_t)),
                baseline=Stats(tuple(plain_t)),
                baseline_name="the same release without --push",
                ratio=med / image_bytes,
                target="measured: bytes written per pushed image / image size",
                met=None,
                notes=(f"image (uncompressed stream) {image_bytes} bytes",),
                ours_bytes=med,
                baseline_bytes=med_plain,
            )
        )
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    with bytecode_cache():
        code = main()
    sys.exit(code)
