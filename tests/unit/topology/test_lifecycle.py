"""The topology's lifecycle with the engine faked: options checked before anything is
touched, what `up` concludes from what `docker inspect` says, teardown, locks, SIGINT.

Engine failures (an unreachable daemon, a listing refused, a removal that fails) come
from FakeEngine, a scripted executable that rpbuild runs through its real process
helper; EngineCalls only guards that refused runs start no process at all."""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from rpbuild.engine import Engine
from rpbuild.errors import EngineError, RpbuildError, ToolMissing
from rpbuild.project import Project
from rpbuild.topology import compose as cmp
from rpbuild.topology import lifecycle as topo
from rpbuild.topology.composetool import Compose
from tests.unit.topology.conftest import ENGINE, UNREACHABLE, FakeClock, FakeEngine


def state(health: str, output: str, status: str = "running") -> topo._State:
    return topo._State(status=status, exit_code=1, health=health, last_output=output, last_ok=True)


def fake_states(monkeypatch: pytest.MonkeyPatch, rounds: list[dict[str, topo._State]]) -> None:
    calls = iter(rounds)
    monkeypatch.setattr(
        "rpbuild.topology.composetool.containers",
        lambda e, n: {"server": "sid", "client": "cid"},
    )
    monkeypatch.setattr(topo, "_states", lambda e, ids: next(calls, rounds[-1]))


