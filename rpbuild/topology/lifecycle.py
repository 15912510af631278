"""Bring the two-peer topology up, and always tear it down: options, up, test, down.

`up` waits on conditions with deadlines, never for a fixed time: compose itself
starts the client once the server is healthy, then rpbuild polls both containers
until each healthcheck has proved the tunnel (which needs rosenpass's first key
exchange: only then does it set the WireGuard peer). `test` then runs the checks
(checks.py) on what the healthchecks claim, shows both containers' logs when anything
fails, and removes containers, network and key volumes whatever happened. One `up`
or `test` per topology name at a time (a lock beside its state file).
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rpbuild import engine as engines
from rpbuild.errors import CheckFailed, EngineError, ExitCode, Interrupted, RpbuildError
from rpbuild.fsutil import atomic_write
from rpbuild.notify import Notify, quiet
from rpbuild.project import Project
from rpbuild.state import project_lock
from rpbuild.topology import compose as cmp
from rpbuild.topology import composetool
from rpbuild.topology.checks import Check, OnCheck, ignore, run_checks

POLL_S = 0.5
VERSION_LABEL = "org.opencontainers.image.version"
DEFAULT_NAME = "rpbuild"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


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
    standin_rekey_seconds: float | None = None


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


class TopologyFailed(CheckFailed):
    """The topology did not come up, or a tunnel check failed (exit 1)."""

    def __init__(
        self, message: str, *, hint: str | None = None, checks: Sequence[Check] = ()
    ) -> None:
        super().__init__(message, hint=hint)
        self.checks = list(checks)  # the checks run, for `test --json`

    show_logs = True


class NoWireGuard(TopologyFailed):
    """A peer found no WireGuard: the kernel has no module and wireguard-go was not
    asked for. The cause is known and said in one line: no logs. The host lacks
    something, as when nix or the engine fails: a failure at run time, not a failed check."""

    show_logs = False
    exit_code = ExitCode.RUNTIME

    def __init__(self, role: str, cause: str) -> None:
        super().__init__(f"the {role} cannot create its WireGuard device: {cause}")
        self.role = role
        self.cause = cause


ENTRYPOINT_ERROR = "rpbuild-entrypoint: error: "
NO_MODULE = "no WireGuard kernel module"  # what the entrypoint says (templates/entrypoint.sh)


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


def validate_options(opts: Options, engine: engines.Engine | None = None) -> None:
    """Check every option before anything is built, started or asked of the engine.

    Each error is one line naming the option as the user typed it. up() and test()
    call this first; a CLI that builds the image before calling them calls it too,
    before the build, and passes the engine: then what the engine must offer is
    checked as well (check_engine), so that a missing compose tool or a taken
    subnet does not cost a build and a load first.
    """
    if opts.name is not None:
        check_name(opts.name)
    if not math.isfinite(opts.timeout) or opts.timeout <= 0:
        raise RpbuildError(f"--timeout: {opts.timeout:g} is not a positive number of seconds")
    cmp.check_ip(opts.ip)
    cmp.check_rekey(opts.standin_rekey_seconds)
    if opts.compose_file is not None:
        _check_unused_with_file(opts)
    cmp.check_families(opts.ip, subnet6=opts.subnet6)
    cmp.check_networks(
        subnet4=opts.subnet4, subnet6=opts.subnet6, tunnel4=opts.tunnel4, tunnel6=opts.tunnel6
    )
    if opts.compose_file is not None:
        _read_compose_file(opts.compose_file)
    if engine is not None:
        check_engine(engine, opts)


def _check_unused_with_file(opts: Options) -> None:
    """Refuse what --compose-file replaces: the file sets the subnets and the devices."""
    unused = [
        option
        for option, given in (
            ("--subnet4", opts.subnet4 is not None),
            ("--subnet6", opts.subnet6 is not None),
            ("--userspace-wireguard", opts.userspace_wireguard),
            ("--standin-rekey-seconds", opts.standin_rekey_seconds is not None),
        )
        if given
    ]
    if unused:
        raise RpbuildError(
            f"{unused[0]}: not used with --compose-file {opts.compose_file}, "
            "which sets the subnets, devices and environment itself",
            hint="edit the file, or write it again with `rpbuild compose` and these options",
        )


def check_engine(engine: engines.Engine, opts: Options) -> composetool.Compose:
    """The engine's compose tool, once explicit subnets are known to be free there."""
    tool = composetool.detect(engine)
    if _given_subnets(opts):
        _check_subnets_free(engine, opts, composetool.network_subnets(engine))
    return tool


