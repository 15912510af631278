"""Compose through its CLI, against a scripted engine executable (FakeEngine) that rpbuild
runs through its real process helper: which tool is chosen, the arguments each command
gets, and what is read from the listings. tests/integration/test_topology.py runs the real
Compose."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from rpbuild.errors import EngineError, ToolMissing
from rpbuild.topology import composetool
from rpbuild.topology.composetool import PROJECT_LABEL, Compose
from tests.unit.topology.conftest import ENGINE, UNREACHABLE, FakeEngine

FILE = Path("/run/rvx.json")


def standalone(fake: FakeEngine, name: str = "docker-compose") -> Path:
    """A standalone compose tool on the fake's PATH (it records its arguments)."""
    tool = fake.dir / name
    tool.write_text(f'#!/bin/sh\necho "$*" >> {fake.dir / "tool-calls"}\n')
    tool.chmod(0o755)
    return tool


def test_the_plugin_and_the_standalone_tool_get_the_same_arguments() -> None:
    plugin = Compose(engine=ENGINE, command=("/usr/bin/docker", "compose"))
    tool = Compose(engine=ENGINE, command=("/usr/local/bin/docker-compose",))
    assert (plugin.name, tool.name) == ("docker compose", "docker-compose")
    args = ["-p", "rvx", "-f", str(FILE), "up"]
    assert plugin.argv("rvx", FILE, "up") == ["/usr/bin/docker", "compose", *args]
    assert tool.argv("rvx", FILE, "up") == ["/usr/local/bin/docker-compose", *args]


def test_the_engine_s_plugin_is_preferred(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakeEngine(monkeypatch, tmp_path, {"compose version": (0, "Docker Compose v2.26\n", "")})
    standalone(fake)
    assert composetool.detect(fake.engine) == Compose(
        engine=fake.engine, command=(fake.engine.binary, "compose")
    )
    assert fake.calls == ["compose version"]


STANDALONE = [("docker", "docker-compose"), ("podman", "podman-compose")]


def without_plugin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine: str) -> FakeEngine:
    """An engine whose `compose` subcommand does not exist."""
    return FakeEngine(
        monkeypatch, tmp_path, {"compose version": (125, "", "unknown command")}, engine
    )


@pytest.mark.parametrize(("engine", "tool"), STANDALONE)
def test_without_the_plugin_the_standalone_tool_on_path_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine: str, tool: str
) -> None:
    """Debian 12 packages docker-compose 1.29 only."""
    fake = without_plugin(monkeypatch, tmp_path, engine)
    path = standalone(fake, tool)
    assert composetool.detect(fake.engine).command == (str(path),)


@pytest.mark.parametrize(("engine", "tool"), STANDALONE)
def test_no_compose_at_all_is_one_line_with_its_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine: str, tool: str
) -> None:
    fake = without_plugin(monkeypatch, tmp_path, engine)
    with pytest.raises(ToolMissing) as info:
        composetool.detect(fake.engine)
    assert info.value.message == f"neither `{engine} compose` nor {tool} is installed"
    assert info.value.hint == f"install it with `apt-get install {tool}`"


def podman_with_provider(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, socket_path: Path
) -> FakeEngine:
    """`podman compose` that hands the work to docker-compose over Podman's API socket."""
    provider = '>>>> Executing external compose provider "/usr/bin/docker-compose". <<<<\n'
    return FakeEngine(
        monkeypatch,
        tmp_path,
        {
            "compose version": (0, "Docker Compose version 2.26\n", provider),
            "info --format {{.Host.RemoteSocket.Path}}": (0, f"unix://{socket_path}\n", ""),
        },
        "podman",
    )


