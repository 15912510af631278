"""Bring the two-peer topology up, prove the tunnel, and always tear it down.

`up` waits on conditions with deadlines, never for a fixed time: compose itself
starts the client once the server is healthy, then rpbuild polls both containers
until each healthcheck has proved the tunnel. `test` then checks from outside
what the healthchecks claim (ping both ways over each address family, a recent
WireGuard handshake on both sides, with real rosenpass the pre-shared key and its
renewal), shows both containers' logs when anything fails, and removes
containers, network and key volumes whatever happened.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpbuild import compose as cmp
from rpbuild import composetool, process
from rpbuild import engine as engines
from rpbuild.errors import CheckFailed, EngineError, Interrupted, RpbuildError
from rpbuild.fsutil import atomic_write
from rpbuild.project import Project

HANDSHAKE_MAX_AGE_S = 180  # WireGuard rejects session keys older than this
PSK_RENEWAL_DEADLINE_S = 200  # rosenpass's initiator renews the key after 130 s
POLL_S = 0.5
VERSION_LABEL = "org.opencontainers.image.version"
DEFAULT_NAME = "rpbuild"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

Say = Callable[[str], None]


def _silent(_: str) -> None:
    pass


@dataclass(frozen=True)
class Options:
    ip: str = "dual"
    userspace_wireguard: bool = False
    subnet4: str | None = None  # None: the first free default subnet
    subnet6: str | None = None
    tunnel4: str = cmp.DEFAULT_TUNNEL4
    tunnel6: str = cmp.DEFAULT_TUNNEL6
    compose_file: Path | None = None  # use this file instead of rendering one
    name: str | None = None
    timeout: float = 90.0
    real_rosenpass: bool = False


@dataclass
class Topology:
    name: str
    file: Path
    compose: composetool.Compose
    plan: cmp.Plan
    containers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "compose_file": str(self.file),
            "containers": self.containers,
            "tunnel": self.plan.tunnel,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    skipped: bool = False

    def line(self) -> str:
        if self.skipped:
            return f"skip  {self.name} skipped: {self.detail}"
        return f"{'ok' if self.ok else 'FAIL':<5} {self.name}: {self.detail}"


class TopologyFailed(CheckFailed):
    """The topology did not come up, or a tunnel check failed (exit 1)."""


def check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise RpbuildError(
            f"--name: '{name}' is not a compose project name (lowercase letters, digits, - and _)"
        )
    return name


def _read_compose_file(path: Path) -> tuple[dict[str, Any], cmp.Plan]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RpbuildError(f"--compose-file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RpbuildError(f"--compose-file {path}: not a text file") from None
    doc = cmp.load(text, str(path))
    return doc, cmp.plan_of(doc, str(path))


def validate_options(opts: Options) -> None:
    """Check every option before anything is built, started or asked of the engine.

    Each error is one line naming the option as the user typed it. up() and test()
    call this first; a CLI that builds the image before calling them calls it too,
    before the build.
    """
    if opts.name is not None:
        check_name(opts.name)
    if not math.isfinite(opts.timeout) or opts.timeout <= 0:
        raise RpbuildError(f"--timeout: {opts.timeout:g} is not a positive number of seconds")
    cmp.check_ip(opts.ip)
    cmp.check_networks(
        subnet4=opts.subnet4, subnet6=opts.subnet6, tunnel4=opts.tunnel4, tunnel6=opts.tunnel6
    )
    if opts.compose_file is not None:
        _read_compose_file(opts.compose_file)


def state_file(project: Project, name: str) -> Path:
    return project.state_dir / "topology" / f"{name}.json"


def is_standin(engine: engines.Engine, image: str) -> bool:
    """Images built from the test stand-in rosenpass say so in their version label."""
    info = engines.inspect(engine, image)
    return info is not None and info.labels.get(VERSION_LABEL, "").endswith("-standin")


def render(engine: engines.Engine, image: str, opts: Options) -> tuple[dict[str, Any], cmp.Plan]:
    """The compose document to run: opts.compose_file, or one rendered for image."""
    if opts.compose_file is not None:
        return _read_compose_file(opts.compose_file)
    subnet4, subnet6 = opts.subnet4, opts.subnet6
    if subnet4 is None or subnet6 is None:
        # The tunnel subnets count as taken: a bridge must not overlap them either.
        taken = [*composetool.subnets_in_use(engine), opts.tunnel4, opts.tunnel6]
        free4, free6 = cmp.free_subnets(taken)
        subnet4, subnet6 = subnet4 or free4, subnet6 or free6
    spec = cmp.TopologySpec(
        image=image,
        ip=opts.ip,
        userspace_wireguard=opts.userspace_wireguard,
        subnet4=subnet4,
        subnet6=subnet6,
        tunnel4=opts.tunnel4,
        tunnel6=opts.tunnel6,
    )
    return cmp.document(spec), cmp.plan(spec)


# --- bring up ---------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    status: str
    exit_code: int
    health: str
    last_output: str
    last_ok: bool

    @property
    def proves_tunnel(self) -> bool:
        return self.health == "healthy" and self.last_ok and self.last_output.startswith("tunnel:")

    def describe(self) -> str:
        if self.status != "running":
            return f"{self.status} (exit {self.exit_code})"
        return f"{self.health or 'no healthcheck'}" + (
            f" ({self.last_output})" if self.last_output else ""
        )


def _states(engine: engines.Engine, ids: dict[str, str]) -> dict[str, _State]:
    if not ids:
        return {}
    result = process.run(
        engine.argv("inspect", *ids.values()), what=f"{engine.name} inspect", error=EngineError
    )
    by_id = {item["Id"]: item for item in json.loads(result.stdout)}
    states: dict[str, _State] = {}
    for service, cid in ids.items():
        state = (by_id.get(cid) or {}).get("State") or {}
        health = state.get("Health") or {}
        log = health.get("Log") or []
        last = log[-1] if log else {}
        states[service] = _State(
            status=str(state.get("Status", "missing")),
            exit_code=int(state.get("ExitCode", 0) or 0),
            health=str(health.get("Status", "")),
            last_output=" ".join(str(last.get("Output", "")).split())[:200],
            last_ok=last.get("ExitCode") == 0,
        )
    return states


def wait_for_tunnel(engine: engines.Engine, name: str, deadline: float, timeout: float) -> None:
    """Poll until both healthchecks have proved the tunnel; fail early when a peer exits."""
    while True:
        ids = composetool.containers(engine, name)
        states = _states(engine, {r: ids[r] for r in cmp.ROLES if r in ids})
        for role, st in states.items():
            if st.status in ("exited", "dead"):
                raise TopologyFailed(f"the {role} container stopped: {st.describe()}")
        if len(states) == len(cmp.ROLES) and all(s.proves_tunnel for s in states.values()):
            return
        if time.monotonic() >= deadline:
            seen = "; ".join(
                f"{role}: {states[role].describe() if role in states else 'not created'}"
                for role in cmp.ROLES
            )
            raise TopologyFailed(f"the tunnel was not up within {timeout:g} s ({seen})")
        time.sleep(POLL_S)


@dataclass(frozen=True)
class _Prepared:
    """What starting a topology needs, found without creating anything."""

    tool: composetool.Compose
    doc: dict[str, Any]
    plan: cmp.Plan


def _prepare(engine: engines.Engine, image: str, opts: Options) -> _Prepared:
    tool = composetool.detect(engine)
    doc, plan = render(engine, image, opts)
    missing = [ref for ref in cmp.images(doc) if engines.inspect(engine, ref) is None]
    if missing:
        raise RpbuildError(f"{missing[0]}: no such image in {engine.name}; build it first")
    return _Prepared(tool=tool, doc=doc, plan=plan)


def _start(
    project: Project,
    engine: engines.Engine,
    prepared: _Prepared,
    opts: Options,
    name: str,
    say: Say,
    started: float,
) -> Topology:
    deadline = started + opts.timeout
    tool, plan = prepared.tool, prepared.plan
    file = state_file(project, name)
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(file, cmp.dump(prepared.doc))
    topo = Topology(name=name, file=file, compose=tool, plan=plan)
    say(f"{name}: starting server and client ({tool.name}, IP {plan.ip})")
    composetool.up(tool, name, file, timeout=max(1.0, deadline - time.monotonic()))
    try:
        wait_for_tunnel(engine, name, deadline, opts.timeout)
    except TopologyFailed as exc:
        if not opts.userspace_wireguard and opts.compose_file is None:
            exc.hint = (
                "without the WireGuard kernel module (and with the stand-in rp), "
                "pass --userspace-wireguard"
            )
        raise
    topo.containers = {
        r: cid for r, cid in composetool.containers(engine, name).items() if r in cmp.ROLES
    }
    topo.seconds = time.monotonic() - started
    say(f"{name}: tunnel up after {topo.seconds:.1f} s")
    return topo


def container_logs(engine: engines.Engine, name: str) -> str:
    """Both containers' output, each line prefixed with its service."""
    parts: list[str] = []
    for service, cid in sorted(composetool.containers(engine, name).items()):
        result = process.run(
            engine.argv("logs", "--timestamps", cid),
            what=f"{engine.name} logs",
            error=EngineError,
            check=False,
        )
        # stdout and stderr come apart; --timestamps puts them back in order.
        lines = sorted((result.stdout + result.stderr).splitlines()) or ["(no output)"]
        parts.append(f"--- {service} logs ---")
        parts.extend(f"{service} | {line}" for line in lines)
    return "\n".join(parts) + "\n" if parts else ""


