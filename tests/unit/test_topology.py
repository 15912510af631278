"""The topology checks' logic with the engine faked: what `rpbuild test` concludes
from what `wg` and `docker inspect` say. The PSK checks matter most here: the test
machine has no real rosenpass, so this is where their logic runs on every CI run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from rpbuild import compose as cmp
from rpbuild import topology as topo
from rpbuild.composetool import Compose
from rpbuild.engine import Engine
from rpbuild.errors import RpbuildError
from rpbuild.profiles import image_reference
from rpbuild.project import Project

ENGINE = Engine(name="docker", binary="/usr/bin/docker")


def make_topology() -> topo.Topology:
    plan = cmp.plan(cmp.TopologySpec(image="x:y"))
    return topo.Topology(
        name="t",
        file=Path("/nonexistent"),
        compose=Compose(engine=ENGINE, command=("docker-compose",)),
        plan=plan,
        containers={"server": "sid", "client": "cid"},
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    clock_module = SimpleNamespace(monotonic=fake.monotonic, sleep=fake.sleep, time=lambda: 1000.0)
    monkeypatch.setattr("rpbuild.topology.time", clock_module)
    return fake


def fake_psks(monkeypatch: pytest.MonkeyPatch, rounds: list[dict[str, str]]) -> None:
    """Each call of _psk_digests' wg reads takes the next round (the last one repeats)."""
    calls: Iterator[dict[str, str]] = iter(rounds)
    current: dict[str, str] = {}

    def wg_table(engine: Engine, cid: str, what: str) -> dict[str, str] | None:
        nonlocal current
        assert what == "preshared-keys"
        if cid == "sid":
            current = next(calls, rounds[-1])
        role = "server" if cid == "sid" else "client"
        return {f"peer-of-{role}": current[role]}

    monkeypatch.setattr(topo, "_wg_table", wg_table)


def psk_checks(monkeypatch: pytest.MonkeyPatch, rounds: list[dict[str, str]]) -> list[topo.Check]:
    fake_psks(monkeypatch, rounds)
    return list(topo.check_psk(ENGINE, make_topology(), lambda _: None))