def _given_subnets(opts: Options) -> list[tuple[str, str]]:
    """The bridge subnets the user chose, each with the option that chose it."""
    if opts.compose_file is not None:
        doc, _ = _read_compose_file(opts.compose_file)
        return [(f"--compose-file {opts.compose_file}: subnet", s) for s in cmp.subnets_of(doc)]
    given = [("--subnet4", opts.subnet4)]
    if opts.ip != "4":  # the IPv4-only file has no IPv6 subnet
        given.append(("--subnet6", opts.subnet6))
    return [(option, str(ipaddress.ip_network(s))) for option, s in given if s is not None]


def _check_subnets_free(
    engine: engines.Engine, opts: Options, networks: Sequence[tuple[str, str]]
) -> None:
    """Refuse a chosen bridge subnet that overlaps a network of the engine, naming both."""
    for option, subnet in _given_subnets(opts):
        hit = cmp.overlap(subnet, networks)
        if hit is not None:
            raise RpbuildError(
                f"{option} {subnet} overlaps {engine.name} network '{hit[0]}' ({hit[1]})",
                hint=_OVERLAP_HINT["file" if opts.compose_file else "option"],
            )


_OVERLAP_HINT = {
    "file": "change the subnet in the file, or write it again with `rpbuild compose` "
    "and a free --subnet4/--subnet6",
    "option": "choose a free subnet, or leave out --subnet4 and --subnet6: "
    "rpbuild then takes the first free pair",
}
_POOL_OVERLAP = re.compile(r"pool overlaps", re.I)


def _overlap_error(engine: engines.Engine, opts: Options, doc: dict[str, Any]) -> RpbuildError:
    """compose failed on a taken subnet after render() had looked: name what took it."""
    given = {subnet: option for option, subnet in _given_subnets(opts)}
    networks = composetool.network_subnets(engine)
    for subnet in cmp.subnets_of(doc):
        hit = cmp.overlap(subnet, networks)
        if hit is None:
            continue
        taken = f"overlaps {engine.name} network '{hit[0]}' ({hit[1]})"
        if subnet in given:
            return RpbuildError(
                f"{given[subnet]} {subnet} {taken}",
                hint=_OVERLAP_HINT["file" if opts.compose_file else "option"],
            )
        return RpbuildError(
            f"bridge subnet {subnet} (chosen as free) {taken}, created meanwhile",
            hint="run the command again: it chooses around that network",
        )
    return RpbuildError(
        f"the bridge subnets {', '.join(cmp.subnets_of(doc))} overlap a {engine.name} network "
        "that existed while compose started",
        hint="run the command again, or pass --subnet4 and --subnet6",
    )


def state_file(project: Project, name: str) -> Path:
    return project.state_dir / "topology" / f"{name}.json"


def is_standin(engine: engines.Engine, image: str) -> bool:
    """Images built from the test stand-in rosenpass say so in their version label."""
    info = engines.inspect(engine, image)
    return info is not None and info.labels.get(VERSION_LABEL, "").endswith("-standin")