def teardown(engine: engines.Engine, name: str, file: Path | None, say: Say = _silent) -> None:
    """compose down (containers, network, volumes), then remove whatever is left by label."""
    if file is not None and file.is_file():
        with contextlib.suppress(RpbuildError):
            tool = composetool.detect(engine)
            composetool.down(tool, name, file)
    left = composetool.sweep(engine, name)
    remaining = [f"{len(v)} {k}" for k, v in left.items() if v]
    if remaining:
        raise EngineError(f"{name}: could not remove {', '.join(remaining)}")
    if file is not None:
        file.unlink(missing_ok=True)
    say(f"{name}: removed containers, network and key volumes")


@contextlib.contextmanager
def _cleanup_on_failure(
    engine: engines.Engine, name: str, project: Project, show_logs: Say, say: Say, always: bool
) -> Iterator[None]:
    """On failure: show both logs, then tear down; with always, tear down in any case."""
    failed = True
    try:
        yield
        failed = False
    except (Interrupted, KeyboardInterrupt):
        raise
    except BaseException:
        with contextlib.suppress(RpbuildError):
            show_logs(container_logs(engine, name))
        raise
    finally:
        if failed or always:
            try:
                teardown(engine, name, state_file(project, name), say)
            except RpbuildError as exc:
                if not failed:
                    raise
                say(f"warning: {exc.message}")