def test_waiting_ends_when_both_healthchecks_proved_the_tunnel(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    ready = state("healthy", "ready: public keys published, waiting for a client")
    tunnel = state("healthy", "tunnel: ping 10.213.0.2 ok, handshake 1 s ago")
    starting = state("starting", "no tunnel: no WireGuard handshake yet")
    fake_states(
        monkeypatch,
        [
            {"server": ready},
            {"server": ready, "client": starting},
            {"server": ready, "client": tunnel},  # server healthy but not proven yet
            {"server": tunnel, "client": tunnel},
        ],
    )
    topo.wait_for_tunnel(ENGINE, "t", deadline=clock.now + 60, timeout=60)
    assert clock.now == 1000.0 + 3 * topo.POLL_S


def test_waiting_fails_early_when_a_peer_exits(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    fake_states(monkeypatch, [{"server": state("", "", status="exited")}])
    monkeypatch.setattr(topo, "entrypoint_error", lambda e, cid: None)
    with pytest.raises(topo.TopologyFailed, match=r"server container stopped: exited \(exit 1\)$"):
        topo.wait_for_tunnel(ENGINE, "t", deadline=clock.now + 60, timeout=60)
    assert clock.now == 1000.0


def test_a_peer_that_exits_is_explained_by_its_entrypoint_s_error(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    fake_states(monkeypatch, [{"client": state("", "", status="exited")}])
    error = "rp exchange exited (status 1) before rosenpass0 came up"
    monkeypatch.setattr(topo, "entrypoint_error", lambda e, cid: error)
    with pytest.raises(topo.TopologyFailed) as caught:
        topo.wait_for_tunnel(ENGINE, "t", deadline=clock.now + 60, timeout=60)
    assert caught.value.message == f"the client container stopped: exited (exit 1): {error}"
    assert caught.value.show_logs


def test_no_wireguard_module_is_its_own_failure_without_logs(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    fake_states(monkeypatch, [{"server": state("", "", status="exited")}])
    error = "no WireGuard kernel module on this host, and no /dev/net/tun for wireguard-go; ..."
    monkeypatch.setattr(topo, "entrypoint_error", lambda e, cid: error)
    with pytest.raises(topo.NoWireGuard) as caught:
        topo.wait_for_tunnel(ENGINE, "t", deadline=clock.now + 60, timeout=60)
    assert caught.value.message == f"the server cannot create its WireGuard device: {error}"
    assert not caught.value.show_logs


def test_the_entrypoint_s_last_error_is_read_from_timestamped_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logs = [
        "2026-01-01T00:00:01.000000000Z rpbuild-entrypoint: generated new secret keys in /k",
        "2026-01-01T00:00:02.000000000Z rpbuild-entrypoint: error: first",
        "2026-01-01T00:00:03.000000000Z rpbuild-entrypoint: error: the last one ",
    ]
    monkeypatch.setattr("rpbuild.engine.container_output", lambda e, cid: logs)
    assert topo.entrypoint_error(ENGINE, "sid") == "the last one"
    monkeypatch.setattr("rpbuild.engine.container_output", lambda e, cid: logs[:1])
    assert topo.entrypoint_error(ENGINE, "sid") is None


def test_waiting_has_a_deadline(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    fake_states(monkeypatch, [{"server": state("healthy", "ready: ...")}])
    with pytest.raises(topo.TopologyFailed, match=r"not up within 5 s .*client: not created"):
        topo.wait_for_tunnel(ENGINE, "t", deadline=clock.now + 5, timeout=5)


def test_names() -> None:
    assert topo.check_name("rpbuild-test-1a2b") == "rpbuild-test-1a2b"
    with pytest.raises(RpbuildError, match="not a compose project name"):
        topo.check_name("Bad Name")


# --- options are checked first; a running topology is never touched ----------------


class EngineCalls:
    """Records what would reach the engine; any call beyond the allowed ones fails."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, containers: dict[str, str]) -> None:
        self.calls: list[str] = []
        self.torn_down: list[str] = []

        def run(argv: list[str], **_: object) -> object:
            self.calls.append(" ".join(argv))
            raise AssertionError(f"unexpected engine call: {argv}")

        def listed(engine: Engine, name: str) -> dict[str, str]:
            self.calls.append(f"containers {name}")
            return containers

        def teardown(*args: object, **_: object) -> None:
            self.torn_down.append(str(args[1]))

        monkeypatch.setattr("rpbuild.process.run", run)
        monkeypatch.setattr("rpbuild.process.pipe", run)
        monkeypatch.setattr("rpbuild.topology.composetool.containers", listed)
        monkeypatch.setattr(topo, "teardown", teardown)


def fake_project(tmp_path: Path) -> Project:
    return cast(Project, SimpleNamespace(state_dir=tmp_path / "state"))


RUNNING = {"server": "sid", "client": "cid"}


def written(state: Path) -> list[Path]:
    """Files under state, lock files aside (a run claims its topology's name first)."""
    return [p for p in state.rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_test_refuses_a_running_topology_and_touches_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = EngineCalls(monkeypatch, RUNNING)
    lines: list[str] = []
    with pytest.raises(RpbuildError) as info:
        topo.test(
            fake_project(tmp_path), ENGINE, "x:y", topo.Options(name="rvx"), notify=lines.append
        )
    assert info.value.message == "topology 'rvx' exists already"
    assert "rpbuild down --name rvx" in (info.value.hint or "")
    assert engine.calls == ["containers rvx"]  # looked, nothing else
    assert engine.torn_down == [] and lines == []
    assert written(tmp_path / "state") == []  # the name's lock file aside


def test_up_refuses_a_running_topology_the_same_way(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = EngineCalls(monkeypatch, RUNNING)
    with pytest.raises(RpbuildError, match=r"^topology 'rvx' exists already$"):
        topo.up(fake_project(tmp_path), ENGINE, "x:y", topo.Options(name="rvx"))
    assert engine.calls == ["containers rvx"] and engine.torn_down == []


BAD_OPTIONS = [
    ({"ip": "5"}, "--ip: '5' is not one of 4, 6, dual"),
    ({"name": "Bad Name"}, "--name: 'Bad Name' is not a compose project name"),
    ({"subnet4": "8.8.8.0/24"}, "--subnet4: 8.8.8.0/24 is not a private network"),
    ({"subnet4": "172.31.240.1/24"}, "--subnet4: '172.31.240.1/24' is not an IPv4 network"),
    ({"subnet6": "fe80::/64"}, "--subnet6: fe80::/64 is not a unique local"),
    ({"tunnel4": "10.213.0.0/30"}, "IPv4 tunnel subnet: 10.213.0.0/30 is too small"),
    ({"tunnel6": "2001:db8::/64"}, "IPv6 tunnel subnet: 2001:db8::/64 is not a unique local"),
    (
        {"subnet4": "10.213.0.0/16"},
        "--subnet4 10.213.0.0/16 overlaps the IPv4 tunnel subnet 10.213.0.0/24",
    ),
    ({"timeout": 0.0}, "--timeout: 0 is not a positive number of seconds"),
    (
        {"standin_rekey_seconds": 0.0},
        "--standin-rekey-seconds: 0 is not a number of seconds from 1 to 3600",
    ),
    (
        {"compose_file": Path("/nonexistent/c.json"), "standin_rekey_seconds": 6.0},
        "--standin-rekey-seconds: not used with --compose-file /nonexistent/c.json",
    ),
    ({"compose_file": Path("/nonexistent/c.json")}, "--compose-file /nonexistent/c.json: No such"),
    (
        {"ip": "4", "subnet6": "fd00:1::/64"},
        "--subnet6: fd00:1::/64 is not used with --ip 4, whose bridge is IPv4 only",
    ),
    (
        {"compose_file": Path("/nonexistent/c.json"), "subnet4": "172.30.0.0/24"},
        "--subnet4: not used with --compose-file /nonexistent/c.json, which sets the subnets",
    ),
    (
        {"compose_file": Path("/nonexistent/c.json"), "userspace_wireguard": True},
        "--userspace-wireguard: not used with --compose-file /nonexistent/c.json",
    ),
]


@pytest.mark.parametrize("entry", ["up", "test"])
@pytest.mark.parametrize(("kwargs", "message"), BAD_OPTIONS)
def test_bad_options_are_refused_before_anything_is_touched(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    entry: str,
    kwargs: dict[str, Any],
    message: str,
) -> None:
    """`up --ip 5 --name rvx` once tore rvx down, then complained about --ip."""
    engine = EngineCalls(monkeypatch, RUNNING)
    opts = topo.Options(**({"name": "rvx"} | kwargs))
    with pytest.raises(RpbuildError) as info:
        topo.validate_options(opts)
    assert info.value.message.startswith(message)
    assert "\n" not in info.value.message and "--tunnel" not in info.value.message
    call = topo.up if entry == "up" else topo.test
    with pytest.raises(RpbuildError) as again:
        call(fake_project(tmp_path), ENGINE, "x:y", opts)
    assert again.value.message == info.value.message
    assert engine.calls == [] and engine.torn_down == []
    assert written(tmp_path / "state") == []  # the name's lock file aside


def test_a_broken_compose_file_is_refused_before_anything_is_touched(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = EngineCalls(monkeypatch, {})
    broken = tmp_path / "c.json"
    broken.write_text("services: [\n")
    opts = topo.Options(compose_file=broken)
    with pytest.raises(RpbuildError, match=r"c.json: not a compose file \(JSON or YAML\): YAML"):
        topo.test(fake_project(tmp_path), ENGINE, "x:y", opts)
    assert engine.calls == [] and engine.torn_down == []


def test_a_missing_image_tears_nothing_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Nothing was created, so nothing is "removed" (no misleading message either)."""
    engine = EngineCalls(monkeypatch, {})
    monkeypatch.setattr(
        "rpbuild.topology.composetool.detect",
        lambda e: Compose(engine=e, command=("docker-compose",)),
    )
    monkeypatch.setattr("rpbuild.topology.composetool.network_subnets", lambda e: [])
    monkeypatch.setattr("rpbuild.engine.inspect", lambda e, ref: None)
    with pytest.raises(RpbuildError, match=r"^x:y: no such image in docker; build it first$"):
        topo.up(fake_project(tmp_path), ENGINE, "x:y", topo.Options(name="rvx"))
    assert engine.torn_down == []
    assert written(tmp_path / "state") == []  # the name's lock file aside


def test_valid_options_pass_and_chosen_subnets_avoid_the_tunnel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topo.validate_options(topo.Options())
    topo.validate_options(topo.Options(ip="4", subnet4="172.30.0.0/24", name="x_1", timeout=5))
    topo.validate_options(topo.Options(ip="6", subnet4="172.30.0.0/24"))  # the bridge keeps it
    monkeypatch.setattr("rpbuild.topology.composetool.network_subnets", lambda e: [])
    opts = topo.Options(tunnel4="172.31.240.0/24", tunnel6="fd00:7270::/64")
    topo.validate_options(opts)  # the bridge subnets are chosen later, around the tunnel
    doc, _ = topo.render(ENGINE, "x:y", opts)
    subnets = [c["subnet"] for c in doc["networks"]["transit"]["ipam"]["config"]]
    assert subnets == ["172.31.241.0/24", "fd00:7270:0:1::/64"]
    doc, _ = topo.render(ENGINE, "x:y", replace(opts, ip="4"))  # a chosen IPv6 subnet is unused
    assert doc["networks"]["transit"]["ipam"]["config"] == [{"subnet": "172.31.241.0/24"}]


# --- an engine that cannot be asked is an error, never "nothing there" -------------


@pytest.mark.parametrize("with_state", [True, False])
def test_down_with_an_unreachable_engine_fails_and_keeps_the_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, with_state: bool
) -> None:
    """It said "removed containers, network and key volumes", exit 0, and deleted the
    state of a topology that kept running; with nothing up, "nothing to stop"."""
    project = fake_project(tmp_path)
    file = topo.state_file(project, "rvx")
    if with_state:
        file.parent.mkdir(parents=True)
        file.write_text("{}")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    engine = FakeEngine(monkeypatch, tmp_path, UNREACHABLE).engine
    lines: list[str] = []
    with pytest.raises(ToolMissing) as info:
        topo.down(project, engine, "rvx", notify=lines.append)
    assert "\n" not in info.value.message and info.value.hint
    assert lines == []
    assert file.is_file() == with_state


def listing(containers: str = "", networks: str = "", volumes: str = "") -> dict[str, Any]:
    return {
        "ps --all --quiet": (0, containers, ""),
        "network ls --quiet": (0, networks, ""),
        "volume ls --quiet": (0, volumes, ""),
    }


def test_down_of_a_topology_that_is_gone_says_so_and_drops_its_state(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project = fake_project(tmp_path)
    file = topo.state_file(project, "rvx")
    file.parent.mkdir(parents=True)
    file.write_text("{}")
    engine = FakeEngine(monkeypatch, tmp_path, listing()).engine
    assert topo.down(project, engine, "rvx") is False
    assert not file.exists()


def test_teardown_says_only_what_was_there(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """compose up that failed on its network had made only volumes: not "removed containers"."""
    volumes = {"after volume rm": (0, "", ""), "default": (0, "rvx_server-private\n", "")}
    answers = listing() | {"volume ls --quiet": volumes, "volume rm": (0, "", "")}
    fake = FakeEngine(monkeypatch, tmp_path, answers)
    lines: list[str] = []
    topo.teardown(fake.engine, "rvx", None, lines.append)
    assert [c for c in fake.calls if c.startswith("volume rm")] == [
        "volume rm --force rvx_server-private"
    ]
    assert lines == ["rvx: removed key volumes"]


def test_teardown_that_leaves_something_names_compose_s_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    file = tmp_path / "rvx.json"
    file.write_text("{}")
    fake = FakeEngine(
        monkeypatch,
        tmp_path,
        listing(containers="c1\n")
        | {
            "compose version": (1, "", "unknown command"),
            "rm --force": (1, "", "device busy"),
        },
    )
    compose = fake.dir / "docker-compose"  # the standalone tool, found on PATH
    compose.write_text("#!/bin/sh\necho 'ERROR: no permission' >&2\nexit 1\n")
    compose.chmod(0o755)
    with pytest.raises(EngineError) as info:
        topo.teardown(fake.engine, "rvx", file, lambda _: None)
    assert info.value.message == (
        "rvx: could not remove 1 containers "
        "(docker-compose down failed (exit 1): ERROR: no permission)"
    )
    assert file.is_file()  # the state stays while something of it does


def test_a_teardown_failing_after_an_error_keeps_that_error_and_says_what_is_left(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def teardown(*args: object, **_: object) -> None:
        raise ToolMissing("the Docker daemon is not running or not reachable")

    monkeypatch.setattr(topo, "teardown", teardown)
    monkeypatch.setattr(topo, "container_logs", lambda e, n: "")
    failure = topo.TopologyFailed("the tunnel was not up within 5 s", hint="pass X")
    with (
        pytest.raises(topo.TopologyFailed) as info,
        topo._cleanup_on_failure(
            ENGINE, "rvx", fake_project(tmp_path), lambda _: None, lambda _: None, always=True
        ),
    ):
        raise failure
    assert info.value.message == "the tunnel was not up within 5 s"
    assert info.value.hint == (
        "rvx may be left running (the Docker daemon is not running or not reachable); "
        "remove it with `rpbuild down --name rvx`; pass X"
    )


# --- explicit subnets are checked against the engine's networks ----------------------

NETWORKS = [("bridge", "172.17.0.0/16"), ("other", "fd00:7270:5::/64")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"subnet4": "172.17.0.0/24"},
            "--subnet4 172.17.0.0/24 overlaps docker network 'bridge' (172.17.0.0/16)",
        ),
        (
            {"subnet6": "fd00:7270:5::/48"},
            "--subnet6 fd00:7270:5::/48 overlaps docker network 'other' (fd00:7270:5::/64)",
        ),
        ({"subnet4": "172.18.0.0/24", "subnet6": "fd00:7270:6::/64"}, None),
    ],
)
def test_explicit_subnets_that_overlap_an_engine_network_are_refused_naming_both(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], message: str | None
) -> None:
    """`test --subnet4 172.17.0.0/16` failed in compose with "Pool overlaps ...", no option."""
    monkeypatch.setattr("rpbuild.topology.composetool.network_subnets", lambda e: NETWORKS)
    monkeypatch.setattr(
        "rpbuild.topology.composetool.detect",
        lambda e: Compose(engine=e, command=("docker-compose",)),
    )
    opts = topo.Options(**kwargs)
    topo.validate_options(opts)  # without the engine, nothing is asked of it
    if message is None:
        topo.validate_options(opts, ENGINE)
        topo.render(ENGINE, "x:y", opts)
        return
    for check in (
        lambda: topo.validate_options(opts, ENGINE),
        lambda: topo.render(ENGINE, "x:y", opts),
    ):
        with pytest.raises(RpbuildError) as info:
            check()
        assert info.value.message == message
        assert "--subnet4" in (info.value.hint or "")


def test_a_compose_file_whose_subnet_is_taken_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("rpbuild.topology.composetool.network_subnets", lambda e: NETWORKS)
    file = tmp_path / "c.json"
    file.write_text(cmp.dump(cmp.document(cmp.TopologySpec(image="x:y", subnet4="172.17.3.0/24"))))
    with pytest.raises(RpbuildError) as info:
        topo.render(ENGINE, "x:y", topo.Options(compose_file=file))
    assert info.value.message == (
        f"--compose-file {file}: subnet 172.17.3.0/24 overlaps docker network 'bridge' "
        "(172.17.0.0/16)"
    )


def test_compose_s_pool_overlap_error_is_named_after_the_option(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A network created after render() looked: compose's error, made to name the option."""
    spec = cmp.TopologySpec(image="x:y", subnet4="172.17.0.0/24")
    tool = Compose(engine=ENGINE, command=("docker-compose",))
    prepared = topo._Prepared(tool=tool, doc=cmp.document(spec), plan=cmp.plan(spec))

    def up(*args: object, **kwargs: object) -> None:
        raise EngineError(
            "docker-compose up failed (exit 1): Pool overlaps with other one on this address space"
        )

    monkeypatch.setattr("rpbuild.topology.composetool.up", up)
    monkeypatch.setattr("rpbuild.topology.composetool.network_subnets", lambda e: NETWORKS)
    opts = topo.Options(subnet4="172.17.0.0/24", name="rvx")
    with pytest.raises(RpbuildError) as info:
        topo._start(fake_project(tmp_path), ENGINE, prepared, opts, "rvx", lambda _: None, 0.0)
    assert info.value.message == (
        "--subnet4 172.17.0.0/24 overlaps docker network 'bridge' (172.17.0.0/16)"
    )
    free = topo.Options(name="rvx")  # a subnet rpbuild chose, taken since
    with pytest.raises(RpbuildError) as info:
        topo._start(fake_project(tmp_path), ENGINE, prepared, free, "rvx", lambda _: None, 0.0)
    assert info.value.message.startswith("bridge subnet 172.17.0.0/24 (chosen as free) overlaps")


# --- the compose tool is checked before anything is built ----------------------------


def test_a_missing_compose_tool_is_found_before_the_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`test --engine podman` without podman-compose loaded the image into podman first."""
    fake = FakeEngine(
        monkeypatch, tmp_path, {"compose version": (125, "", "unrecognized command")}, "podman"
    )
    topo.validate_options(topo.Options())
    assert fake.calls == []
    with pytest.raises(ToolMissing) as info:
        topo.validate_options(topo.Options(), fake.engine)
    assert info.value.message == "neither `podman compose` nor podman-compose is installed"
    assert fake.calls == ["compose version"]


# --- SIGINT stops a run that inherited it ignored ------------------------------------


@pytest.mark.parametrize("inherited", [signal.SIG_IGN, signal.default_int_handler])
def test_sigint_to_rpbuild_alone_stops_the_run_and_tears_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, inherited: Any
) -> None:
    """`rpbuild test &` from a script starts with SIGINT ignored; `kill -INT PID` went unseen."""
    engine = EngineCalls(monkeypatch, {})
    monkeypatch.setattr(topo, "_prepare", lambda e, i, o: None)
    monkeypatch.setattr(topo, "container_logs", lambda e, n: "")

    def start(*args: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the run goes on unless SIGINT stops it
        raise AssertionError("SIGINT did not stop the run")

    monkeypatch.setattr(topo, "_start", start)
    previous = signal.signal(signal.SIGINT, inherited)
    try:
        with pytest.raises(KeyboardInterrupt):
            topo.up(fake_project(tmp_path), ENGINE, "x:y", topo.Options(name="rvx"))
        assert signal.getsignal(signal.SIGINT) is inherited  # as it was, afterwards
    finally:
        signal.signal(signal.SIGINT, previous)
    assert engine.torn_down == ["rvx"]


def test_two_runs_cannot_claim_one_topology_name_at_once(tmp_path: Path) -> None:
    """Between the free-name check and the containers, a second run used to pass too."""
    project = fake_project(tmp_path)
    held, release = threading.Event(), threading.Event()
    said: list[str] = []

    def first() -> None:
        with topo._claimed(project, "rvx", said.append):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    assert held.wait(10)
    timer = threading.Timer(0.3, release.set)
    timer.start()
    with topo._claimed(project, "rvx", said.append):
        assert release.is_set()  # only after the first run let go
    thread.join()
    assert said == ["rvx: another rpbuild is starting it; waiting"]
