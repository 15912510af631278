"""The tunnel checks of `rpbuild test` can fail: a client that drops the tunnel once it
is up (while its healthcheck goes on saying it is fine) makes `rpbuild test` exit 1.
That the tunnel is really gone is checked from outside rpbuild, with a ping of our own
through `docker exec`, before and after the drop. Real compose, stand-in images; run
under `flock /tmp/rpbuild-docker.lock`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rpbuild import engine as engines
from rpbuild.topology import compose as cmp
from rpbuild.topology import composetool
from tests.integration.test_topology import REKEY, Env, build_args, docker, env, nothing_left

pytestmark = [pytest.mark.nix, pytest.mark.docker]
__all__ = ["env"]  # the module-scoped fixture: the project and its with-wireguard image

SERVER_TUNNEL, CLIENT_TUNNEL = "10.213.0.1", "10.213.0.2"


def _shell(image: str) -> str:
    """The image's POSIX shell: the entrypoint's interpreter (the image has no /bin/sh)."""
    first = docker(
        "run",
        "--rm",
        "--pull",
        "never",
        "--entrypoint",
        "/bin/head",
        image,
        "-n",
        "1",
        "/bin/rpbuild-entrypoint",
    ).stdout
    assert first.startswith("#!"), first
    return first[2:].split()[0]


def _dropping_compose_file(env: Env, tmp_path: Path) -> Path:
    """The rendered topology, with healthchecks that lie: the client's sets rosenpass0
    down as soon as its tunnel address is on it, and both report "tunnel: ..." as the
    real healthcheck does when it has proved the tunnel."""
    subnets = cmp.free_subnets(composetool.subnets_in_use(engines.detect("docker")))
    made = env.cli(
        "compose",
        "--ip",
        "4",
        "--userspace-wireguard",
        "--standin-rekey-seconds",  # the PSK checks wait for one renewal: keep it short
        REKEY,
        "--tag",
        env.tag,
        "--subnet4",
        subnets[0],
        "-o",
        str(tmp_path / "plain.json"),
    )
    assert made.returncode == 0, made.stderr
    doc = json.loads((tmp_path / "plain.json").read_text())
    sh = _shell(env.tag)
    drop = (
        f"ip -4 addr show dev rosenpass0 | grep -q {CLIENT_TUNNEL}/ "
        "&& ip link set rosenpass0 down && echo 'tunnel: dropped by the test'"
    )
    doc["services"]["client"]["healthcheck"]["test"] = ["CMD", sh, "-c", drop]
    doc["services"]["server"]["healthcheck"]["test"] = [
        "CMD",
        sh,
        "-c",
        "test -e /keys/public/server/wgpk && echo 'tunnel: not checked'",
    ]
    path = tmp_path / "dropping.json"
    path.write_text(json.dumps(doc))
    return path


def _ping(container: str, address: str) -> int:
    return docker("exec", container, "ping", "-c", "2", "-W", "2", address, check=False).returncode


def test_a_peer_that_drops_the_tunnel_fails_rpbuild_test(env: Env, tmp_path: Path) -> None:
    dropping = _dropping_compose_file(env, tmp_path)
    # From outside: once `up` has seen it healthy, the client's tunnel is gone.
    name = env.name()
    up = env.cli("up", "--compose-file", str(dropping), "--name", name, *build_args(env))
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        ids = composetool.containers(engines.detect("docker"), name)
        assert _ping(ids["server"], SERVER_TUNNEL) == 0  # our ping works where it should
        assert _ping(ids["client"], SERVER_TUNNEL) != 0, "the client did not drop the tunnel"
        assert _ping(ids["server"], CLIENT_TUNNEL) != 0
    finally:
        down = env.cli("down", "--name", name)
        assert down.returncode == 0, down.stderr
    assert not (env.project / ".rpbuild" / "topology" / f"{name}.lock").exists()

    name = env.name()
    run = env.cli("test", "--compose-file", str(dropping), "--name", name, *build_args(env))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "tunnel checks failed; first: ping client -> server" in run.stderr, run.stderr
    assert nothing_left(name)
    assert not list((env.project / ".rpbuild" / "topology").glob(f"{name}.*"))
