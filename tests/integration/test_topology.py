"""The two-peer topology for real: with-wireguard images from the stand-in inputs,
brought up by compose from the rendered file, userspace WireGuard (the test kernel
has none: the entrypoint starts wireguard-go before rp, as it would for a real image).
Proves the tunnel both ways over IPv4 and IPv6, the pre-shared key rosenpass hands to
WireGuard and its renewal, the security model, stopping, and that nothing is left
behind, also after a failed run.

The stand-in rosenpass (tests/standin/rosenpass/CONTRACT.md) keeps upstream's device
set-up, ports, late peer, PSK hand-over and rekey (scaled down with
--standin-rekey-seconds); only its cryptography is not rosenpass's. Running real
images (the real exchange, upstream's timing) needs RPBUILD_REAL_IMAGES=1.
"""

from __future__ import annotations

import base64
import hashlib
import io
import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from rpbuild import engine as engines
from rpbuild.topology import compose as cmp
from rpbuild.topology import composetool
from tests.conftest import REPO, ROSENPASS_SOURCE, STANDIN_OVERRIDES, Run, use_rosenpass_source

pytestmark = [pytest.mark.nix, pytest.mark.docker]

KEY_FILES = {"pqsk", "pqpk", "wgsk", "wgpk", "psk"}
SECRET_FILES = ("pqsk", "wgsk")
CAP_NET_ADMIN = 12
# The stand-in rosenpass's rekey interval in these tests (upstream: 120 s / 130 s).
REKEY = "6"
FAST = ["--userspace-wireguard", "--standin-rekey-seconds", REKEY]


@dataclass
class Env:
    project: Path
    state: Path
    tag: str
    names: list[str] = field(default_factory=list)

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {**os.environ, "XDG_STATE_HOME": str(self.state), "COLUMNS": "200"}
        env.pop("RPBUILD_REAL_IMAGES", None)  # it means --real-rosenpass to rpbuild test
        env.pop("RPBUILD_STANDIN_REKEY_SECONDS", None)  # the tests pass it where they mean it
        return env | (extra or {})

    def cli(self, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> Run:
        proc = subprocess.run(
            [sys.executable, "-m", "rpbuild", *args],
            cwd=self.project,
            env=self.environ(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def state_file(self, name: str) -> Path:
        return self.project / ".rpbuild" / "topology" / f"{name}.json"

    def name(self) -> str:
        """A compose project name of this run; checked to be gone at the end."""
        name = f"rpbuild-it-{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        return name


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def docker_bytes(*args: str) -> bytes:
    return subprocess.run(["docker", *args], capture_output=True, check=True, timeout=120).stdout


def leftovers(name: str) -> dict[str, list[str]]:
    return composetool.leftovers(engines.detect("docker"), name)


def nothing_left(name: str) -> bool:
    return not any(leftovers(name).values())


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A fresh project copy and its with-wireguard image, built from the stand-ins."""
    base = tmp_path_factory.mktemp("topology")
    project = base / "project"
    project.mkdir()
    for name in ("profiles", "templates"):
        shutil.copytree(REPO / name, project / name)
    shutil.copy2(REPO / "flake.lock", project / "flake.lock")
    if ROSENPASS_SOURCE:
        use_rosenpass_source(project, ROSENPASS_SOURCE)
    e = Env(project=project, state=base / "state", tag=f"rpbuild-test/{uuid.uuid4().hex[:10]}:wg")
    built = e.cli("image", "--profile", "with-wireguard", "--tag", e.tag, *STANDIN_OVERRIDES)
    assert built.returncode == 0, built.stderr
    yield e
    try:
        for name in e.names:
            assert nothing_left(name), (name, leftovers(name))
    finally:
        docker("image", "rm", "--force", e.tag, check=False)


def build_args(e: Env) -> list[str]:
    return ["--profile", "with-wireguard", "--tag", e.tag, *STANDIN_OVERRIDES]


# --- the compose file and the entrypoint ---------------------------------------


@pytest.mark.parametrize("ip", ["4", "6", "dual"])
def test_compose_accepts_the_rendered_file(env: Env, tmp_path: Path, ip: str) -> None:
    out = tmp_path / "compose.json"
    made = env.cli("compose", "--ip", ip, "--userspace-wireguard", "--tag", env.tag, "-o", str(out))
    assert made.returncode == 0, made.stderr
    tool = composetool.detect(engines.detect("docker"))
    checked = subprocess.run(
        tool.argv("rpbuild-config-check", out, "config", "--quiet"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(
    "environment,message",
    [
        ([], "MODE is not set"),
        (["MODE=peer"], "unknown mode 'peer'"),
        (["MODE=server"], "SERVER_VPN_IP is not set"),
        (["MODE=server", "SERVER_VPN_IP=10.0.0.1", "CLIENT_VPN_IP=10.0.0.2.1"], "not an IPv4"),
        (["MODE=client", "CLIENT_VPN_IP=fd00::2", "SERVER_VPN_IP=fd00::1"], "SERVER_PUBLIC_IP"),
        (["MODE=server", "SERVER_VPN_IP=fe90::3", "CLIENT_VPN_IP=fe90::4"], "link-local"),
    ],
)
def test_the_image_refuses_bad_configuration(
    env: Env, environment: list[str], message: str
) -> None:
    flags = [arg for item in environment for arg in ("-e", item)]
    proc = docker("run", "--rm", "--pull", "never", *flags, env.tag, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rpbuild-entrypoint: error: "), proc.stderr
    assert message in lines[0]


def test_standalone_makes_keys_once_and_publishes_only_public_ones(
    env: Env, tmp_path: Path
) -> None:
    private, public = tmp_path / "private", tmp_path / "public"
    private.mkdir()
    public.mkdir()
    mounts = ["-v", f"{private}:/keys/private", "-v", f"{public}:/keys/public"]
    run = ["run", "--rm", "--pull", "never", *mounts, "-e", "MODE=standalone", env.tag]
    docker(*run)
    assert oct(private.stat().st_mode & 0o777) == "0o700"
    secret = private / "rosenpass"
    assert oct(secret.stat().st_mode & 0o777) == "0o700"
    assert sorted(p.name for p in secret.iterdir()) == ["pqpk", "pqsk", "wgsk"]
    assert sorted(p.name for p in public.iterdir()) == ["pqpk", "wgpk"]
    first = (secret / "wgsk").read_bytes()
    again = docker(*run, "rosenpass", "--version")  # keys kept; then the command runs
    assert again.stdout.startswith("rosenpass ")  # upstream's rp has no --version
    assert (secret / "wgsk").read_bytes() == first
    assert first.decode().strip() not in again.stderr


# --- the tunnel ------------------------------------------------------------------


def test_rpbuild_test_proves_the_tunnel_and_the_pre_shared_key(env: Env) -> None:
    """Ping both ways over IPv4 and IPv6, handshakes, and the PSK: the same on both sides
    (not `(none)`: the peer appears only after rosenpass's first exchange), then renewed."""
    name = env.name()
    run = env.cli("test", "--ip", "dual", *FAST, "--name", name, *build_args(env))
    assert run.returncode == 0, run.stdout + run.stderr
    for src, dst in (("client", "server"), ("server", "client")):
        for fam in ("IPv4", "IPv6"):
            assert any(
                line.startswith(f"ok    ping {src} -> {dst}") and f"({fam})" in line
                for line in run.stdout.splitlines()
            ), run.stdout
    assert "ok    WireGuard handshake on the server" in run.stdout
    assert "ok    WireGuard handshake on the client" in run.stdout
    assert "ok    pre-shared key set by rosenpass: set, the same on both sides" in run.stdout
    assert "ok    pre-shared key renewed by rosenpass: a new key" in run.stdout
    assert "waiting up to 32 s for rosenpass to renew the key" in run.stderr
    assert not [line for line in run.stdout.splitlines() if line.startswith("skip")]
    assert "passed: 8 checks, 0 skipped" in run.stdout
    assert nothing_left(name), leftovers(name)


def test_rpbuild_test_json_is_one_document_with_every_check(env: Env) -> None:
    name = env.name()
    run = env.cli("test", "--ip", "4", *FAST, "--name", name, "--json", *build_args(env))
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads(run.stdout)
    assert document["format"] == "rpbuild-test/1" and document["passed"] is True
    assert document["image"] == env.tag
    checks = {c["name"]: c for c in document["checks"]}
    [ping] = [c for n, c in checks.items() if n.startswith("ping client -> server")]
    assert ping["ok"] is True and "(IPv4)" in ping["name"], document
    psk = checks["pre-shared key set by rosenpass"]
    assert psk["ok"] is True and psk["skipped"] is False, document
    assert checks["pre-shared key renewed by rosenpass"]["ok"] is True, document
    assert all(set(c) == {"name", "ok", "skipped", "detail"} for c in document["checks"])
    assert nothing_left(name), leftovers(name)


def test_a_failed_run_shows_both_logs_and_leaves_nothing(env: Env, tmp_path: Path) -> None:
    subnets = cmp.free_subnets(composetool.subnets_in_use(engines.detect("docker")))
    made = env.cli(
        "compose",
        "--userspace-wireguard",
        "--tag",
        env.tag,
        "--subnet4",
        subnets[0],
        "--subnet6",
        subnets[1],
        "-o",
        str(tmp_path / "c"),
    )
    assert made.returncode == 0, made.stderr
    doc = json.loads((tmp_path / "c").read_text())
    doc["services"]["client"]["environment"]["SERVER_PORT"] = "9001"  # nobody listens there
    wrong = tmp_path / "wrong.yml"  # edited as users do: in YAML, which compose reads too
    wrong.write_text(yaml.safe_dump(doc))
    name = env.name()
    run = env.cli(
        "test", "--compose-file", str(wrong), "--name", name, "--timeout", "12", "--json",
        *build_args(env),
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert json.loads(run.stdout) == {
        "format": "rpbuild-test/1",
        "image": env.tag,
        "passed": False,
        "checks": [],  # it failed before the checks: the tunnel never came up
    }
    assert "--- server logs ---" in run.stderr and "--- client logs ---" in run.stderr
    assert "client | " in run.stderr and "server | " in run.stderr
    assert "rpbuild: error: the tunnel was not up within 12 s" in run.stderr
    assert nothing_left(name), leftovers(name)
    assert "nothing to stop" in env.cli("down", "--name", name).stdout


def host_has_wireguard_module(env: Env) -> bool:
    """Can a container here make a kernel WireGuard device? (This test machine cannot.)"""
    probe = docker(
        "run", "--rm", "--pull", "never", "--cap-add", "NET_ADMIN", env.tag,
        "ip", "link", "add", "dev", "wgprobe", "type", "wireguard", check=False,
    )  # fmt: skip
    return probe.returncode == 0


@pytest.mark.parametrize("command", ["up", "test"])
def test_without_the_module_and_the_flag_one_line_names_both(env: Env, command: str) -> None:
    """Upstream rp cannot make its device without the kernel module and never starts
    wireguard-go: the peers stop at once, and rpbuild says why in one line, well
    before its deadline."""
    if host_has_wireguard_module(env):
        pytest.skip("this host has the WireGuard kernel module: nothing is missing")
    name = env.name()
    started = time.monotonic()
    run = env.cli(command, "--quiet", "--name", name, "--timeout", "60", *build_args(env))
    took = time.monotonic() - started
    assert run.returncode == 3, run.stdout + run.stderr  # the host lacks something: run time
    assert run.stderr.splitlines() == [
        "rpbuild: error: the server cannot create its WireGuard device: this host has no "
        "WireGuard kernel module; pass --userspace-wireguard (the entrypoint then runs "
        "wireguard-go)"
    ], run.stderr
    assert took < 45, took
    assert nothing_left(name), leftovers(name)


def test_a_profile_without_wireguard_go_is_refused_for_userspace_wireguard(env: Env) -> None:
    name = env.name()
    run = env.cli("up", "--name", name, "--userspace-wireguard", "--profile", "minimal")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith("rpbuild: error: profile minimal has no wg and no ping and no ")
    assert "wireguard-go, which" in run.stderr and "--userspace-wireguard starts" in run.stderr


def test_psk_checks_refuse_stand_in_images(env: Env) -> None:
    name = env.name()
    run = env.cli("test", "--real-rosenpass", "--name", name, *build_args(env))
    assert run.returncode == 2
    assert "built from the stand-in rosenpass" in run.stderr
    assert nothing_left(name)


def a_network_of_our_own() -> tuple[str, str]:
    """A new Docker network (name, IPv4 subnet) outside the ranges rpbuild chooses from."""
    in_use = [ipaddress.ip_network(s) for s in composetool.subnets_in_use(engines.detect("docker"))]
    for _ in range(20):
        subnet = ipaddress.ip_network(
            f"10.{random.randint(214, 254)}.{random.randint(0, 255)}.0/24"
        )
        if any(subnet.overlaps(u) for u in in_use if u.version == 4):
            continue
        name = f"rpbuild-it-{uuid.uuid4().hex[:8]}"
        if docker("network", "create", "--subnet", str(subnet), name, check=False).returncode == 0:
            return name, str(subnet)
    raise AssertionError("no free subnet for a test network")


def test_a_subnet_another_network_has_is_refused_naming_both(env: Env) -> None:
    """It failed in compose with "Pool overlaps with other one ...", naming no option."""
    network, subnet = a_network_of_our_own()
    try:
        name = env.name()
        run = env.cli(
            "test", "--subnet4", subnet, "--userspace-wireguard", "--name", name, *build_args(env)
        )
        assert run.returncode == 2, run.stdout + run.stderr
        errors = [line for line in run.stderr.splitlines() if line.startswith("rpbuild: error")]
        assert errors == [
            f"rpbuild: error: --subnet4 {subnet} overlaps docker network '{network}' ({subnet})"
        ], run.stderr
        assert "starting" not in run.stderr and "removed" not in run.stderr
        assert nothing_left(name), leftovers(name)
        assert not env.state_file(name).exists()
    finally:
        docker("network", "rm", network, check=False)


@pytest.mark.parametrize("inherited", ["ignored", "default"])
def test_sigint_to_rpbuild_alone_stops_the_run_and_leaves_nothing(
    env: Env, tmp_path: Path, inherited: str
) -> None:
    """`rpbuild test &` from a script inherits SIGINT ignored: `kill -INT PID` (not the
    group) went unseen and the test ran on to pass."""
    name = env.name()
    argv = [sys.executable, "-m", "rpbuild", "test", "--userspace-wireguard", "--name", name]
    argv += build_args(env)
    if inherited == "ignored":
        argv = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *argv]
    stdout = tmp_path / "stdout"
    with stdout.open("w") as out:
        proc = subprocess.Popen(
            argv, cwd=env.project, env=env.environ(), stdout=out, stderr=subprocess.PIPE, text=True
        )
    assert proc.stderr is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not any("starting server and client" in line for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.1)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)  # to rpbuild alone, not its process group
        code = proc.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = "".join(lines)
    assert code == 130, stderr
    assert "interrupted" in stderr.splitlines()[-1], stderr
    assert "passed" not in stdout.read_text()
    assert nothing_left(name), leftovers(name)
    assert not env.state_file(name).exists()


@pytest.mark.skipif(
    shutil.which("podman") is None or shutil.which("podman-compose") is not None,
    reason="needs podman without podman-compose",
)
def test_a_missing_compose_tool_is_found_before_the_image_is_loaded(env: Env) -> None:
    tag = f"rpbuild-test/{uuid.uuid4().hex[:10]}:podman"
    name = env.name()
    args = ["--profile", "with-wireguard", "--tag", tag, *STANDIN_OVERRIDES]
    plugin = subprocess.run(
        ["podman", "compose", "version"], capture_output=True, text=True, check=False, timeout=60
    )
    if plugin.returncode != 0:  # Debian 12: no compose for podman at all
        expected = "rpbuild: error: neither `podman compose` nor podman-compose is installed"
    elif "external compose provider" in plugin.stderr:  # Debian 13: docker-compose via a socket
        expected = "rpbuild: error: `podman compose` runs docker-compose against Podman's API"
    else:
        pytest.skip("this podman has a compose of its own: nothing is missing")
    try:
        run = env.cli("test", "--engine", "podman", "--name", name, *args)
        if run.returncode == 0:
            pytest.skip("podman compose works here (Podman's API service runs): nothing missing")
        assert run.returncode == 3, run.stdout + run.stderr
        assert run.stderr.splitlines()[0].startswith(expected), run.stderr
        exists = subprocess.run(["podman", "image", "exists", tag], check=False, timeout=60)
        assert exists.returncode == 1, "the image was built and loaded first"
    finally:
        subprocess.run(["podman", "image", "rm", "--force", tag], capture_output=True, check=False)


@pytest.mark.realimages
@pytest.mark.skipif(
    not os.environ.get("RPBUILD_REAL_IMAGES"),
    reason="needs the real rosenpass (its post-quantum exchange and upstream's 130 s rekey), "
    "which is built from the network: set RPBUILD_REAL_IMAGES=1",
)
def test_real_images_exchange_and_renew_the_pre_shared_key(env: Env) -> None:
    name = env.name()
    run = env.cli(
        "test", "--real-rosenpass", "--userspace-wireguard", "--ip", "dual", "--name", name,
        timeout=1800,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ok    pre-shared key set by rosenpass" in run.stdout
    assert "ok    pre-shared key renewed by rosenpass" in run.stdout
    assert nothing_left(name)


# --- security, on a running topology ---------------------------------------------


@dataclass
class Running:
    name: str
    containers: dict[str, str]
    output: str


@pytest.fixture(scope="module")
def running(env: Env) -> Iterator[Running]:
    name = env.name()
    up = env.cli("up", "--ip", "dual", *FAST, "--name", name, "--json", *build_args(env))
    try:
        assert up.returncode == 0, up.stderr
        data = json.loads(up.stdout)
        yield Running(name=name, containers=data["containers"], output=up.stdout + up.stderr)
    finally:
        down = env.cli("down", "--name", name)
        assert down.returncode == 0, down.stderr
        assert nothing_left(name), leftovers(name)


def inspect(cid: str) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(docker("inspect", cid).stdout)
    return data[0]


def secret_keys(running: Running) -> dict[str, dict[str, bytes]]:
    """Each peer's secret keys, read by the peer itself."""
    return {
        role: {
            f: docker_bytes("exec", cid, "cat", f"/keys/private/rosenpass/{f}")
            for f in SECRET_FILES
        }
        for role, cid in running.containers.items()
    }


def test_a_second_up_with_the_same_name_is_refused(env: Env, running: Running) -> None:
    again = env.cli("up", "--name", running.name, "--userspace-wireguard", *build_args(env))
    assert again.returncode == 2
    assert "exists already" in again.stderr


def test_rpbuild_test_leaves_a_running_topology_of_that_name_alone(
    env: Env, running: Running
) -> None:
    """`rpbuild test --name X` once tore down the topology X that `up` had started."""
    again = env.cli("test", "--name", running.name, "--userspace-wireguard", *build_args(env))
    assert again.returncode == 2, again.stdout + again.stderr
    assert f"rpbuild: error: topology '{running.name}' exists already" in again.stderr
    assert "removed" not in again.stderr and "logs ---" not in again.stderr
    assert composetool.containers(engines.detect("docker"), running.name) == running.containers


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ip", "5"], "Invalid value for '--ip': '5' is not one of '4', '6', 'dual'."),
        (["--subnet4", "8.8.8.0/24"], "--subnet4: 8.8.8.0/24 is not a private network"),
        (["--timeout", "0"], "--timeout: 0 is not a positive number of seconds"),
    ],
)
def test_bad_options_leave_a_running_topology_of_that_name_alone(
    env: Env, running: Running, args: list[str], message: str
) -> None:
    """`up --ip 5 --name X` once said "X: removed containers, ..." before the --ip error."""
    for command in ("up", "test"):
        bad = env.cli(command, "--name", running.name, *args, *build_args(env))
        assert bad.returncode == 2, bad.stdout + bad.stderr
        errors = [line for line in bad.stderr.splitlines() if line.startswith("rpbuild: error")]
        assert len(errors) == 1 and errors[0].startswith(f"rpbuild: error: {message}"), bad.stderr
        assert "removed" not in bad.stderr
    assert composetool.containers(engines.detect("docker"), running.name) == running.containers


@pytest.mark.parametrize("command", ["up", "test"])
def test_bad_options_are_refused_before_the_image_is_built(env: Env, command: str) -> None:
    fresh = f"rpbuild-test/{uuid.uuid4().hex[:10]}:never"
    try:
        bad = env.cli(
            command, "--ip", "5", "--profile", "with-wireguard", "--tag", fresh,
            *STANDIN_OVERRIDES,
        )  # fmt: skip
        assert bad.returncode == 2, bad.stdout + bad.stderr
        assert bad.stderr == (
            "rpbuild: error: Invalid value for '--ip': '5' is not one of '4', '6', 'dual'. "
            f"(see `rpbuild {command} --help`)\n"
        )
        assert docker("image", "inspect", fresh, check=False).returncode != 0
    finally:
        docker("image", "rm", "--force", fresh, check=False)


def test_no_peer_can_read_the_other_peers_secret_keys(running: Running) -> None:
    keys = secret_keys(running)
    assert keys["server"]["wgsk"] != keys["client"]["wgsk"]
    assert keys["server"]["pqsk"] != keys["client"]["pqsk"]
    for role, cid in running.containers.items():
        other = "client" if role == "server" else "server"
        other_cid = running.containers[other]
        own_private = next(
            m["Name"] for m in inspect(cid)["Mounts"] if m["Destination"] == "/keys/private"
        )
        other_mounts = inspect(other_cid)["Mounts"]
        assert own_private not in {m.get("Name") for m in other_mounts}
        # The other side has only its own keys; its search for ours finds nothing.
        wgsk = keys[role]["wgsk"].decode().strip()
        found = docker("exec", other_cid, "grep", "-rlF", wgsk, "/keys", "/tmp", check=False)
        assert found.returncode == 1, found.stdout
        # It cannot change our public keys either (read-only for it).
        touched = docker("exec", other_cid, "touch", f"/keys/public/{role}/x", check=False)
        assert touched.returncode != 0 and "Read-only" in touched.stderr
        modes = docker("exec", cid, "stat", "-c", "%a", "/keys/private", "/keys/private/rosenpass")
        assert modes.stdout.split() == ["700", "700"]


def test_containers_are_unprivileged_with_only_net_admin_added(running: Running) -> None:
    for cid in running.containers.values():
        host = inspect(cid)["HostConfig"]
        assert host["Privileged"] is False
        assert host["CapAdd"] == ["NET_ADMIN"]
        assert "no-new-privileges:true" in host["SecurityOpt"]
        assert [d["PathOnHost"] for d in host["Devices"] or []] == ["/dev/net/tun"]
        status = docker("exec", cid, "grep", "CapEff", "/proc/1/status").stdout
        caps = int(status.split()[1], 16)
        assert caps == 1 << CAP_NET_ADMIN, hex(caps)  # NET_RAW too is dropped


def test_down_with_the_engine_unreachable_fails_and_keeps_the_topology(
    env: Env, running: Running
) -> None:
    """It said "removed containers, network and key volumes", exit 0, and deleted the
    state file while the containers ran on; with nothing up it said "nothing to stop"."""
    unreachable = {"DOCKER_HOST": "unix:///tmp/rpbuild-it-nonexistent.sock"}
    assert env.state_file(running.name).is_file()
    for name in (running.name, env.name()):
        down = env.cli("down", "--name", name, env=unreachable)
        assert down.returncode == 3, down.stdout + down.stderr
        assert down.stdout == ""
        lines = down.stderr.splitlines()
        assert lines[0] == (
            "rpbuild: error: the Docker daemon at DOCKER_HOST=unix:///tmp/rpbuild-it-nonexistent"
            ".sock is not running or not reachable"
        )
        assert [line.split(":")[1] for line in lines] == [" error", " hint"], down.stderr
    assert env.state_file(running.name).is_file()
    assert composetool.containers(engines.detect("docker"), running.name) == running.containers


def test_key_material_appears_in_no_log(running: Running) -> None:
    secrets: list[str] = []
    for files in secret_keys(running).values():
        secrets.append(files["wgsk"].decode().strip())
        secrets.append(files["pqsk"].hex())
        secrets.append(base64.b64encode(files["pqsk"]).decode())
    texts = [running.output]
    for cid in running.containers.values():
        logs = docker("logs", cid)
        texts.append(logs.stdout + logs.stderr)
        health = inspect(cid)["State"]["Health"]["Log"]
        texts.extend(entry["Output"] for entry in health)
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_keys_live_in_volumes_not_in_the_container_layer(running: Running) -> None:
    for cid in running.containers.values():
        changed = docker("diff", cid).stdout.split()
        assert not [p for p in changed if Path(p).name in KEY_FILES], changed


def preshared_keys(running: Running) -> dict[str, str]:
    """Each side's PSK for its one peer, as a digest (`(none)` stays as it is)."""
    out: dict[str, str] = {}
    for role, cid in running.containers.items():
        lines = docker("exec", cid, "wg", "show", "rosenpass0", "preshared-keys").stdout.split("\n")
        values = [line.split("\t")[1] for line in lines if "\t" in line]
        assert len(values) == 1, f"{role}: {len(values)} peers"
        psk = values[0].strip()
        out[role] = psk if psk == "(none)" else hashlib.sha256(psk.encode()).hexdigest()
    return out


def test_both_sides_hold_the_same_pre_shared_key_and_a_new_one_after_the_rekey(
    running: Running,
) -> None:
    """Read with wg in both containers, independently of rpbuild's own check: rosenpass
    set the same PSK on both sides and replaces it at its rekey interval."""

    def agreed(deadline: float) -> str:
        while True:
            keys = preshared_keys(running)
            if keys["server"] == keys["client"] != "(none)":
                return keys["server"]
            assert time.monotonic() < deadline, keys
            time.sleep(0.5)

    first = agreed(time.monotonic() + 10)
    deadline = time.monotonic() + 2 * float(REKEY) + 20
    while (renewed := agreed(deadline)) == first:
        time.sleep(0.5)
    assert renewed != first


def test_docker_stop_and_down_give_rp_s_status_and_stop_what_rp_left(env: Env) -> None:
    """docker stop: the entrypoint passes SIGTERM to rp, whose EXIT trap deletes the
    device and which exits 143 (bash killed by SIGTERM, as upstream's rp); rosenpass,
    which rp leaves running, is stopped by the entrypoint, not killed with the container.
    The container's status is 143, as a real image gives, well within the grace period.
    `rpbuild down` stops the other peer the same way (its exit code, from Docker's events)."""
    name = env.name()
    up = env.cli("up", *FAST, "--name", name, "--json", *build_args(env))
    events: subprocess.Popen[str] | None = None
    try:
        assert up.returncode == 0, up.stderr
        server = json.loads(up.stdout)["containers"]["server"]
        started = time.monotonic()
        docker("stop", "--time", "20", server)
        assert time.monotonic() - started < 15  # not the SIGKILL after 20 s
        assert inspect(server)["State"]["ExitCode"] == 143
        logs = docker("logs", server)
        text = logs.stdout + logs.stderr
        assert "stopped by SIGTERM: rp exchange exited with status 143" in text, text
        assert "stopping what rp left running: rosenpass (" in text, text
        assert "which rp left behind" not in text  # rp's own trap deleted the device

        events = subprocess.Popen(
            [
                "docker", "events", "--filter", f"label={composetool.PROJECT_LABEL}={name}",
                "--filter", "event=die", "--format",
                '{{index .Actor.Attributes "com.docker.compose.service"}} '
                "{{.Actor.Attributes.exitCode}}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        time.sleep(1)  # docker events starts listening
    finally:
        down = env.cli("down", "--name", name)
        if events is not None:
            time.sleep(1)  # the die events of the removal reach the pipe
            events.terminate()
            out, _ = events.communicate(timeout=30)
    assert down.returncode == 0, down.stderr
    assert events is not None and out.split() == ["client", "143"], out
    assert nothing_left(name), leftovers(name)


def test_no_key_file_in_any_image_layer(env: Env) -> None:
    with tarfile.open(fileobj=io.BytesIO(docker_bytes("save", env.tag))) as saved:
        layers = [m for m in saved.getmembers() if m.name.endswith("layer.tar")]
        assert layers
        for member in layers:
            data = saved.extractfile(member)
            assert data is not None
            with tarfile.open(fileobj=io.BytesIO(data.read())) as layer:
                names = layer.getnames()
            assert not [n for n in names if Path(n).name in KEY_FILES], member.name
            assert not [n for n in names if n.strip("./").startswith("keys/")], member.name
    config = inspect(env.tag)["Config"]
    assert not any("KEY" in item.split("=", 1)[0] for item in config.get("Env") or [])
