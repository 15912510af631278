"""The `test` checks on a running topology, each a `Check`: what `rpbuild test` proves from
outside that the healthchecks only claim.

Ping both ways over each address family, a recent WireGuard handshake on both sides, the
same pre-shared key on both sides and its renewal at rosenpass's rekey. The checks are
data: the caller decides how a finished one is shown (`on_check`).
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rpbuild import engine as engines
from rpbuild import process
from rpbuild.notify import Notify, quiet
from rpbuild.topology import compose as cmp

if TYPE_CHECKING:
    from rpbuild.topology.lifecycle import Topology

HANDSHAKE_MAX_AGE_S = 180  # WireGuard rejects session keys older than this
PSK_RENEWAL_DEADLINE_S = 200  # rosenpass's initiator renews the key after 130 s
PSK_AGREE_S = 10  # both sides switch keys within moments: read again until they agree
POLL_S = 0.5


@dataclass(frozen=True)
class Check:
    """One finished check; line() is how a terminal shows it."""

    name: str
    ok: bool
    detail: str
    skipped: bool = False

    def line(self) -> str:
        if self.skipped:
            return f"skip  {self.name} skipped: {self.detail}"
        return f"{'ok' if self.ok else 'FAIL':<5} {self.name}: {self.detail}"


OnCheck = Callable[[Check], None]


def ignore(_: Check) -> None:
    """The default `OnCheck`: the caller shows no check."""


def _exec(engine: engines.Engine, cid: str, *argv: str, timeout: float = 60) -> process.Result:
    return engines.exec_in(engine, cid, *argv, timeout=timeout)


def _ping_summary(output: str) -> str:
    for line in output.splitlines():
        if "packets transmitted" in line:
            return line.strip()
    return (output.strip().splitlines() or ["no output"])[-1]


def _wg_table(engine: engines.Engine, cid: str, what: str) -> dict[str, str] | None:
    """`wg show rosenpass0 WHAT` as peer -> value; None when wg fails."""
    result = _exec(engine, cid, "wg", "show", cmp.DEVICE, what)
    if result.returncode != 0:
        return None
    table: dict[str, str] = {}
    for line in result.stdout.splitlines():
        peer, _, value = line.strip().partition("\t")
        if peer:
            table[peer] = value.strip()
    return table


def check_pings(engine: engines.Engine, topo: Topology) -> Iterator[Check]:
    for src, dst in (("client", "server"), ("server", "client")):
        for fam, addr in sorted(topo.plan.tunnel_addresses(dst).items()):
            result = _exec(
                engine, topo.containers[src], "ping", "-c", "3", "-W", "2", "-w", "15", addr
            )
            yield Check(
                f"ping {src} -> {dst} {addr} (IPv{fam}) over the tunnel",
                result.returncode == 0,
                _ping_summary(result.stdout + result.stderr),
            )


def check_handshakes(engine: engines.Engine, topo: Topology) -> Iterator[Check]:
    for role in cmp.ROLES:
        name = f"WireGuard handshake on the {role}"
        table = _wg_table(engine, topo.containers[role], "latest-handshakes")
        if table is None:
            yield Check(name, False, f"wg show {cmp.DEVICE} failed")
            continue
        stamps = [int(v) for v in table.values() if v.isdigit()]
        newest = max(stamps, default=0)
        if newest == 0:
            yield Check(name, False, "none yet")
            continue
        age = int(time.time()) - newest
        yield Check(name, age <= HANDSHAKE_MAX_AGE_S, f"{age} s ago")


def _psk_digests(engine: engines.Engine, topo: Topology) -> dict[str, str | None]:
    """Each side's pre-shared key for its one peer, as a digest: keys are never shown."""
    out: dict[str, str | None] = {}
    for role in cmp.ROLES:
        table = _wg_table(engine, topo.containers[role], "preshared-keys")
        values = list((table or {}).values())
        if len(values) != 1 or values[0] in ("", "(none)"):
            out[role] = None
        else:
            out[role] = hashlib.sha256(values[0].encode()).hexdigest()
    return out


def psk_renewal_deadline(topo: Topology, *, standin: bool) -> float:
    """Seconds to wait for the renewed key: upstream's initiator rekeys after 130 s; the
    stand-in with ROSENPASS_STANDIN_REKEY_SECONDS=S after S * 130/120 s."""
    rekey = topo.plan.standin_rekey_seconds if standin else None
    if rekey is None:
        return PSK_RENEWAL_DEADLINE_S
    return 2 * rekey + 20


def check_psk(
    engine: engines.Engine, topo: Topology, notify: Notify, *, standin: bool = False
) -> Iterator[Check]:
    """rosenpass sets the same PSK on both sides (a failed exchange sets a random
    one) and replaces it when it rekeys.

    The two sides switch keys moments apart, so the first reading is repeated for a
    few seconds until both agree; the renewal is a new key on both sides, equal again.
    """
    name = "pre-shared key set by rosenpass"
    started = time.monotonic()
    while True:
        first = _psk_digests(engine, topo)
        unset = [role for role, d in first.items() if d is None]
        if not unset and first["server"] == first["client"]:
            break
        if time.monotonic() - started >= PSK_AGREE_S:
            if unset:
                yield Check(name, False, f"(none) on the {unset[0]}")
            else:
                yield Check(name, False, f"the two sides differ for {PSK_AGREE_S} s")
            return
        time.sleep(POLL_S)
    kind = " (the stand-in's key: no post-quantum exchange)" if standin else ""
    yield Check(name, True, f"set, the same on both sides{kind}")
    deadline = psk_renewal_deadline(topo, standin=standin)
    notify(f"waiting up to {deadline:g} s for rosenpass to renew the key")
    started = time.monotonic()
    pause = min(2.0, deadline / 20)
    while time.monotonic() - started < deadline:
        now = _psk_digests(engine, topo)
        changed = all(now[r] is not None and now[r] != first[r] for r in cmp.ROLES)
        if changed and now["server"] == now["client"]:
            waited = time.monotonic() - started
            yield Check(
                "pre-shared key renewed by rosenpass",
                True,
                f"a new key, the same on both sides, after {waited:.0f} s",
            )
            return
        time.sleep(pause)
    yield Check(
        "pre-shared key renewed by rosenpass",
        False,
        f"not renewed on both sides within {deadline:g} s",
    )


def run_checks(
    engine: engines.Engine,
    topo: Topology,
    *,
    standin: bool,
    on_check: OnCheck = ignore,
    notify: Notify = quiet,
) -> list[Check]:
    """Every check in order; each goes to on_check as soon as it is finished."""
    checks: list[Check] = []
    for check in itertools.chain(
        check_pings(engine, topo),
        check_handshakes(engine, topo),
        check_psk(engine, topo, notify, standin=standin),
    ):
        checks.append(check)
        on_check(check)
    return checks