def test_podman_compose_without_its_api_service_is_found_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without it `up` failed after the build with only "exit status 1"."""
    path = tmp_path / "podman.sock"
    fake = podman_with_provider(monkeypatch, tmp_path, path)
    with pytest.raises(ToolMissing) as info:
        composetool.detect(fake.engine)
    assert info.value.message == (
        "`podman compose` runs docker-compose against Podman's API socket "
        f"{path}, and no Podman service listens there"
    )
    assert "systemctl start podman.socket" in (info.value.hint or "")


def test_podman_compose_with_its_api_service_listening_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "podman.sock"
    fake = podman_with_provider(monkeypatch, tmp_path, path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        assert composetool.detect(fake.engine).command == (fake.engine.binary, "compose")
    assert fake.calls == ["compose version", "info --format {{.Host.RemoteSocket.Path}}"]


def test_up_and_down_use_only_flags_compose_v1_and_v2_both_know(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = FakeEngine(monkeypatch, tmp_path, {"compose": (0, "", "")})
    compose = Compose(engine=fake.engine, command=(fake.engine.binary, "compose"))
    composetool.up(compose, "rvx", FILE, timeout=30)
    result = composetool.down(compose, "rvx", FILE)
    assert result.returncode == 0
    assert fake.calls == [
        f"compose -p rvx -f {FILE} up --detach --no-build",
        f"compose -p rvx -f {FILE} down --volumes --remove-orphans --timeout 5",
    ]


def test_a_failing_up_raises_and_a_failing_down_is_returned(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """down's caller sweeps by label whatever compose could not remove, so down's failure is data."""
    fake = FakeEngine(monkeypatch, tmp_path, {"compose": (1, "", "network busy\n")})
    compose = Compose(engine=fake.engine, command=(fake.engine.binary, "compose"))
    with pytest.raises(EngineError):
        composetool.up(compose, "rvx", FILE, timeout=30)
    result = composetool.down(compose, "rvx", FILE)
    assert (result.returncode, result.stderr_tail(1)) == (1, "network busy")


def test_containers_are_found_by_their_labels_not_their_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """v1 names containers project_service_1, v2 project-service-1."""
    listing = "aaa111 server\nbbb222 client\n\nccc333 \n"
    fake = FakeEngine(monkeypatch, tmp_path, {"ps": (0, listing, "")})
    assert composetool.containers(fake.engine, "rvx") == {
        "server": "aaa111",
        "client": "bbb222",
        "": "ccc333",  # a container without the service label: still the project's
    }
    [call] = fake.calls
    assert call.startswith(f"ps --all --no-trunc --filter label={PROJECT_LABEL}=rvx --format ")


def test_sweep_removes_what_is_left_by_label_and_lists_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def left(items: str, removal: str) -> dict[str, object]:
        return {f"after {removal}": (0, "", ""), "default": (0, items, "")}

    answers = {
        "ps --all --quiet": left("c1\nc2\n", "rm"),
        "network ls --quiet": left("n1\n", "network rm"),
        "volume ls --quiet": (0, "v1\n", ""),  # a volume that stays
        "rm": (0, "", ""),
        "network rm": (0, "", ""),
        "volume rm": (1, "", "volume is in use\n"),
    }
    fake = FakeEngine(monkeypatch, tmp_path, answers)
    assert composetool.leftovers(fake.engine, "rvx") == {
        "containers": ["c1", "c2"],
        "networks": ["n1"],
        "volumes": ["v1"],
    }
    assert composetool.sweep(fake.engine, "rvx") == {
        "containers": [],
        "networks": [],
        "volumes": ["v1"],
    }
    label = f"--filter label={PROJECT_LABEL}=rvx"
    assert [c for c in fake.calls if "ls" in c or c.startswith("ps")] == [
        f"ps --all --quiet {label}",
        f"network ls --quiet {label}",
        f"volume ls --quiet {label}",
    ] * 3
    assert [c for c in fake.calls if " rm" in c or c.startswith("rm")] == [
        "rm --force --volumes c1 c2",
        "network rm n1",
        "volume rm --force v1",
    ]


DOCKER_NETWORKS = [
    {"Name": "bridge", "IPAM": {"Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]}},
    {"Name": "host", "IPAM": {"Config": []}},
    {"Name": "dual", "IPAM": {"Config": [{"Subnet": "10.1.0.0/24"}, {"Subnet": "fd00:1::/64"}]}},
]
PODMAN_NETWORKS = [
    {"name": "podman", "subnets": [{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]},
    {"id": "f00", "subnets": None},
]


@pytest.mark.parametrize(
    ("engine", "networks", "subnets"),
    [
        (
            "docker",
            DOCKER_NETWORKS,
            [("bridge", "172.17.0.0/16"), ("dual", "10.1.0.0/24"), ("dual", "fd00:1::/64")],
        ),
        ("podman", PODMAN_NETWORKS, [("podman", "10.88.0.0/16")]),
    ],
)
def test_network_subnets_read_docker_s_and_podman_s_inspect_output(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    engine: str,
    networks: list[dict[str, object]],
    subnets: list[tuple[str, str]],
) -> None:
    answers = {
        "network ls --quiet": (0, "id1\nid2\n", ""),
        "network inspect id1 id2": (0, json.dumps(networks), ""),
    }
    fake = FakeEngine(monkeypatch, tmp_path, answers, engine)
    assert composetool.network_subnets(fake.engine) == subnets
    assert composetool.subnets_in_use(fake.engine) == [s for _, s in subnets]


def test_no_networks_ask_nothing_more(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = FakeEngine(monkeypatch, tmp_path, {"network ls --quiet": (0, "\n", "")})
    assert composetool.network_subnets(fake.engine) == []
    assert fake.calls == ["network ls --quiet"]


def test_a_network_removed_meanwhile_is_asked_about_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Other programs create and remove networks between the listing and the inspection."""
    gone = (1, "", "Error response from daemon: network id2 not found\n")
    answers = {
        "network ls --quiet": {
            "after network inspect": (0, "id1\n", ""),
            "default": (0, "id1\nid2\n", ""),
        },
        "network inspect id1 id2": gone,
        "network inspect id1": (0, json.dumps(DOCKER_NETWORKS[:1]), ""),
    }
    fake = FakeEngine(monkeypatch, tmp_path, answers)
    assert composetool.network_subnets(fake.engine) == [("bridge", "172.17.0.0/16")]
    assert fake.calls == [
        "network ls --quiet",
        "network inspect id1 id2",
        "network ls --quiet",
        "network inspect id1",
    ]


