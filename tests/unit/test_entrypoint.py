"""The entrypoint's configuration checks, run by the host's shells (no Docker).

Real images run the entrypoint with bash, the stand-ins with dash (the strictest
POSIX sh at hand); busybox sh is checked too. Only bad configurations are run here: the script
stops before it touches anything. Running peers are tested in
tests/integration/test_topology.py.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO

SCRIPT = REPO / "templates" / "entrypoint.sh"
SHELLS = [
    pytest.param(argv, id="-".join(argv))
    for argv in (["dash"], ["bash"], ["bash", "--posix"], ["busybox", "sh"])
    if shutil.which(argv[0])
]


def run(shell: list[str], env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*shell, str(SCRIPT), *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


SERVER = {"MODE": "server", "SERVER_VPN_IP": "10.0.0.1/24", "CLIENT_VPN_IP": "10.0.0.2"}
CLIENT = {
    "MODE": "client",
    "CLIENT_VPN_IP": "10.0.0.2/24",
    "SERVER_VPN_IP": "10.0.0.1",
    "SERVER_PUBLIC_IP": "172.31.240.10",
}

BAD = [
    ({}, "MODE is not set"),
    ({"MODE": "Server"}, "MODE: unknown mode 'Server'"),
    ({"MODE": "server"}, "SERVER_VPN_IP is not set"),
    ({**SERVER, "CLIENT_VPN_IP": ""}, "CLIENT_VPN_IP or ALLOWED_IPS must be set"),
    ({**SERVER, "SERVER_VPN_IP": "10.0.0.300"}, "SERVER_VPN_IP: '10.0.0.300' is not an IPv4"),
    ({**SERVER, "SERVER_VPN_IP": "10.0.0.1/33"}, "bad prefix length"),
    ({**SERVER, "SERVER_VPN_IP": "10.0.0.1/"}, "missing prefix length"),
    ({**SERVER, "SERVER_VPN_IP": "fe90::3/64", "CLIENT_VPN_IP": "fe90::4"}, "link-local"),
    ({**SERVER, "SERVER_VPN_IP": "fd00::1::2"}, "is not an IPv4 or IPv6"),
    ({**SERVER, "SERVER_VPN_IP": "10.0.0.1,10.0.0.3"}, "more than one IPv4"),
    ({**SERVER, "SERVER_VPN_IP": "10.0.0.1,"}, "empty entry"),
    ({**SERVER, "SERVER_VPN_IP": "10.0.0.1,fd00::1"}, "both have an IPv6 address or neither"),
    ({**SERVER, "SERVER_PORT": "65535"}, "SERVER_PORT: '65535' is not a port"),
    ({**SERVER, "SERVER_PORT": "99x"}, "SERVER_PORT: '99x' is not a port"),
    ({**SERVER, "PEER_TIMEOUT": "soon"}, "PEER_TIMEOUT: 'soon'"),
    (
        {**SERVER, "WIREGUARD": "kmod"},
        "WIREGUARD: unknown value 'kmod' (auto, kernel or userspace)",
    ),
    ({**SERVER, "ALLOWED_IPS": "10.0.0.0/8,nonsense"}, "ALLOWED_IPS: 'nonsense'"),
    ({**SERVER, "SERVER_PUBLIC_IP": "10.0.0.1,fd00::1"}, "not one IPv4 or IPv6 address"),
    ({**SERVER, "SERVER_PUBKEY_DIR": "keys"}, "must be an absolute path"),
    ({**SERVER, "CLIENT_PUBKEY_DIR": "/keys/public/server/c"}, "must be separate directories"),
    ({**SERVER, "PRIVATE_KEY_DIR": "/keys/public"}, "must not overlap a public key directory"),
    ({**CLIENT, "SERVER_PUBLIC_IP": ""}, "SERVER_PUBLIC_IP is not set"),
    ({**CLIENT, "SERVER_PUBLIC_IP": "fd00::g"}, "SERVER_PUBLIC_IP: 'fd00::g'"),
    ({"MODE": "standalone", "PUBLIC_KEY_DIR": "/keys/private/pub"}, "must not overlap"),
]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("env,message", BAD, ids=[m for _, m in BAD])
def test_bad_configuration_is_one_line_and_exit_2(
    shell: list[str], env: dict[str, str], message: str
) -> None:
    proc = run(shell, env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("rpbuild-entrypoint: error: ")
    assert message in lines[0]


@pytest.mark.parametrize("shell", SHELLS)
def test_arguments_in_peer_mode_are_refused(shell: list[str]) -> None:
    proc = run(shell, SERVER, "extra")
    assert proc.returncode == 2
    assert "takes no arguments" in proc.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_without_a_mode_arguments_run_as_a_command(shell: list[str]) -> None:
    proc = run(shell, {}, "echo", "toolbox")
    assert (proc.returncode, proc.stdout) == (0, "toolbox\n")


def in_a_network_namespace(
    shell: list[str], env: dict[str, str], path: Path
) -> subprocess.CompletedProcess[str]:
    """The entrypoint in a new, empty network namespace of its own (root only)."""
    unshare, program = shutil.which("unshare"), shutil.which(shell[0])
    assert unshare is not None and program is not None
    return subprocess.run(
        [unshare, "--net", program, *shell[1:], str(SCRIPT)],
        env={"PATH": str(path), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def kernel_has_wireguard() -> bool:
    probe = subprocess.run(
        ["unshare", "--net", "ip", "link", "add", "dev", "wgprobe", "type", "wireguard"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"),
    reason="needs root, unshare and ip for a network namespace",
)
@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    "wireguard,message",
    [
        ("kernel", "no WireGuard kernel module on this host (WIREGUARD=kernel); load it"),
        ("auto", "no WireGuard kernel module on this host, and the image has no wireguard-go"),
    ],
)
def test_no_wireguard_stops_before_any_key_is_made(
    shell: list[str], wireguard: str, message: str, tmp_path: Path
) -> None:
    """Upstream rp cannot make its device without the kernel module: the entrypoint
    says so at once (here: a kernel without the module, a PATH without wireguard-go)."""
    if kernel_has_wireguard():
        pytest.skip("this kernel has the WireGuard module")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ip", "grep", "tr", "cat"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "rp").write_text("#!/bin/sh\necho rp must not run >&2\nexit 99\n")
    (bin_dir / "rp").chmod(0o755)
    keys = tmp_path / "keys"
    env = {**SERVER, "WIREGUARD": wireguard, "PRIVATE_KEY_DIR": str(keys / "private")}
    env |= {"SERVER_PUBKEY_DIR": str(keys / "s"), "CLIENT_PUBKEY_DIR": str(keys / "c")}
    proc = in_a_network_namespace(shell, env, bin_dir)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rpbuild-entrypoint: error: "), proc.stderr
    assert message in lines[0]
    assert not keys.exists()


def accepted(shell: list[str], address: str) -> bool:
    """Whether the entrypoint takes address as CLIENT_VPN_IP: then it goes on to
    complain about the next setting, SERVER_PUBLIC_IP."""
    fam6 = ":" in address
    env = {
        **CLIENT,
        "CLIENT_VPN_IP": address,
        "SERVER_VPN_IP": "fd00::1" if fam6 else "10.0.0.1",
        "SERVER_PUBLIC_IP": "",
    }
    proc = run(shell, env)
    assert proc.returncode == 2
    return "SERVER_PUBLIC_IP is not set" in proc.stderr


def python_accepts(text: str) -> bool:
    if "%" in text or ("." in text and ":" in text):
        return False  # zone indexes and embedded IPv4: not taken on purpose
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return False
    return not (addr.version == 6 and addr.is_link_local)


ipv6 = st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1))
ipv4 = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1))


@pytest.mark.parametrize("shell", SHELLS)
@settings(max_examples=60, deadline=None)
@given(
    text=st.one_of(
        ipv4.map(str),
        ipv6.map(lambda a: a.compressed),
        ipv6.map(lambda a: a.exploded),
        st.text(alphabet="0123456789abcdefABCDEF:.", min_size=1, max_size=24),
    )
)
def test_address_checks_agree_with_python(shell: list[str], text: str) -> None:
    assert accepted(shell, text) == python_accepts(text), text


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed")
def test_the_entrypoint_is_clean_posix_sh() -> None:
    proc = subprocess.run(
        ["shellcheck", "--shell", "sh", str(SCRIPT)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout
