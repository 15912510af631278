"""The stand-in rosenpass keeps the contract in tests/standin/rosenpass/CONTRACT.md.

One test (or more) per row marked "yes" there, named in the table. The package is built with
the real nix; rp and rosenpass then run on this machine, exchanges inside network and mount
namespaces the test creates (`unshare`), with userspace WireGuard devices made by the
runtime's wireguard-go: no Docker, nothing reaches the host's network or /run/wireguard.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import conftest
from tests.standin import test_standins as standins

STANDIN = conftest.STANDIN / "rosenpass"
SK_LEN, PK_LEN = 13608, 524160
HOST_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
TIMEOUT = 30

pytestmark = [
    pytest.mark.nix,
    pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed"),
]
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("nsenter") is None,
    reason="network namespaces need root and util-linux unshare/nsenter",
)


def build(system: str) -> Path:
    [out] = standins.build(f"path:{STANDIN}", f"packages.{system}.rosenpass")
    return Path(out)


def runtime_of(package: Path) -> Path:
    """The runtime store path: rp's interpreter is its bin/bash."""
    shebang = (package / "bin" / "rp").read_text().splitlines()[0]
    return Path(shebang.removeprefix("#!")).parent.parent


@pytest.fixture(scope="module")
def pkg() -> Path:
    return build("x86_64-linux")


@pytest.fixture
def env(pkg: Path) -> dict[str, str]:
    """The environment of an image: the package's bin, then the host's tools (ip)."""
    return {"PATH": f"{pkg / 'bin'}:{HOST_PATH}", "HOME": "/nonexistent", "LC_ALL": "C"}


def run(
    args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def expand_pk(sk: bytes) -> bytes:
    """The stand-in's pqpk for pqsk, computed with hashlib (this checks its own SHA-256 too)."""
    seed = hashlib.sha256(b"rosenpass-standin pqpk v1" + sk).digest()
    stream = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(16380))
    return stream[:PK_LEN]


def keys(env: dict[str, str], where: Path, name: str) -> tuple[Path, Path]:
    sk, pk = where / f"{name}.sk", where / f"{name}.pk"
    for args in (["rp", "genkey", str(sk)], ["rp", "pubkey", str(sk), str(pk)]):
        proc = run(args, env)
        assert proc.returncode == 0, proc.stderr
    return sk, pk


# --- rp: command line and refusals (R1-R4, R6) ---------------------------------------------


def test_rp_unknown_command_and_version_are_fatal(env: dict[str, str]) -> None:
    for args, message in (
        (["--version"], "FATAL: Unknown command --version"),
        (["version"], "FATAL: Unknown command version"),
        (["frobnicate", "x"], "FATAL: Unknown command frobnicate"),
        ([], "FATAL: No command supplied"),
        (["verbose"], "FATAL: No command supplied"),
    ):
        proc = run(["rp", *args], env)
        assert proc.returncode == 1, args
        assert proc.stdout == ""
        lines = proc.stderr.splitlines()
        assert lines[0] == message, proc.stderr
        assert lines[1].startswith("Usage: ") and "genkey|pubkey|exchange" in lines[1]


def test_rp_help(env: dict[str, str]) -> None:
    for word in ("help", "-h", "-help", "--help"):
        proc = run(["rp", word], env)
        assert (proc.returncode, proc.stdout) == (0, ""), word
        assert re.fullmatch(
            r"Usage: \S*rp \[explain\] \[verbose\] genkey\|pubkey\|exchange \[ARGS\]\.\.\.\n",
            proc.stderr,
        ), proc.stderr