def test_an_inspection_failing_otherwise_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    answers = {
        "version": (0, "27.0\n", ""),
        "network ls --quiet": (0, "id1\n", ""),
        "network inspect": (1, "", "permission denied\n"),
    }
    fake = FakeEngine(monkeypatch, tmp_path, answers)
    with pytest.raises(EngineError) as info:
        composetool.network_subnets(fake.engine)
    assert info.value.message == "docker network inspect failed (exit 1): permission denied"
    assert [c for c in fake.calls if c.startswith("network inspect")] == ["network inspect id1"]


def test_a_failing_listing_is_an_error_not_an_empty_project(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    engine = FakeEngine(monkeypatch, tmp_path, UNREACHABLE).engine
    with pytest.raises(ToolMissing, match="Docker daemon is not running or not reachable"):
        composetool.leftovers(engine, "rvx")
    # The daemon answers, the listing fails for another reason: that reason, in one line.
    answers = {"version": (0, "20.10\n", ""), "": (1, "", "permission denied\n")}
    engine = FakeEngine(monkeypatch, tmp_path, answers).engine
    with pytest.raises(EngineError) as info:
        composetool.leftovers(engine, "rvx")
    assert info.value.message == "docker ps failed (exit 1): permission denied"
    with pytest.raises(EngineError, match=r"^docker ps failed"):
        composetool.containers(engine, "rvx")
    with pytest.raises(EngineError, match=r"^docker network ls failed"):
        composetool.network_subnets(engine)