def render(engine: engines.Engine, image: str, opts: Options) -> tuple[dict[str, Any], cmp.Plan]:
    """The compose document to run: opts.compose_file, or one rendered for image.

    Its bridge subnets overlap none of the engine's networks: the ones the user
    chose are checked (the error names the option), the others chosen around them.
    """
    networks = composetool.network_subnets(engine)
    _check_subnets_free(engine, opts, networks)
    if opts.compose_file is not None:
        return _read_compose_file(opts.compose_file)
    subnet4, subnet6 = opts.subnet4, opts.subnet6
    if subnet4 is None or subnet6 is None:
        # The tunnel subnets count as taken: a bridge must not overlap them either.
        taken = [*(subnet for _, subnet in networks), opts.tunnel4, opts.tunnel6]
        free4, free6 = cmp.free_subnets(taken)
        subnet4, subnet6 = subnet4 or free4, subnet6 or free6
    if opts.ip == "4":
        subnet6 = None  # the IPv4-only bridge has none (validate_options refused a given one)
    spec = cmp.TopologySpec(
        image=image,
        ip=opts.ip,
        userspace_wireguard=opts.userspace_wireguard,
        standin_rekey_seconds=opts.standin_rekey_seconds,
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
    by_id = {
        item.get("Id"): item for item in engines.inspect_containers(engine, list(ids.values()))
    }
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


def entrypoint_error(engine: engines.Engine, cid: str) -> str | None:
    """The last error the container's entrypoint printed, without its prefix."""
    try:
        lines = engines.container_output(engine, cid)
    except RpbuildError:
        return None
    found = [line.partition(ENTRYPOINT_ERROR)[2] for line in lines if ENTRYPOINT_ERROR in line]
    return found[-1].strip() if found else None


def stopped(engine: engines.Engine, role: str, cid: str, st: _State) -> TopologyFailed:
    """Why a peer's container stopped, in one line: its entrypoint's own error when it
    printed one (a missing WireGuard module gets its own error, NoWireGuard)."""
    cause = entrypoint_error(engine, cid)
    if cause is not None and NO_MODULE in cause:
        return NoWireGuard(role, cause)
    return TopologyFailed(
        f"the {role} container stopped: {st.describe()}" + (f": {cause}" if cause else "")
    )


def stopped_peer(engine: engines.Engine, name: str) -> TopologyFailed | None:
    """The failure of the first peer whose container has stopped, if one has."""
    ids = composetool.containers(engine, name)
    states = _states(engine, {r: ids[r] for r in cmp.ROLES if r in ids})
    for role, st in states.items():
        if st.status in ("exited", "dead"):
            return stopped(engine, role, ids[role], st)
    return None


def wait_for_tunnel(engine: engines.Engine, name: str, deadline: float, timeout: float) -> None:
    """Poll until both healthchecks have proved the tunnel; fail early when a peer exits."""
    while True:
        ids = composetool.containers(engine, name)
        states = _states(engine, {r: ids[r] for r in cmp.ROLES if r in ids})
        for role, st in states.items():
            if st.status in ("exited", "dead"):
                raise stopped(engine, role, ids[role], st)
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
    doc, plan = render(engine, image, opts)  # checks the subnets against the engine's
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
    notify: Notify,
    started: float,
) -> Topology:
    deadline = started + opts.timeout
    tool, plan = prepared.tool, prepared.plan
    file = state_file(project, name)
    file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(file, cmp.dump(prepared.doc))
    topo = Topology(name=name, file=file, compose=tool, plan=plan)
    notify(f"{name}: starting server and client ({tool.name}, IP {plan.ip})")
    try:
        try:
            composetool.up(tool, name, file, timeout=max(1.0, deadline - time.monotonic()))
        except EngineError as exc:
            if _POOL_OVERLAP.search(f"{exc.message}\n{exc.stderr_tail}"):
                raise _overlap_error(engine, opts, prepared.doc) from None
            # compose fails when the server stops before it is healthy: say why it stopped.
            raise stopped_peer(engine, name) or exc from None
        wait_for_tunnel(engine, name, deadline, opts.timeout)
    except NoWireGuard as exc:
        if not opts.userspace_wireguard and opts.compose_file is None:
            raise NoWireGuard(
                exc.role,
                f"this host has {NO_MODULE}; pass --userspace-wireguard "
                "(the entrypoint then runs wireguard-go)",
            ) from None
        raise
    topo.containers = {
        r: cid for r, cid in composetool.containers(engine, name).items() if r in cmp.ROLES
    }
    topo.seconds = time.monotonic() - started
    notify(f"{name}: tunnel up after {topo.seconds:.1f} s")
    return topo