def up(
    project: Project,
    engine: engines.Engine,
    image: str,
    opts: Options,
    *,
    say: Say = _silent,
    show_logs: Say = _silent,
) -> Topology:
    """Start the topology and leave it running once the tunnel works."""
    validate_options(opts)
    name = check_name(opts.name or DEFAULT_NAME)
    _refuse_existing(engine, name)
    started = time.monotonic()
    prepared = _prepare(engine, image, opts)
    with _cleanup_on_failure(engine, name, project, show_logs, say, always=False):
        return _start(project, engine, prepared, opts, name, say, started)


def _refuse_existing(engine: engines.Engine, name: str) -> None:
    """A topology that has containers is someone's: never start over it or tear it down."""
    if composetool.containers(engine, name):
        raise RpbuildError(
            f"topology '{name}' exists already",
            hint=f"stop it with `rpbuild down --name {name}`, or choose another --name",
        )


def down(project: Project, engine: engines.Engine, name: str, *, say: Say = _silent) -> bool:
    """Remove the topology; False when there was nothing to remove."""
    check_name(name)
    file = state_file(project, name)
    if not file.is_file() and not any(composetool.leftovers(engine, name).values()):
        return False
    teardown(engine, name, file, say)
    return True


# --- checks -----------------------------------------------------------------


