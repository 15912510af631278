"""Podman for real: `rpbuild image --engine podman` loads an image that Podman then runs.

Loading works with every Podman Debian ships (4.3 on Debian 12, 5.4 on Debian 13). Running a
container also needs what the machine gives Podman: where the machine stops it (Debian 12's
Podman 4.3 fails on rlimits in this workplace; crun refuses a kernel with cgroups in hybrid
mode, where runc, which Debian installs with docker.io, works), the test says what stopped it,
in one line, and skips.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import RunCli, cli_runner, copy_project
from tests.integration.test_image import build

pytestmark = [
    pytest.mark.nix,
    pytest.mark.docker,
    pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed"),
]

ENV = {"PODMAN_IGNORE_CGROUPSV1_WARNING": "1"}


def podman(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=300,
        env={**os.environ, **ENV},
    )


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if "level=warning" not in line]
    return lines[-1] if lines else f"exit status {proc.returncode}"


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("podman")


@pytest.fixture(scope="module")
def project_module(module_dir: Path) -> Path:
    return copy_project(module_dir)


@pytest.fixture(scope="module")
def rpbuild_module(module_dir: Path) -> RunCli:
    return cli_runner(module_dir)


@pytest.fixture(scope="module")
def podman_image(rpbuild_module: RunCli, project_module: Path) -> Iterator[str]:
    ref = f"localhost/rpbuild-test-{uuid.uuid4().hex[:8]}:podman"
    data = build(rpbuild_module, project_module, "--engine", "podman", "--tag", ref)
    assert data["engine"] == "podman" and data["up_to_date"] is False
    try:
        yield ref
    finally:
        podman("image", "rm", "--force", ref)


@dataclass(frozen=True)
class Runtime:
    """Where the podman options go: before `run` (the OCI runtime) and after it."""

    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return podman(*self.before, "run", "--rm", "--pull", "never", *self.after, *args)

    def describe(self) -> str:
        return " ".join((*self.before, *self.after)) or "podman's defaults"


@pytest.fixture(scope="module")
def runtime(podman_image: str) -> Runtime:
    """Options that let this machine run a container, or a one-line skip saying what stops it.

    Only options about the machine are tried: the OCI runtime (crun refuses cgroups in hybrid
    mode; runc does not) and the open-files and process limits (Podman 4.3 raises them above
    what this machine allows a container).
    """
    runtimes = [()] + ([("--runtime", "runc")] if shutil.which("runc") else [])
    ours = [
        f"{name}={hard}:{hard}"
        for name, limit in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC))
        for hard in [resource.getrlimit(limit)[1]]
    ]
    limits = ((), tuple(arg for limit in ours for arg in ("--ulimit", limit)))
    attempts = [Runtime(before, after) for before in runtimes for after in limits]
    failures: dict[str, list[str]] = {}
    for attempt in attempts:
        proc = attempt.run(podman_image, "true")
        if proc.returncode == 0:
            return attempt
        failures.setdefault(last_line(proc), []).append(attempt.describe())
    why = " | ".join(f"{', '.join(tried)}: {error}" for error, tried in failures.items())
    pytest.skip(f"podman cannot run containers on this machine ({why})")


def test_podman_runs_rosenpass_from_the_image(podman_image: str, runtime: Runtime) -> None:
    proc = runtime.run(podman_image, "rosenpass", "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("rosenpass "), proc.stdout


def test_podman_runs_the_entrypoint_in_standalone_mode(
    podman_image: str, runtime: Runtime, tmp_path: Path
) -> None:
    private, public = tmp_path / "private", tmp_path / "public"
    private.mkdir()
    public.mkdir()
    proc = runtime.run(
        "-v",
        f"{private}:/keys/private",
        "-v",
        f"{public}:/keys/public",
        "-e",
        "MODE=standalone",
        podman_image,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (private / "rosenpass").iterdir()) == ["pqpk", "pqsk", "wgsk"]
    assert sorted(p.name for p in public.iterdir()) == ["pqpk", "wgpk"]


def test_podman_image_is_up_to_date_on_the_second_run(
    rpbuild_module: RunCli, project_module: Path, podman_image: str
) -> None:
    again = build(rpbuild_module, project_module, "--engine", "podman", "--tag", podman_image)
    assert again["up_to_date"] is True