def container_logs(engine: engines.Engine, name: str) -> str:
    """Both containers' output, each line prefixed with its service."""
    parts: list[str] = []
    for service, cid in sorted(composetool.containers(engine, name).items()):
        lines = engines.container_output(engine, cid) or ["(no output)"]
        parts.append(f"--- {service} logs ---")
        parts.extend(f"{service} | {line}" for line in lines)
    return "\n".join(parts) + "\n" if parts else ""


_KINDS = {"containers": "containers", "networks": "network", "volumes": "key volumes"}


def teardown(engine: engines.Engine, name: str, file: Path | None, notify: Notify = quiet) -> None:
    """compose down (containers, network, volumes), then remove whatever is left by label.

    The state file goes only once the engine has said that nothing is left, and
    the message says what was there: an engine that cannot be asked is an error,
    never "removed".
    """
    found = composetool.leftovers(engine, name)
    failure = ""
    if file is not None and file.is_file() and any(found.values()):
        try:
            tool = composetool.detect(engine)
            result = composetool.down(tool, name, file)
            if result.returncode != 0:
                last = result.stderr_tail(1).strip()
                failure = f"{tool.name} down failed (exit {result.returncode}): {last}"
        except Interrupted:
            raise
        except RpbuildError as exc:  # the sweep below removes what compose could not
            failure = exc.message
    left = composetool.sweep(engine, name)
    remaining = [f"{len(v)} {k}" for k, v in left.items() if v]
    if remaining:
        raise EngineError(
            f"{name}: could not remove {', '.join(remaining)}"
            + (f" ({failure})" if failure else ""),
            hint=f"see `{engine.name} ps --all --filter label={composetool.PROJECT_LABEL}={name}`",
        )
    if file is not None:
        file.unlink(missing_ok=True)
    removed = [_KINDS[kind] for kind, items in found.items() if items]
    if removed:
        notify(f"{name}: removed {_join(removed)}")


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


@contextlib.contextmanager
def _cleanup_on_failure(
    engine: engines.Engine,
    name: str,
    project: Project,
    on_container_logs: Notify,
    notify: Notify,
    always: bool,
) -> Iterator[None]:
    """On failure: show both logs, then tear down; with always, tear down in any case.

    A teardown that fails after another error does not replace it (that one is
    the cause), but the user learns from its hint that something may be left.
    """
    failure: BaseException | None = None
    try:
        yield
    except (Interrupted, KeyboardInterrupt) as exc:
        failure = exc
        raise
    except BaseException as exc:
        failure = exc
        if getattr(exc, "show_logs", True):
            with contextlib.suppress(RpbuildError):
                on_container_logs(container_logs(engine, name))
        raise
    finally:
        if failure is not None or always:
            try:
                teardown(engine, name, state_file(project, name), notify)
            except RpbuildError as exc:
                if failure is None:
                    raise
                left = (
                    f"{name} may be left running ({exc.message}); "
                    f"remove it with `rpbuild down --name {name}`"
                )
                if isinstance(failure, RpbuildError):
                    failure.hint = f"{left}; {failure.hint}" if failure.hint else left
                else:
                    notify(f"warning: {left}")


