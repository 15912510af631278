"""The `test` checks' logic with the engine faked: what `rpbuild test` concludes from
what `wg` says. The PSK checks matter most here: the test machine has no real rosenpass,
so this is where their logic runs on every CI run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from rpbuild.engine import Engine
from rpbuild.topology import checks as chk
from rpbuild.topology import compose as cmp
from rpbuild.topology.composetool import Compose
from rpbuild.topology.lifecycle import Topology
from tests.unit.topology.conftest import ENGINE, FakeClock


def make_topology() -> Topology:
    plan = cmp.plan(cmp.TopologySpec(image="x:y"))
    return Topology(
        name="t",
        file=Path("/nonexistent"),
        compose=Compose(engine=ENGINE, command=("docker-compose",)),
        plan=plan,
        containers={"server": "sid", "client": "cid"},
    )


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

    monkeypatch.setattr(chk, "_wg_table", wg_table)


def psk_checks(
    monkeypatch: pytest.MonkeyPatch,
    rounds: list[dict[str, str]],
    topology: Topology | None = None,
    standin: bool = False,
) -> list[chk.Check]:
    fake_psks(monkeypatch, rounds)
    return list(chk.check_psk(ENGINE, topology or make_topology(), lambda _: None, standin=standin))


def test_psk_unset_fails(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    [check] = psk_checks(monkeypatch, [{"server": "(none)", "client": "(none)"}])
    assert not check.ok and "(none) on the server" in check.detail
    assert clock.now == 1000.0 + chk.PSK_AGREE_S  # read again for a while first


def test_psk_differing_between_the_sides_fails(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    [check] = psk_checks(monkeypatch, [{"server": "A=", "client": "B="}])
    assert not check.ok and "differ" in check.detail


def test_psk_read_while_the_sides_switch_keys_is_read_again(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    """The peer appears only after rosenpass's first exchange, and the two sides take a
    new key moments apart: neither is a failure as long as they agree soon."""
    rounds = [{"server": "(none)", "client": "(none)"}, {"server": "A=", "client": "(none)"}]
    rounds += [{"server": "A=", "client": "A="}] * 3 + [{"server": "B=", "client": "B="}]
    set_, renewed = psk_checks(monkeypatch, rounds)
    assert set_.ok and renewed.ok


def test_the_stand_in_s_short_rekey_interval_sets_the_wait(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    topology = make_topology()
    topology.plan = replace(topology.plan, standin_rekey_seconds=6.0)
    assert chk.psk_renewal_deadline(topology, standin=True) == 32
    assert chk.psk_renewal_deadline(topology, standin=False) == chk.PSK_RENEWAL_DEADLINE_S
    set_, renewed = psk_checks(
        monkeypatch, [{"server": "A=", "client": "A="}], topology, standin=True
    )
    assert set_.ok and "stand-in" in set_.detail
    assert not renewed.ok and "within 32 s" in renewed.detail
    assert clock.now <= 1000.0 + 32 + 2


def test_psk_set_and_renewed_passes(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    rounds = [{"server": "A=", "client": "A="}] * 30
    rounds += [{"server": "B=", "client": "A="}]  # one side first: not yet
    rounds += [{"server": "B=", "client": "B="}]
    set_, renewed = psk_checks(monkeypatch, rounds)
    assert set_.ok and renewed.ok
    assert "a new key, the same on both sides, after" in renewed.detail
    assert "A=" not in set_.line() + renewed.line()  # keys are never shown


def test_psk_never_renewed_fails_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    set_, renewed = psk_checks(monkeypatch, [{"server": "A=", "client": "A="}])
    assert set_.ok and not renewed.ok
    assert f"within {chk.PSK_RENEWAL_DEADLINE_S} s" in renewed.detail


@pytest.mark.parametrize(
    "stamps,ok,detail",
    [(["0"], False, "none yet"), (["990"], True, "10 s ago"), (["700"], False, "300 s ago")],
)
def test_handshake_must_be_recent(
    monkeypatch: pytest.MonkeyPatch, stamps: list[str], ok: bool, detail: str
) -> None:
    monkeypatch.setattr("rpbuild.topology.checks.time", SimpleNamespace(time=lambda: 1000.0))
    monkeypatch.setattr(
        chk, "_wg_table", lambda e, c, w: {f"p{i}": s for i, s in enumerate(stamps)}
    )
    checks = list(chk.check_handshakes(ENGINE, make_topology()))
    assert [(c.ok, c.detail) for c in checks] == [(ok, detail)] * 2


@pytest.mark.parametrize("standin", [True, False])
def test_psk_checks_run_for_stand_in_and_real_images_alike(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, standin: bool
) -> None:
    monkeypatch.setattr(chk, "check_pings", lambda e, t: iter(()))
    monkeypatch.setattr(chk, "check_handshakes", lambda e, t: iter(()))
    fake_psks(monkeypatch, [{"server": "A=", "client": "A="}, {"server": "B=", "client": "B="}])
    shown: list[chk.Check] = []
    checks = chk.run_checks(ENGINE, make_topology(), standin=standin, on_check=shown.append)
    assert [c.name for c in checks] == [
        "pre-shared key set by rosenpass",
        "pre-shared key renewed by rosenpass",
    ]
    assert all(c.ok and not c.skipped for c in checks)
    assert shown == checks  # each one handed over, in order
    assert shown[0].line().startswith("ok    pre-shared key set by rosenpass: set, the same")