def test_rp_genkey_refusals(env: dict[str, str], tmp_path: Path) -> None:
    existing = tmp_path / "empty"
    existing.mkdir()
    for arg in (str(existing), f"{existing}/"):
        proc = run(["rp", "genkey", arg], env)
        assert proc.returncode == 1
        assert proc.stderr.splitlines()[0] == f'FATAL: PRIVATE_KEYS_DIR "{existing}" already exists'
    assert list(existing.iterdir()) == []
    proc = run(["rp", "genkey"], env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("FATAL: Required positional argument: PRIVATE_KEYS_DIR\n")
    proc = run(["rp", "genkey", str(tmp_path / "new"), "extra"], env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("FATAL: Unknown option extra\n")
    assert not (tmp_path / "new").exists()


def test_rp_pubkey_refusals(env: dict[str, str], tmp_path: Path) -> None:
    sk, pk = keys(env, tmp_path, "a")
    proc = run(["rp", "pubkey", str(sk), str(pk)], env)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f'FATAL: PUBLIC_KEYS_DIR "{pk}" already exists\n')
    for args, missing in ((["rp", "pubkey"], "PRIVATE"), (["rp", "pubkey", str(sk)], "PUBLIC")):
        proc = run(args, env)
        assert proc.returncode == 1
        assert proc.stderr.startswith(f"FATAL: Required positional argument: {missing}_KEYS_DIR")
    # a missing wgsk fails the redirection under set -e
    proc = run(["rp", "pubkey", str(tmp_path / "nothing"), str(tmp_path / "out")], env)
    assert proc.returncode == 1
    assert "wgsk" in proc.stderr


def test_rp_genkey_pubkey_files(env: dict[str, str], pkg: Path, tmp_path: Path) -> None:
    sk, pk = tmp_path / "sk", tmp_path / "pk"
    gen = run(["rp", "genkey", str(sk)], env)
    pub = run(["rp", "pubkey", str(sk), str(pk)], env)
    assert (gen.returncode, gen.stdout, pub.returncode, pub.stdout) == (0, "", 0, "")
    assert stat.S_IMODE(sk.stat().st_mode) == 0o700
    assert sorted(p.name for p in sk.iterdir()) == ["pqpk", "pqsk", "wgsk"]
    for f in sk.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert sorted(p.name for p in pk.iterdir()) == ["pqpk", "wgpk"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(pk.stat().st_mode) == 0o777 & ~umask  # the caller's umask
    pqsk, pqpk = (sk / "pqsk").read_bytes(), (sk / "pqpk").read_bytes()
    assert (len(pqsk), len(pqpk)) == (SK_LEN, PK_LEN)  # upstream's McEliece sizes (N2)
    assert pqpk == expand_pk(pqsk)
    assert (pk / "pqpk").read_bytes() == pqpk
    derived = subprocess.run(
        [str(runtime_of(pkg) / "bin" / "wg"), "pubkey"],
        input=(sk / "wgsk").read_text(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (pk / "wgpk").read_text() == derived
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=\n", derived)


# --- rosenpass: command line (R22-R24) -------------------------------------------------------


def test_rosenpass_version_and_help(env: dict[str, str]) -> None:
    for flag in ("--version", "-V"):
        proc = run(["rosenpass", flag], env)
        assert (proc.returncode, proc.stdout) == (0, "rosenpass 0.2.1\n")
    helped = run(["rosenpass", "help"], env)
    assert helped.returncode == 0 and "gen-keys" in helped.stdout
    bare = run(["rosenpass"], env)
    assert bare.returncode == 2 and "Usage: rosenpass" in bare.stderr
    unknown = run(["rosenpass", "frobnicate"], env)
    assert unknown.returncode == 2 and "unrecognized subcommand 'frobnicate'" in unknown.stderr


def test_rosenpass_gen_keys(env: dict[str, str], tmp_path: Path) -> None:
    sk, pk = tmp_path / "sk", tmp_path / "pk"
    assert run(["rosenpass", "gen-keys", "-s", str(sk), "-p", str(pk)], env).returncode == 0
    assert (len(sk.read_bytes()), len(pk.read_bytes())) == (SK_LEN, PK_LEN)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(sk.stat().st_mode) == stat.S_IMODE(pk.stat().st_mode) == 0o666 & ~umask
    first = sk.read_bytes()
    refused = run(["rosenpass", "gen-keys", "--secret-key", str(sk), f"--public-key={pk}"], env)
    assert refused.returncode == 1
    assert f'public-key file "{pk}" exist, refusing to overwrite it' in refused.stderr
    assert f'secret-key file "{sk}" exist, refusing to overwrite it' in refused.stderr
    assert sk.read_bytes() == first
    forced = run(["rosenpass", "gen-keys", "-f", "-s", str(sk), "-p", str(pk)], env)
    assert forced.returncode == 0 and sk.read_bytes() != first
    half = run(["rosenpass", "gen-keys", "-s", str(tmp_path / "x")], env)
    assert half.returncode == 1
    assert "either a config-file or both public-key and secret-key file are required" in half.stderr
    old = run(
        [
            "rosenpass",
            "keygen",
            "public-key",
            str(tmp_path / "kp"),
            "private-key",
            str(tmp_path / "ks"),
        ],
        env,
    )
    assert old.returncode == 0 and "deprecated" in old.stderr
    assert len((tmp_path / "kp").read_bytes()) == PK_LEN
    bad = run(["rosenpass", "keygen", "public-key", str(tmp_path / "kp"), "bogus", "x"], env)
    assert bad.returncode == 1 and "Unknown option `bogus`" in bad.stderr


def test_rosenpass_exchange_refusals(env: dict[str, str], tmp_path: Path) -> None:
    sk, pk = keys(env, tmp_path, "a")
    own = ["secret-key", str(sk / "pqsk"), "public-key", str(sk / "pqpk")]
    peer = ["peer", "public-key", str(pk / "pqpk")]
    (pk / "psk").write_text("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    short = tmp_path / "short"
    short.write_bytes(b"x" * 100)
    cases: list[tuple[list[str], str]] = [
        (["frob"], "unrecognised argument frob"),
        (["secret-key", str(sk / "pqsk"), *peer], "public-key file must be set"),
        ([*own, *peer, "frob"], "unrecongnised argument frob"),  # sic, upstream's spelling
        ([*own, "secret-key", "x"], "secret-key was already set"),
        ([*own, "peer", "public-key", str(tmp_path / "none")], "does not exist"),
        ([*own, "peer", "public-key", str(short)], "buffer"),
        # upstream's quirk: preshared-key records "endpoint set", so a peer cannot have both
        ([*own, *peer, "preshared-key", str(pk / "psk"), "endpoint", "127.0.0.1:1"],
         "endpoint was already set"),
        ([*own, *peer, "endpoint", "127.0.0.1:1", "preshared-key", str(pk / "psk")],
         "peer psk was already set"),
        ([*own, *peer, "endpoint", "nowhere"], "can not be parsed to a socket address"),
    ]  # fmt: skip
    for args, message in cases:
        proc = run(["rosenpass", "exchange", *args], env, timeout=10)
        assert proc.returncode == 1, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
    knob = run(
        ["rosenpass", "exchange", *own], env | {"ROSENPASS_STANDIN_REKEY_SECONDS": "soon"}
    )  # the stand-in's own test knob: a bad value is one clear error
    assert knob.returncode == 1
    assert "ROSENPASS_STANDIN_REKEY_SECONDS must be a positive number" in knob.stderr


# --- exchanges in namespaces (R9-R21) --------------------------------------------------------


class Netns:
    """A network and mount namespace of our own, with lo up and a private /run/wireguard."""

    def __init__(
        self, env: dict[str, str], pkg: Path, tmp: Path, wireguard_go: str | None = None
    ) -> None:
        self.env = env
        self.tmp = tmp
        self.wireguard_go = wireguard_go or str(runtime_of(pkg) / "bin" / "wireguard-go")
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c",
             "mount -t tmpfs rpbuild-test /run && mkdir /run/wireguard && ip link set lo up"
             " && echo ready && exec sleep 600"],
            stdout=subprocess.PIPE, text=True, env={"PATH": HOST_PATH},
        )  # fmt: skip
        assert self.holder.stdout is not None
        assert self.holder.stdout.readline() == "ready\n"
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: dict[int, Path] = {}

    def argv(self, args: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "--net", "--mount", "--", *args]

    def run(
        self, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run(self.argv(args), self.env | (env or {}), cwd=self.tmp)

    def start(
        self, args: list[str], extra_env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        log = open(self.tmp / f"log.{len(self.procs)}", "w")  # noqa: SIM115 - closed by the process
        proc = subprocess.Popen(
            self.argv(args), env=self.env | (extra_env or {}), cwd=self.tmp, stdout=log,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.procs.append(proc)
        self.logs[proc.pid] = Path(log.name)
        return proc

    def log_of(self, proc: subprocess.Popen[str]) -> Path:
        return self.logs[proc.pid]

    def device(self, dev: str) -> None:
        """A userspace WireGuard device, as the entrypoint makes it before rp exchange."""
        self.start([self.wireguard_go, "-f", dev], {"WG_PROCESS_FOREGROUND": "1"})
        until(lambda: self.run(["ip", "link", "show", dev]).returncode == 0, f"{dev} made")

    def wg(self, *args: str) -> str:
        proc = self.run(["wg", *args])
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def psk(self, dev: str) -> str:
        out = self.wg("show", dev, "preshared-keys").split()
        return out[1] if len(out) == 2 else ""

    def close(self) -> None:
        """Kills everything in the namespace: rp, rosenpass (maybe orphaned), wireguard-go."""
        for pid in self.members():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.holder.kill()
        self.holder.wait()
        for proc in self.procs:
            proc.wait(timeout=10)

    def matching(self, *parts: str) -> list[int]:
        """Processes in this namespace whose command line holds all parts."""
        found = []
        for pid in self.members():
            try:
                line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if all(part in line for part in parts):
                found.append(pid)
        return found

    def commands(self) -> list[str]:
        names = []
        for pid in self.members():
            try:
                names.append(Path(f"/proc/{pid}/comm").read_text().strip())
            except OSError:
                continue
        return names

    def members(self) -> list[int]:
        """Processes in this namespace (other than the holder)."""
        mine = os.readlink(f"/proc/{self.holder.pid}/ns/net")
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != self.holder.pid:
                try:
                    if os.readlink(entry / "ns" / "net") == mine:
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found


def parent_of(pid: int) -> int:
    stat_line = Path(f"/proc/{pid}/stat").read_text()
    return int(stat_line.rsplit(")", 1)[1].split()[1])


def until(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        time.sleep(0.1)


@pytest.fixture
def netns(env: dict[str, str], pkg: Path, tmp_path: Path) -> Iterator[Netns]:
    ns = Netns(env, pkg, tmp_path)
    try:
        yield ns
    finally:
        ns.close()


def shim(where: Path, name: str, real: str | None) -> None:
    """A PATH shim that logs its argv to where/calls (then runs the real tool, if any)."""
    where.mkdir(exist_ok=True)
    body = f'#!/bin/sh\necho "{name} $*" >> {where}/calls\n'
    body += f'exec {real} "$@"\n' if real else "exit 0\n"
    (where / name).write_text(body)
    (where / name).chmod(0o755)


def calls(where: Path) -> list[str]:
    path = where / "calls"
    return path.read_text().splitlines() if path.exists() else []


@needs_root
def test_rp_exchange_grammar_refusals(netns: Netns, tmp_path: Path) -> None:
    sk, pk = keys(netns.env, tmp_path, "a")
    shims = tmp_path / "shims"
    shim(shims, "ip", shutil.which("ip", path=HOST_PATH))
    shim(shims, "rosenpass", None)
    env = {"PATH": f"{shims}:{netns.env['PATH']}"}
    nopeer = netns.run(["rp", "exchange", str(sk), "dev", "rpt0", "listen", "127.0.0.1:9"], env=env)
    assert nopeer.returncode == 1
    assert nopeer.stderr.startswith("FATAL: Needs at least one peer specified\n")
    assert calls(shims) == []  # refused before any device was touched
    unknown = netns.run(["rp", "exchange", str(sk), "frob", "x", "peer", str(pk)], env=env)
    assert unknown.returncode == 1 and unknown.stderr.startswith("FATAL: Unknown option frob\n")
    assert calls(shims) == []


@needs_root
def test_rp_exchange_fails_without_wireguard_module(netns: Netns, tmp_path: Path) -> None:
    probe = netns.run(["ip", "link", "add", "dev", "rpprobe", "type", "wireguard"])
    if probe.returncode == 0:
        pytest.skip("this kernel has the WireGuard module: the failure path cannot be shown here")
    sk, pk = keys(netns.env, tmp_path, "a")
    shims = tmp_path / "shims"
    shim(shims, "ip", shutil.which("ip", path=HOST_PATH))
    shim(shims, "rosenpass", None)
    proc = netns.run(
        ["rp", "exchange", str(sk), "dev", "rpt0", "listen", "127.0.0.1:9999", "peer", str(pk)],
        env={"PATH": f"{shims}:{netns.env['PATH']}"},
    )
    assert proc.returncode == 1, proc.stderr
    assert calls(shims) == [
        "ip link add dev rpt0 type wireguard",
        "ip link set dev rpt0 up",
        "ip link del dev rpt0",  # the EXIT trap
    ]
    assert "wireguard-go" not in netns.commands()  # rp never starts it


def two_peers(netns: Netns, tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """Keys for a and b, and their userspace devices rpa and rpb."""
    a_sk, a_pk = keys(netns.env, tmp_path, "a")
    b_sk, b_pk = keys(netns.env, tmp_path, "b")
    netns.device("rpa")
    netns.device("rpb")
    return a_sk, a_pk, b_sk, b_pk


def start_pair(
    netns: Netns,
    tmp_path: Path,
    rekey: str | None = None,
    client_first: float = 0,
    verbose: bool = False,
) -> tuple[subprocess.Popen[str], subprocess.Popen[str]]:
    """Server rpa (listen 127.0.0.1:9999) and client rpb (endpoint 127.0.0.1:9999)."""
    a_sk, a_pk, b_sk, b_pk = two_peers(netns, tmp_path)
    extra = {"ROSENPASS_STANDIN_REKEY_SECONDS": rekey} if rekey else {}
    server = ["rp", "exchange", str(a_sk), "dev", "rpa", "listen", "127.0.0.1:9999",
              "peer", str(b_pk), "allowed-ips", "10.9.0.2/32"]  # fmt: skip
    client = ["rp", *(["verbose"] if verbose else []), "exchange", str(b_sk), "dev", "rpb", "listen", "127.0.0.1:9997",
              "peer", str(a_pk), "endpoint", "127.0.0.1:9999", "allowed-ips", "10.9.0.1/32"]  # fmt: skip
    if client_first:
        b = netns.start(client, extra)
        time.sleep(client_first)  # a head start for the client: the server starts later
        a = netns.start(server, extra)
    else:
        a = netns.start(server, extra)
        until(lambda: netns.wg("show", "rpa", "listen-port").strip() == "10000", "rpa on 10000")
        b = netns.start(client, extra)
    return a, b


def same_psk(netns: Netns) -> str:
    until(lambda: netns.psk("rpa") not in ("", "(none)") and netns.psk("rpa") == netns.psk("rpb"),
          "the same PSK on both sides")  # fmt: skip
    return netns.psk("rpa")


def udp_ports(netns: Netns) -> set[int]:
    text = netns.run(["cat", "/proc/net/udp", "/proc/net/udp6"]).stdout
    return {
        int(line.split()[1].split(":")[1], 16)
        for line in text.splitlines()[1:]
        if ":" in line.split()[1]
    }


@needs_root
def test_exchange_yields_same_psk(netns: Netns, tmp_path: Path) -> None:
    a_sk, a_pk, b_sk, b_pk = two_peers(netns, tmp_path)
    shims = tmp_path / "shims"
    shim(shims, "ip", shutil.which("ip", path=HOST_PATH))
    server = netns.start(
        ["rp", "exchange", str(a_sk), "dev", "rpa", "listen", "127.0.0.1:9999",
         "peer", str(b_pk), "allowed-ips", "10.9.0.2/32"],
        {"PATH": f"{shims}:{netns.env['PATH']}"},
    )  # fmt: skip
    until(lambda: netns.wg("show", "rpa", "listen-port").strip() == "10000", "WireGuard on PORT+1")
    until(lambda: 9999 in udp_ports(netns), "rosenpass on PORT")
    assert calls(shims)[:2] == ["ip link add dev rpa type wireguard", "ip link set dev rpa up"]
    # no exchange yet: no peer on the server's device
    time.sleep(1)
    assert netns.wg("show", "rpa", "peers").strip() == ""
    # rosenpass runs as a child of rp's bash
    [rosenpass] = netns.matching("rosenpass exchange ", " wireguard rpa ")
    assert parent_of(rosenpass) == server.pid, "rosenpass is not a child of rp's bash"
    client = netns.start(
        ["rp", "exchange", str(b_sk), "dev", "rpb", "listen", "127.0.0.1:9997", "peer", str(a_pk),
         "endpoint", "127.0.0.1:9999", "persistent-keepalive", "25", "allowed-ips", "10.9.0.1/32"]
    )  # fmt: skip
    key = same_psk(netns)
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", key)
    wgpk_a, wgpk_b = (a_pk / "wgpk").read_text().strip(), (b_pk / "wgpk").read_text().strip()
    assert netns.wg("show", "rpa", "peers").split() == [wgpk_b]
    assert netns.wg("show", "rpb", "endpoints").split() == [wgpk_a, "127.0.0.1:10000"]
    assert netns.wg("show", "rpb", "allowed-ips").split() == [wgpk_a, "10.9.0.1/32"]
    assert netns.wg("show", "rpb", "persistent-keepalive").split() == [wgpk_a, "25"]
    assert netns.wg("show", "rpa", "allowed-ips").split() == [wgpk_b, "10.9.0.2/32"]
    assert netns.wg("show", "rpb", "listen-port").strip() == "9998"
    assert server.poll() is None and client.poll() is None


@needs_root
def test_listen_port_only_is_dual_stack(netns: Netns, tmp_path: Path) -> None:
    """`listen PORT` is `[::]:PORT` (rp), an IPv6 socket that IPv4 peers reach (rosenpass)."""
    a_sk, a_pk, b_sk, b_pk = two_peers(netns, tmp_path)
    netns.start(["rp", "exchange", str(a_sk), "dev", "rpa", "listen", "9999", "peer", str(b_pk)])
    until(lambda: netns.matching("listen [::]:9999 peer") != [], "rosenpass listening on [::]:9999")
    netns.start(
        ["rp", "exchange", str(b_sk), "dev", "rpb", "peer", str(a_pk),
         "endpoint", "127.0.0.1:9999"]
    )  # fmt: skip
    same_psk(netns)


@needs_root
def test_both_sides_initiating_agree(netns: Netns, tmp_path: Path) -> None:
    """Both peers with an endpoint (both initiate at once) still end with one key, renewed."""
    a_sk, a_pk, b_sk, b_pk = two_peers(netns, tmp_path)
    rekey = {"ROSENPASS_STANDIN_REKEY_SECONDS": "3"}
    for sk, dev, port, pk, far in (
        (a_sk, "rpa", 9999, b_pk, 9997),
        (b_sk, "rpb", 9997, a_pk, 9999),
    ):
        netns.start(
            ["rp", "exchange", str(sk), "dev", dev, "listen", f"127.0.0.1:{port}",
             "peer", str(pk), "endpoint", f"127.0.0.1:{far}"],
            rekey,
        )  # fmt: skip
    first = same_psk(netns)
    until(lambda: netns.psk("rpa") != first and netns.psk("rpa") == netns.psk("rpb"),
          "a new, equal PSK on both sides", timeout=15)  # fmt: skip


@needs_root
def test_ipv6_endpoint_and_last_allowed_ips(netns: Netns, tmp_path: Path) -> None:
    """[ADDR]:PORT splits at the last colon; of two allowed-ips for one peer the last counts."""
    a_sk, a_pk, b_sk, b_pk = two_peers(netns, tmp_path)
    netns.start(
        ["rp", "exchange", str(a_sk), "dev", "rpa", "listen", "[::1]:9999", "peer", str(b_pk)]
    )
    until(
        lambda: netns.matching("listen [::1]:9999 peer") != [], "rosenpass listening on [::1]:9999"
    )
    netns.start(
        ["rp", "exchange", str(b_sk), "dev", "rpb", "peer", str(a_pk), "endpoint", "[::1]:9999",
         "allowed-ips", "10.9.9.9/32", "allowed-ips", "fd00:9::1/128"]
    )  # fmt: skip
    same_psk(netns)
    wgpk_a = (a_pk / "wgpk").read_text().strip()
    assert netns.wg("show", "rpb", "endpoints").split() == [wgpk_a, "[::1]:10000"]
    assert netns.wg("show", "rpb", "allowed-ips").split() == [wgpk_a, "fd00:9::1/128"]


@needs_root
@pytest.mark.parametrize(("rekey", "head_start"), [("24", 2.0), ("2", 4.0)])
def test_late_responder_still_exchanges(
    netns: Netns, tmp_path: Path, rekey: str, head_start: float
) -> None:
    """Retransmissions reach a server that starts later; with a head start beyond the
    handshake's life (180/120 * rekey) the client has started a new handshake by then."""
    start_pair(netns, tmp_path, rekey=rekey, client_first=head_start)
    same_psk(netns)


@needs_root
def test_psk_renewal(netns: Netns, tmp_path: Path) -> None:
    start_pair(netns, tmp_path, rekey="3")
    first = same_psk(netns)
    until(lambda: netns.psk("rpa") != first and netns.psk("rpa") == netns.psk("rpb"),
          "a new, equal PSK on both sides", timeout=15)  # fmt: skip


@needs_root
def test_stale_key_becomes_random(netns: Netns, tmp_path: Path) -> None:
    _, client = start_pair(netns, tmp_path, rekey="2", verbose=True)
    same_psk(netns)
    # freeze the server: rp keeps waiting for it, rpa keeps its last key, nothing answers
    [server_rosenpass] = netns.matching("rosenpass exchange ", " wireguard rpa ")
    os.kill(server_rosenpass, signal.SIGSTOP)
    held = netns.psk("rpa")
    # the client's key is not renewed and goes stale after 3 s (180/120 * 2): a random key
    log = netns.log_of(client)
    until(lambda: "Erasing outdated key from peer" in log.read_text(), "a stale key", timeout=15)
    time.sleep(0.5)
    assert netns.psk("rpb") not in (held, "", "(none)")


@needs_root
def test_sigterm_runs_trap_and_gives_143(netns: Netns, tmp_path: Path) -> None:
    a_sk, _ = keys(netns.env, tmp_path, "a")
    _, b_pk = keys(netns.env, tmp_path, "b")
    netns.device("rpa")
    script = (
        f"rp exchange {a_sk} dev rpa listen 127.0.0.1:9999 peer {b_pk} >rp.log 2>&1 & p=$!\n"
        'until c=$(cat /proc/$p/task/$p/children) && c=${c%% *} && [ "$(cat /proc/$c/comm)" = rosenpass ];'
        " do sleep 0.1; done\n"
        "kill -TERM $p; wait $p; echo status=$?\n"
        "ip link show dev rpa >/dev/null 2>&1 && echo device=kept || echo device=gone\n"
        "kill -0 $c && echo orphan=$c\n"
    )
    proc = netns.run(["bash", "-c", script])
    assert "status=143" in proc.stdout, proc.stdout + proc.stderr
    assert "device=gone" in proc.stdout
    orphan = re.search(r"orphan=(\d+)", proc.stdout)
    assert orphan, "the rosenpass child did not survive rp (upstream orphans it)"
    # rosenpass has no signal handler (upstream neither): SIGTERM ends it
    os.kill(int(orphan[1]), signal.SIGTERM)
    until(lambda: int(orphan[1]) not in netns.members(), "rosenpass ended by SIGTERM", timeout=5)


@needs_root
def test_rp_exits_when_rosenpass_fails(netns: Netns, tmp_path: Path) -> None:
    a_sk, _ = keys(netns.env, tmp_path, "a")
    _, b_pk = keys(netns.env, tmp_path, "b")
    (b_pk / "pqpk").write_bytes(b"too short")
    netns.device("rpa")
    proc = netns.run(["rp", "exchange", str(a_sk), "dev", "rpa", "peer", str(b_pk)])
    assert proc.returncode == 1
    assert "ERROR" in proc.stderr
    assert netns.run(["ip", "link", "show", "dev", "rpa"]).returncode != 0  # the trap ran


@needs_root
def test_exchange_with_static_psk(netns: Netns, tmp_path: Path) -> None:
    """rp passes PKDIR/psk as `preshared-key`; with an endpoint upstream's parser refuses it."""
    a_sk, a_pk = keys(netns.env, tmp_path, "a")
    (a_pk / "psk").write_text(hashlib.sha256(b"x").hexdigest()[:43] + "=")
    netns.device("rpa")
    shims = tmp_path / "shims"
    shim(shims, "rosenpass", None)
    netns.run(["rp", "exchange", str(a_sk), "dev", "rpa", "peer", str(a_pk), "endpoint", "127.0.0.1:1"],
              env={"PATH": f"{shims}:{netns.env['PATH']}"})  # fmt: skip
    [call] = calls(shims)
    assert (
        f"peer public-key {a_pk}/pqpk preshared-key {a_pk}/psk endpoint 127.0.0.1:1 wireguard rpa"
        in call
    )
    netns.device("rpa")
    proc = netns.run(
        ["rp", "exchange", str(a_sk), "dev", "rpa", "peer", str(a_pk), "endpoint", "127.0.0.1:1"]
    )
    assert proc.returncode == 1 and "endpoint was already set" in proc.stderr


# --- aarch64-linux: arm64 binaries all the way down ------------------------------------------

EM_AARCH64 = 183
EM_X86_64 = 62


def store_query(*args: str) -> list[str]:
    return subprocess.run(
        ["nix-store", "--query", *args], capture_output=True, text=True, check=True
    ).stdout.split()


def elf_machine(path: Path) -> int | None:
    with path.open("rb") as f:
        head = f.read(20)
    return int.from_bytes(head[18:20], "little") if head[:4] == b"\x7fELF" else None


def test_aarch64_package_is_arm64(tmp_path: Path) -> None:
    package = build("aarch64-linux")
    closure = store_query("--requisites", str(package))
    assert runtime_of(package) in {Path(p) for p in closure}
    machines = {
        str(f): elf_machine(f)
        for root in closure
        for f in Path(root).rglob("*")
        if f.is_file() and not f.is_symlink()
    }
    elves = {name: m for name, m in machines.items() if m is not None}
    assert {Path(n).name for n in elves} >= {"rosenpass", "bash", "wg", "wireguard-go", "busybox"}
    assert set(elves.values()) == {EM_AARCH64}, elves
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        pytest.skip("qemu-aarch64 is not registered with binfmt_misc: cannot run arm64 here")
    env = {"PATH": f"{package / 'bin'}:{HOST_PATH}", "LC_ALL": "C"}
    version = run(["rosenpass", "--version"], env)
    assert (version.returncode, version.stdout) == (0, "rosenpass 0.2.1\n")
    fatal = run(["rp", "--version"], env)
    assert fatal.returncode == 1 and "FATAL: Unknown command --version" in fatal.stderr
    sk, pk = keys(env, tmp_path, "arm")
    assert len((sk / "pqsk").read_bytes()) == SK_LEN
    assert (pk / "pqpk").read_bytes() == expand_pk((sk / "pqsk").read_bytes())
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=\n", (pk / "wgpk").read_text())


@needs_root
def test_aarch64_exchange_yields_same_psk(tmp_path: Path) -> None:
    """The arm64 rp, rosenpass and wireguard-go (under qemu-user) make the same exchange."""
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        pytest.skip("qemu-aarch64 is not registered with binfmt_misc: cannot run arm64 here")
    package = build("aarch64-linux")
    env = {"PATH": f"{package / 'bin'}:{HOST_PATH}", "HOME": "/nonexistent", "LC_ALL": "C"}
    ns = Netns(env, package, tmp_path)
    try:
        start_pair(ns, tmp_path, rekey="12")
        same_psk(ns)
        [rosenpass] = ns.matching("rosenpass exchange ", " wireguard rpa ")
        assert "qemu-aarch64" in os.readlink(f"/proc/{rosenpass}/exe")
    finally:
        ns.close()


def assert_rebuilds_bit_for_bit(derivations: list[str]) -> None:
    """Each derivation built again gives the same bytes (`nix-store --realise --check`)."""
    for derivation in derivations:
        check = subprocess.run(
            ["nix-store", "--option", "sandbox", "false", "--realise", "--check", derivation],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("system", ["x86_64-linux", "aarch64-linux"])
def test_builds_are_bit_reproducible(system: str) -> None:
    """Rebuilding the package and its runtime gives the same bytes (nix-store --check)."""
    package = build(system)
    [drv] = store_query("--deriver", str(package))
    inputs = store_query("--references", drv)
    [runtime] = [d for d in inputs if d.endswith("-rosenpass-standin-runtime-0.2.1-standin.drv")]
    assert_rebuilds_bit_for_bit([runtime, drv])


# --- the same programs from the stand-in nixpkgs (rosenpass_source = "nixpkgs") -------------

NIXPKGS = f"path:{conftest.STANDIN / 'nixpkgs'}"
SYSTEMS = ["x86_64-linux", "aarch64-linux"]


def nixpkgs_build(system: str, *attrs: str) -> list[Path]:
    """One build per attribute: nix build --json does not keep the order of its arguments."""
    return [Path(standins.build(NIXPKGS, f"legacyPackages.{system}.{a}")[0]) for a in attrs]


def needs_arm64_runner(system: str) -> None:
    if system == "aarch64-linux" and not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        pytest.skip("qemu-aarch64 is not registered with binfmt_misc: cannot run arm64 here")


@pytest.mark.parametrize("system", SYSTEMS)
def test_nixpkgs_split_shares_the_sets_libc(system: str, tmp_path: Path) -> None:
    """nixpkgs' split: rosenpass holds bin/rosenpass, rosenpass-tools bin/rp, whose wrapper
    (rp-path) brings rosenpass and wg; rp's bash uses the set's one host-libc."""
    tools, rosenpass, host_libc = nixpkgs_build(system, "rosenpass-tools", "rosenpass", "host-libc")
    assert sorted(p.name for p in (tools / "bin").iterdir()) == ["rp"]
    assert sorted(p.name for p in (rosenpass / "bin").iterdir()) == ["rosenpass"]
    assert (rosenpass / "share" / "rosenpass" / "payload").stat().st_size == 262144
    runtime = runtime_of(tools)
    assert (runtime / "rp-path" / "rosenpass").resolve() == rosenpass / "bin" / "rosenpass"
    closure = {Path(p) for p in store_query("--requisites", str(tools))}
    assert {runtime, rosenpass, host_libc} <= closure
    assert [p for p in closure if (p / "lib" / "libc.so.6").exists()] == [host_libc]
    elves = {
        f: elf_machine(f)
        for root in closure
        for f in root.rglob("*")
        if f.is_file() and not f.is_symlink() and elf_machine(f) is not None
    }
    assert {f.name for f in elves} >= {"rosenpass", "bash", "wg", "busybox", "libc.so.6"}
    assert set(elves.values()) == {EM_AARCH64 if system == "aarch64-linux" else EM_X86_64}
    needs_arm64_runner(system)
    # only rosenpass-tools on PATH: rosenpass comes from rp's wrapper, as in nixpkgs
    env = {"PATH": f"{tools / 'bin'}:{HOST_PATH}", "HOME": "/nonexistent", "LC_ALL": "C"}
    fatal = run(["rp", "--version"], env)
    assert fatal.returncode == 1 and "FATAL: Unknown command --version" in fatal.stderr
    sk, pk = keys(env, tmp_path, "n")
    assert (pk / "pqpk").read_bytes() == expand_pk((sk / "pqsk").read_bytes())
    version = run([str(rosenpass / "bin" / "rosenpass"), "--version"], env)
    assert (version.returncode, version.stdout) == (0, "rosenpass 0.2.1\n")


@needs_root
@pytest.mark.parametrize("system", SYSTEMS)
def test_nixpkgs_exchange_yields_same_psk(system: str, tmp_path: Path) -> None:
    """nixpkgs' rp (rosenpass from its wrapper) and the set's wireguard-go make the exchange."""
    needs_arm64_runner(system)
    tools, wireguard_go = nixpkgs_build(system, "rosenpass-tools", "wireguard-go")
    env = {"PATH": f"{tools / 'bin'}:{HOST_PATH}", "HOME": "/nonexistent", "LC_ALL": "C"}
    ns = Netns(env, tools, tmp_path, wireguard_go=str(wireguard_go / "bin" / "wireguard-go"))
    try:
        start_pair(ns, tmp_path, rekey="12")
        same_psk(ns)
    finally:
        ns.close()


@pytest.mark.parametrize("system", SYSTEMS)
def test_nixpkgs_builds_are_bit_reproducible(system: str) -> None:
    """Rebuilding nixpkgs' rosenpass, rp's runtime and rosenpass-tools gives the same bytes."""
    tools, rosenpass = nixpkgs_build(system, "rosenpass-tools", "rosenpass")
    outputs = (str(rosenpass), str(runtime_of(tools)), str(tools))
    derivations = [d for out in outputs for d in store_query("--deriver", out)]
    assert len(derivations) == 3
    assert_rebuilds_bit_for_bit(derivations)
