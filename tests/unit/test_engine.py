"""engine.ensure_running tells a stopped daemon from one the user may not use."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpbuild import engine as engines
from rpbuild.errors import EngineError, ToolMissing

DENIED = (
    "Got permission denied while trying to connect to the Docker daemon socket at "
    "unix:///var/run/docker.sock: dial unix /var/run/docker.sock: connect: permission denied"
)
DOWN = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."


def fake_docker(tmp_path: Path, stderr: str) -> engines.Engine:
    exe = tmp_path / "docker"
    exe.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit 1\n")
    exe.chmod(0o755)
    return engines.Engine(name="docker", binary=str(exe))


def test_permission_denied_is_not_reported_as_a_stopped_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    with pytest.raises(EngineError) as info:
        engines.ensure_running(fake_docker(tmp_path, DENIED))
    assert info.value.message.startswith("cannot use docker: Got permission denied")
    assert info.value.hint is not None and "docker group" in info.value.hint
    with pytest.raises(ToolMissing, match="not running or not reachable"):
        engines.ensure_running(fake_docker(tmp_path, DOWN))