def _exec(engine: engines.Engine, cid: str, *argv: str, timeout: float = 60) -> process.Result:
    return process.run(
        engine.argv("exec", cid, *argv),
        what=f"{engine.name} exec {argv[0]}",
        error=EngineError,
        check=False,
        timeout=timeout,
    )


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


def check_psk(engine: engines.Engine, topo: Topology, say: Say) -> Iterator[Check]:
    """rosenpass sets the same PSK on both sides (a failed exchange sets a random
    one) and replaces it when it rekeys."""
    first = _psk_digests(engine, topo)
    unset = [role for role, d in first.items() if d is None]
    if unset:
        yield Check("pre-shared key set by rosenpass", False, f"(none) on the {unset[0]}")
        return
    if first["server"] != first["client"]:
        yield Check("pre-shared key set by rosenpass", False, "the two sides differ")
        return
    yield Check("pre-shared key set by rosenpass", True, "set, the same on both sides")
    say(f"waiting up to {PSK_RENEWAL_DEADLINE_S} s for rosenpass to renew the key")
    started = time.monotonic()
    while time.monotonic() - started < PSK_RENEWAL_DEADLINE_S:
        now = _psk_digests(engine, topo)
        changed = all(now[r] is not None and now[r] != first[r] for r in cmp.ROLES)
        if changed and now["server"] == now["client"]:
            waited = time.monotonic() - started
            yield Check(
                "pre-shared key renewed by rosenpass", True, f"changed after {waited:.0f} s"
            )
            return
        time.sleep(2)
    yield Check(
        "pre-shared key renewed by rosenpass",
        False,
        f"not renewed on both sides within {PSK_RENEWAL_DEADLINE_S} s",
    )


def run_checks(
    engine: engines.Engine,
    topo: Topology,
    *,
    real_rosenpass: bool,
    standin: bool,
    report: Say = _silent,
    say: Say = _silent,
) -> list[Check]:
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        report(check.line())

    for check in check_pings(engine, topo):
        add(check)
    for check in check_handshakes(engine, topo):
        add(check)
    if real_rosenpass:
        for check in check_psk(engine, topo, say):
            add(check)
    else:
        reason = (
            "images use the stand-in rosenpass (no post-quantum exchange, no PSK)"
            if standin
            else "not asked for; pass --real-rosenpass or set RPBUILD_REAL_IMAGES=1"
        )
        add(Check("PSK checks", True, reason, skipped=True))
    return checks


def test(
    project: Project,
    engine: engines.Engine,
    image: str,
    opts: Options,
    *,
    say: Say = _silent,
    report: Say = _silent,
    show_logs: Say = _silent,
) -> list[Check]:
    """up, check, down: the topology never outlives the call, pass or fail.

    A topology that exists already under the name is refused and left alone.
    """
    validate_options(opts)
    name = check_name(opts.name or f"rpbuild-test-{uuid.uuid4().hex[:8]}")
    _refuse_existing(engine, name)
    standin = is_standin(engine, image)
    if opts.real_rosenpass and standin:
        raise RpbuildError(
            f"--real-rosenpass: {image} is built from the stand-in rosenpass",
            hint="build without --override-input rosenpass ...",
        )
    started = time.monotonic()
    prepared = _prepare(engine, image, opts)
    with _cleanup_on_failure(engine, name, project, show_logs, say, always=True):
        topo = _start(project, engine, prepared, opts, name, say, started)
        checks = run_checks(
            engine,
            topo,
            real_rosenpass=opts.real_rosenpass,
            standin=standin,
            report=report,
            say=say,
        )
        failed = [c for c in checks if not c.ok]
        if failed:
            raise TopologyFailed(
                f"{len(failed)} of {len(checks)} tunnel checks failed; first: {failed[0].name}"
            )
        return checks
