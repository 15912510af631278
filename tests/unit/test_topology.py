"""The topology checks' logic with the engine faked: what `rpbuild test` concludes
from what `wg` and `docker inspect` say. The PSK checks matter most here: the test
machine has no real rosenpass, so this is where their logic runs on every CI run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from rpbuild import compose as cmp
from rpbuild import topology as topo
from rpbuild.composetool import Compose
from rpbuild.engine import Engine
from rpbuild.errors import RpbuildError

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
    assert topo.image_reference("rosenpass:with-wireguard", "with-wireguard", None) == (
        "rosenpass:with-wireguard"
    )
    assert topo.image_reference("r:t", "t", "me/img") == "me/img:t"
    assert topo.image_reference("r:t", "t", "host:5000/img:x") == "host:5000/img:x"