def up(
    project: Project,
    engine: engines.Engine,
    image: str,
    opts: Options,
    *,
    notify: Notify = quiet,
    on_container_logs: Notify = quiet,
) -> Topology:
    """Start the topology and leave it running once the tunnel works."""
    validate_options(opts)
    name = check_name(opts.name or DEFAULT_NAME)
    with _interruptible(), _claimed(project, name, notify):
        _refuse_existing(engine, name)
        started = time.monotonic()
        prepared = _prepare(engine, image, opts)
        with _cleanup_on_failure(engine, name, project, on_container_logs, notify, always=False):
            return _start(project, engine, prepared, opts, name, notify, started)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Let SIGINT stop the run (teardown included) even when rpbuild inherited it ignored.

    A shell without job control starts a background command with SIGINT ignored,
    and Python then installs no KeyboardInterrupt handler: `kill -INT PID` did
    nothing and the test ran on. A handler someone else installed stays.
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _claimed(project: Project, name: str, notify: Notify) -> Iterator[None]:
    """One `up` or `test` per topology name at a time: between the check that the name
    is free and its containers starting, a second run would pass the check too, and its
    cleanup on failure would tear down the first run's topology."""
    lock = state_file(project, name).with_suffix(".lock")
    waiting = f"{name}: another rpbuild is starting it; waiting"
    with project_lock(lock, on_wait=lambda: notify(waiting)) as held:
        try:
            yield
        finally:
            if not state_file(project, name).exists():  # the topology is gone: its lock too
                held.remove()


def _refuse_existing(engine: engines.Engine, name: str) -> None:
    """A topology that has containers is someone's: never start over it or tear it down."""
    if composetool.containers(engine, name):
        raise RpbuildError(
            f"topology '{name}' exists already",
            hint=f"stop it with `rpbuild down --name {name}`, or choose another --name",
        )


def down(project: Project, engine: engines.Engine, name: str, *, notify: Notify = quiet) -> bool:
    """Remove the topology; False when the engine says nothing of it exists.

    An engine that cannot be asked raises: "nothing to stop" is said only when
    it is known, and the state file of a topology that may run stays.
    """
    check_name(name)
    file = state_file(project, name)
    with _claimed(project, name, notify):  # removes the topology's lock once it is gone
        if not any(composetool.leftovers(engine, name).values()):
            file.unlink(missing_ok=True)  # the state of a topology that is gone
            return False
        teardown(engine, name, file, notify)
        return True


# --- test: up, checks, down -----------------------------------------------


def test(
    project: Project,
    engine: engines.Engine,
    image: str,
    opts: Options,
    *,
    notify: Notify = quiet,
    on_check: OnCheck = ignore,
    on_container_logs: Notify = quiet,
) -> list[Check]:
    """up, check, down: the topology never outlives the call, pass or fail.

    A topology that exists already under the name is refused and left alone.
    """
    validate_options(opts)
    name = check_name(opts.name or f"rpbuild-test-{uuid.uuid4().hex[:8]}")
    with _interruptible(), _claimed(project, name, notify):
        return _test(project, engine, image, opts, name, notify, on_check, on_container_logs)


def _test(
    project: Project,
    engine: engines.Engine,
    image: str,
    opts: Options,
    name: str,
    notify: Notify,
    on_check: OnCheck,
    on_container_logs: Notify,
) -> list[Check]:
    """test() once SIGINT is sure to stop it."""
    _refuse_existing(engine, name)
    standin = is_standin(engine, image)
    if opts.real_rosenpass and standin:
        raise RpbuildError(
            f"--real-rosenpass: {image} is built from the stand-in rosenpass",
            hint="build without --override-input rosenpass ...",
        )
    if opts.standin_rekey_seconds is not None and not standin:
        raise RpbuildError(
            f"--standin-rekey-seconds: {image} holds the real rosenpass, which keeps its "
            "own rekey interval (about 130 s)",
            hint="leave the option out: `rpbuild test` waits for the real interval",
        )
    started = time.monotonic()
    prepared = _prepare(engine, image, opts)
    with _cleanup_on_failure(engine, name, project, on_container_logs, notify, always=True):
        topo = _start(project, engine, prepared, opts, name, notify, started)
        checks = run_checks(
            engine,
            topo,
            standin=standin,
            on_check=on_check,
            notify=notify,
        )
        failed = [c for c in checks if not c.ok]
        if failed:
            raise TopologyFailed(
                f"{len(failed)} of {len(checks)} tunnel checks failed; first: {failed[0].name}",
                checks=checks,
            )
        return checks