def test_psk_unset_fails(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    [check] = psk_checks(monkeypatch, [{"server": "(none)", "client": "(none)"}])
    assert not check.ok and "(none) on the server" in check.detail


def test_psk_differing_between_the_sides_fails(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    [check] = psk_checks(monkeypatch, [{"server": "A=", "client": "B="}])
    assert not check.ok and "differ" in check.detail


def test_psk_set_and_renewed_passes(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    rounds = [{"server": "A=", "client": "A="}] * 30
    rounds += [{"server": "B=", "client": "A="}]  # one side first: not yet
    rounds += [{"server": "B=", "client": "B="}]
    set_, renewed = psk_checks(monkeypatch, rounds)
    assert set_.ok and renewed.ok
    assert "changed after" in renewed.detail
    assert "A=" not in set_.line() + renewed.line()  # keys are never shown


def test_psk_never_renewed_fails_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    set_, renewed = psk_checks(monkeypatch, [{"server": "A=", "client": "A="}])
    assert set_.ok and not renewed.ok
    assert f"within {topo.PSK_RENEWAL_DEADLINE_S} s" in renewed.detail


@pytest.mark.parametrize(
    "stamps,ok,detail",
    [(["0"], False, "none yet"), (["990"], True, "10 s ago"), (["700"], False, "300 s ago")],
)
def test_handshake_must_be_recent(
    monkeypatch: pytest.MonkeyPatch, stamps: list[str], ok: bool, detail: str
) -> None:
    monkeypatch.setattr("rpbuild.topology.time", SimpleNamespace(time=lambda: 1000.0))
    monkeypatch.setattr(
        topo, "_wg_table", lambda e, c, w: {f"p{i}": s for i, s in enumerate(stamps)}
    )
    checks = list(topo.check_handshakes(ENGINE, make_topology()))
    assert [(c.ok, c.detail) for c in checks] == [(ok, detail)] * 2


def test_skipped_psk_checks_say_so_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(topo, "check_pings", lambda e, t: iter(()))
    monkeypatch.setattr(topo, "check_handshakes", lambda e, t: iter(()))
    lines: list[str] = []
    topo.run_checks(
        ENGINE, make_topology(), real_rosenpass=False, standin=True, report=lines.append
    )
    assert lines == [
        "skip  PSK checks skipped: images use the stand-in rosenpass "
        "(no post-quantum exchange, no PSK)"
    ]


def state(health: str, output: str, status: str = "running") -> topo._State:
    return topo._State(status=status, exit_code=1, health=health, last_output=output, last_ok=True)


def fake_states(monkeypatch: pytest.MonkeyPatch, rounds: list[dict[str, topo._State]]) -> None:
    calls = iter(rounds)
    monkeypatch.setattr(
        "rpbuild.topology.composetool.containers", lambda e, n: {"server": "sid", "client": "cid"}
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
    with pytest.raises(topo.TopologyFailed, match="server container stopped: exited"):
        topo.wait_for_tunnel(ENGINE, "t", deadline=clock.now + 60, timeout=60)
    assert clock.now == 1000.0


def test_waiting_has_a_deadline(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    fake_states(monkeypatch, [{"server": state("healthy", "ready: ...")}])
    with pytest.raises(topo.TopologyFailed, match=r"not up within 5 s .*client: not created"):
        topo.wait_for_tunnel(ENGINE, "t", deadline=clock.now + 5, timeout=5)


def test_names_and_references() -> None:
    assert topo.check_name("rpbuild-test-1a2b") == "rpbuild-test-1a2b"
    with pytest.raises(RpbuildError, match="not a compose project name"):
        topo.check_name("Bad Name")
    assert image_reference("rosenpass:with-wireguard", "with-wireguard") == (
        "rosenpass:with-wireguard"
    )
    assert image_reference("me/img", "t") == "me/img:t"
    assert image_reference("host:5000/img:x", "t") == "host:5000/img:x"


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


def test_test_refuses_a_running_topology_and_touches_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = EngineCalls(monkeypatch, RUNNING)
    lines: list[str] = []
    with pytest.raises(RpbuildError) as info:
        topo.test(fake_project(tmp_path), ENGINE, "x:y", topo.Options(name="rvx"), say=lines.append)
    assert info.value.message == "topology 'rvx' exists already"
    assert "rpbuild down --name rvx" in (info.value.hint or "")
    assert engine.calls == ["containers rvx"]  # looked, nothing else
    assert engine.torn_down == [] and lines == []
    assert not (tmp_path / "state").exists()


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
    ({"compose_file": Path("/nonexistent/c.json")}, "--compose-file /nonexistent/c.json: No such"),
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
    assert not (tmp_path / "state").exists()


def test_a_broken_compose_file_is_refused_before_anything_is_touched(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = EngineCalls(monkeypatch, {})
    broken = tmp_path / "c.json"
    broken.write_text("services: {}\n")
    opts = topo.Options(compose_file=broken)
    with pytest.raises(RpbuildError, match="not a compose file written by `rpbuild compose`"):
        topo.test(fake_project(tmp_path), ENGINE, "x:y", opts)
    assert engine.calls == [] and engine.torn_down == []


def test_a_missing_image_tears_nothing_down(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Nothing was created, so nothing is "removed" (no misleading message either)."""
    engine = EngineCalls(monkeypatch, {})
    monkeypatch.setattr(
        "rpbuild.composetool.detect", lambda e: Compose(engine=e, command=("docker-compose",))
    )
    monkeypatch.setattr("rpbuild.composetool.subnets_in_use", lambda e: [])
    monkeypatch.setattr("rpbuild.engine.inspect", lambda e, ref: None)
    with pytest.raises(RpbuildError, match=r"^x:y: no such image in docker; build it first$"):
        topo.up(fake_project(tmp_path), ENGINE, "x:y", topo.Options(name="rvx"))
    assert engine.torn_down == []
    assert not (tmp_path / "state").exists()


def test_valid_options_pass_and_chosen_subnets_avoid_the_tunnel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topo.validate_options(topo.Options())
    topo.validate_options(topo.Options(ip="4", subnet4="172.30.0.0/24", name="x_1", timeout=5))
    monkeypatch.setattr("rpbuild.composetool.subnets_in_use", lambda e: [])
    opts = topo.Options(tunnel4="172.31.240.0/24", tunnel6="fd00:7270::/64")
    topo.validate_options(opts)  # the bridge subnets are chosen later, around the tunnel
    doc, _ = topo.render(ENGINE, "x:y", opts)
    subnets = [c["subnet"] for c in doc["networks"]["transit"]["ipam"]["config"]]
    assert subnets == ["172.31.241.0/24", "fd00:7270:0:1::/64"]
