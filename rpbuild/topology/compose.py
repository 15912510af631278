"""The two-peer test topology (a server and a client) as a Compose document.

The document is built as a dict and written as JSON, which is YAML too: no YAML
library, and one file that docker-compose 1.29 (Debian 12) and Compose v2 both
read. Everything security-relevant is decided here, in one place: no privileged
container, only NET_ADMIN added, a private key volume per peer, and public key
volumes that only their owner can write.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpbuild.errors import RpbuildError
from rpbuild.fsutil import NESTED_TOO_DEEPLY, atomic_write, load_json

IP_MODES = ("4", "6", "dual")
ROLES = ("server", "client")

# The bridge between the containers (the "public" network the peers talk over).
DEFAULT_SUBNET4 = "172.31.240.0/24"
DEFAULT_SUBNET6 = "fd00:7270::/64"
# Addresses inside the tunnel; they exist only in the containers' namespaces.
DEFAULT_TUNNEL4 = "10.213.0.0/24"
DEFAULT_TUNNEL6 = "fd00:7270:1::/64"
ULA = ipaddress.IPv6Network("fd00::/8")

SERVER_PORT = 9999
DEVICE = "rosenpass0"
ENTRYPOINT = "/bin/rpbuild-entrypoint"
PRIVATE_DIR = "/keys/private"
PUBLIC_DIRS = {"server": "/keys/public/server", "client": "/keys/public/client"}
# Where each side's keys are on the bridge and in the tunnel (host numbers).
BRIDGE_HOST = {"server": 10, "client": 11}
TUNNEL_HOST = {"server": 1, "client": 2}

# Docker's default capabilities that a peer does not need. NET_RAW (raw sockets: forged
# packets, ARP spoofing on the bridge) goes too: iputils ping uses an ICMP datagram
# socket, which Docker allows every container through net.ipv4.ping_group_range.
DROPPED_CAPS = (
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
)
ADDED_CAPS = ("NET_ADMIN",)
# Packages the healthcheck and the tunnel checks run in the container.
REQUIRED_PACKAGES = {"wireguard-tools": "wg", "iputils": "ping"}
# ... and what the entrypoint starts as the WireGuard device with --userspace-wireguard.
USERSPACE_PACKAGES = {"wireguard-go": "wireguard-go"}
# The stand-in rosenpass's test knob (tests/standin/rosenpass/CONTRACT.md): its rekey
# interval in seconds. Upstream rosenpass ignores it and keeps its own (120 s / 130 s).
STANDIN_REKEY_ENV = "ROSENPASS_STANDIN_REKEY_SECONDS"


@dataclass(frozen=True)
class TopologySpec:
    """What the compose file is made from; defaults give the documented topology."""

    image: str
    ip: str = "dual"
    userspace_wireguard: bool = False
    subnet4: str = DEFAULT_SUBNET4
    subnet6: str | None = None  # None: DEFAULT_SUBNET6 for --ip 6 and dual; --ip 4 has none
    tunnel4: str = DEFAULT_TUNNEL4
    tunnel6: str = DEFAULT_TUNNEL6
    server_port: int = SERVER_PORT
    peer_timeout: int = 120
    standin_rekey_seconds: float | None = None  # the stand-in's rekey interval (tests)


@dataclass(frozen=True)
class Plan:
    """The addresses of a topology: what the checks ping and the file configures."""

    ip: str
    bridge: dict[str, dict[str, str]]  # role -> {"4": addr, "6": addr}
    tunnel: dict[str, dict[str, str]]  # role -> {"4": "addr/len", "6": "addr/len"}
    server_public_ip: str
    standin_rekey_seconds: float | None = None

    @property
    def families(self) -> tuple[str, ...]:
        return {"4": ("4",), "6": ("6",), "dual": ("4", "6")}[self.ip]

    def tunnel_addresses(self, role: str) -> dict[str, str]:
        """The role's tunnel addresses without prefix length, by family."""
        return {fam: cidr.split("/")[0] for fam, cidr in self.tunnel[role].items()}


def _network4(value: str, what: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise RpbuildError(f"{what}: '{value}' is not an IPv4 network ({exc})") from None
    if not net.is_private:
        raise RpbuildError(f"{what}: {net} is not a private network")
    if net.prefixlen > 28:
        raise RpbuildError(f"{what}: {net} is too small (at most /28)")
    return net


def _network6(value: str, what: str) -> ipaddress.IPv6Network:
    try:
        net = ipaddress.IPv6Network(value, strict=True)
    except ValueError as exc:
        raise RpbuildError(f"{what}: '{value}' is not an IPv6 network ({exc})") from None
    if not net.subnet_of(ULA):
        raise RpbuildError(f"{what}: {net} is not a unique local (fd00::/8) network")
    if net.prefixlen > 120:
        raise RpbuildError(f"{what}: {net} is too small (at most /120)")
    return net


def check_ip(ip: str) -> str:
    if ip not in IP_MODES:
        raise RpbuildError(f"--ip: '{ip}' is not one of {', '.join(IP_MODES)}")
    return ip


def check_families(ip: str, *, subnet6: str | None) -> None:
    """Refuse a bridge subnet that the --ip mode does not use: it would be dropped silently.

    Only --subnet6 can be unused: with --ip 4 the bridge is IPv4 only. --subnet4 counts in
    every mode, since the bridge always has an IPv4 subnet (with --ip 6 the peers and the
    tunnel use IPv6 only, but the containers keep their IPv4 bridge addresses).
    """
    if ip == "4" and subnet6 is not None:
        raise RpbuildError(
            f"--subnet6: {subnet6} is not used with --ip 4, whose bridge is IPv4 only",
            hint="leave out --subnet6, or use --ip 6 or --ip dual",
        )


def bridge_subnet6(spec: TopologySpec) -> str | None:
    """The IPv6 subnet of spec's bridge: None for --ip 4, else the one given or the default."""
    if spec.ip == "4":
        check_families(spec.ip, subnet6=spec.subnet6)
        return None
    return spec.subnet6 or DEFAULT_SUBNET6


def check_networks(
    *,
    subnet4: str | None,
    subnet6: str | None,
    tunnel4: str = DEFAULT_TUNNEL4,
    tunnel6: str = DEFAULT_TUNNEL6,
) -> tuple[ipaddress.IPv4Network | None, ipaddress.IPv6Network | None]:
    """Check the bridge subnets given (None: chosen later) and the tunnel subnets.

    Errors name the option as the user typed it (--subnet4, --subnet6); the tunnel
    subnets have no flag and are called what they are.
    """
    bridge4 = _network4(subnet4, "--subnet4") if subnet4 is not None else None
    bridge6 = _network6(subnet6, "--subnet6") if subnet6 is not None else None
    net4 = _network4(tunnel4, "IPv4 tunnel subnet")
    net6 = _network6(tunnel6, "IPv6 tunnel subnet")
    if bridge4 is not None and bridge4.overlaps(net4):
        raise RpbuildError(f"--subnet4 {bridge4} overlaps the IPv4 tunnel subnet {net4}")
    if bridge6 is not None and bridge6.overlaps(net6):
        raise RpbuildError(f"--subnet6 {bridge6} overlaps the IPv6 tunnel subnet {net6}")
    return bridge4, bridge6


def overlap(subnet: str, networks: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """The first (network, subnet) of networks that overlaps subnet, or None.

    Docker refuses a bridge whose subnet overlaps another network's ("Pool overlaps
    with other one on this address space", naming neither): asked first, the error
    can name both.
    """
    net = ipaddress.ip_network(subnet, strict=False)
    for name, other in networks:
        try:
            used = ipaddress.ip_network(other, strict=False)
        except ValueError:
            continue
        if used.version == net.version and net.overlaps(used):
            return name, other
    return None


def subnets_of(doc: Mapping[str, Any]) -> list[str]:
    """The subnets a compose document's networks ask for (a file edited by hand too)."""
    found: list[str] = []
    networks = doc.get("networks")
    for network in networks.values() if isinstance(networks, dict) else ():
        ipam = network.get("ipam") if isinstance(network, dict) else None
        configs = ipam.get("config") if isinstance(ipam, dict) else None
        for config in configs if isinstance(configs, list) else ():
            subnet = config.get("subnet") if isinstance(config, dict) else None
            try:
                found.append(str(ipaddress.ip_network(str(subnet), strict=False)))
            except ValueError:
                continue
    return found


def plan(spec: TopologySpec) -> Plan:
    """Check the spec and work out every address; errors name the option at fault."""
    check_ip(spec.ip)
    if not 1 <= spec.server_port <= 65534:
        raise RpbuildError(f"server port {spec.server_port} is not from 1 to 65534")
    bridge4, bridge6 = check_networks(
        subnet4=spec.subnet4,
        subnet6=bridge_subnet6(spec),
        tunnel4=spec.tunnel4,
        tunnel6=spec.tunnel6,
    )
    assert bridge4 is not None
    tunnel4 = ipaddress.IPv4Network(spec.tunnel4)
    tunnel6 = ipaddress.IPv6Network(spec.tunnel6)
    six = spec.ip in ("6", "dual")
    four = spec.ip in ("4", "dual")
    assert bridge6 is not None or not six
    bridge: dict[str, dict[str, str]] = {}
    tunnel: dict[str, dict[str, str]] = {}
    for role in ROLES:
        bridge[role] = {"4": str(bridge4[BRIDGE_HOST[role]])}
        if bridge6 is not None:
            bridge[role]["6"] = str(bridge6[BRIDGE_HOST[role]])
        tunnel[role] = {}
        if four:
            tunnel[role]["4"] = f"{tunnel4[TUNNEL_HOST[role]]}/{tunnel4.prefixlen}"
        if six:
            tunnel[role]["6"] = f"{tunnel6[TUNNEL_HOST[role]]}/{tunnel6.prefixlen}"
    # The peers talk IPv6 whenever the bridge has it; IPv4 only in "4".
    public = bridge["server"]["6" if six else "4"]
    return Plan(
        ip=spec.ip,
        bridge=bridge,
        tunnel=tunnel,
        server_public_ip=public,
        standin_rekey_seconds=check_rekey(spec.standin_rekey_seconds),
    )


def check_rekey(seconds: float | None) -> float | None:
    if seconds is not None and not (math.isfinite(seconds) and 1 <= seconds <= 3600):
        raise RpbuildError(
            f"--standin-rekey-seconds: {seconds:g} is not a number of seconds from 1 to 3600"
        )
    return seconds


def _seconds(value: float) -> str:
    """A number of seconds as the environment carries it: 6, not 6.0."""
    return f"{value:g}"


def _vpn(addresses: Mapping[str, str]) -> str:
    return ",".join(addresses[fam] for fam in ("4", "6") if fam in addresses)


def _service(role: str, spec: TopologySpec, p: Plan) -> dict[str, Any]:
    other = "client" if role == "server" else "server"
    env = {
        "MODE": role,
        "SERVER_PUBLIC_IP": p.server_public_ip,
        "SERVER_PORT": str(spec.server_port),
        "SERVER_VPN_IP": _vpn(p.tunnel["server"]),
        "CLIENT_VPN_IP": _vpn(p.tunnel["client"]),
        "PRIVATE_KEY_DIR": PRIVATE_DIR,
        "SERVER_PUBKEY_DIR": PUBLIC_DIRS["server"],
        "CLIENT_PUBKEY_DIR": PUBLIC_DIRS["client"],
        "PEER_TIMEOUT": str(spec.peer_timeout),
    }
    if spec.userspace_wireguard:
        env["WIREGUARD"] = "userspace"
    if spec.standin_rekey_seconds is not None:
        env[STANDIN_REKEY_ENV] = _seconds(spec.standin_rekey_seconds)
    addresses = {"ipv4_address": p.bridge[role]["4"]}
    if "6" in p.bridge[role]:
        addresses["ipv6_address"] = p.bridge[role]["6"]
    service: dict[str, Any] = {
        "image": spec.image,
        "pull_policy": "never",
        "environment": env,
        "cap_add": list(ADDED_CAPS),
        "cap_drop": list(DROPPED_CAPS),
        "security_opt": ["no-new-privileges:true"],
        "volumes": [
            f"{role}-private:{PRIVATE_DIR}",
            f"{role}-public:{PUBLIC_DIRS[role]}",
            f"{other}-public:{PUBLIC_DIRS[other]}:ro",
        ],
        "networks": {"transit": addresses},
        "healthcheck": {
            "test": ["CMD", ENTRYPOINT, "healthcheck"],
            "interval": "1s",
            "timeout": "5s",
            "retries": 10,
            "start_period": "60s",
        },
        "stop_grace_period": "5s",
        "restart": "no",
    }
    if spec.ip in ("6", "dual"):
        # New devices (the tunnel) inherit this; Docker turns IPv6 off otherwise.
        service["sysctls"] = {"net.ipv6.conf.all.disable_ipv6": "0"}
    if spec.userspace_wireguard:
        service["devices"] = ["/dev/net/tun:/dev/net/tun"]
    if role == "client":
        # The client needs the server's public keys; the server is healthy once
        # they are published (and, once the client's are there, when the tunnel works).
        service["depends_on"] = {"server": {"condition": "service_healthy"}}
    return service


def document(spec: TopologySpec) -> dict[str, Any]:
    """The compose document for spec."""
    p = plan(spec)
    subnets = [{"subnet": spec.subnet4}]
    subnet6 = bridge_subnet6(spec)
    if subnet6 is not None:
        subnets.append({"subnet": subnet6})
    network: dict[str, Any] = {"driver": "bridge"}
    if spec.ip in ("6", "dual"):
        network["enable_ipv6"] = True
    network["ipam"] = {"driver": "default", "config": subnets}
    return {
        # 2.4 is the last format both docker-compose 1.29 and Compose v2 take
        # with enable_ipv6 and depends_on conditions.
        "version": "2.4",
        "services": {role: _service(role, spec, p) for role in ROLES},
        "networks": {"transit": network},
        "volumes": {f"{role}-{kind}": {} for role in ROLES for kind in ("private", "public")},
    }


YAML_SUFFIXES = (".yml", ".yaml")


def format_for(path: Path | None) -> str:
    """The format `-o PATH` asks for by its extension: YAML for .yml/.yaml, else JSON."""
    return "yaml" if path is not None and path.suffix.lower() in YAML_SUFFIXES else "json"


def dump(doc: Mapping[str, Any], file_format: str = "json") -> str:
    """JSON (which is YAML too), or YAML for people who edit the file.

    PyYAML is imported only here and in load(), so that no other command pays for it.
    """
    if file_format == "yaml":
        import yaml

        return str(yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False))
    return json.dumps(doc, indent=2) + "\n"


def load(text: str, source: str) -> dict[str, Any]:
    """A compose file written by `rpbuild compose` (JSON or YAML), possibly edited."""
    try:
        doc = load_json(text)
    except json.JSONDecodeError as json_error:
        doc = _load_yaml(text, source, json_error)
    except ValueError as exc:  # nested too deeply
        raise RpbuildError(f"{source}: not a compose file (JSON or YAML): {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        raise RpbuildError(f"{source}: no services in the compose file")
    missing = [role for role in ROLES if role not in doc["services"]]
    if missing:
        raise RpbuildError(f"{source}: no '{missing[0]}' service in the compose file")
    return doc


def _load_yaml(text: str, source: str, json_error: json.JSONDecodeError) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise RpbuildError(
            f"{source}: not a compose file (JSON or YAML): {NESTED_TOO_DEEPLY}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        looks_json = text.lstrip().startswith("{")
        why = f"JSON: {json_error}" if looks_json else f"YAML{where}: {problem}"
        raise RpbuildError(f"{source}: not a compose file (JSON or YAML): {why}") from None


def plan_of(doc: Mapping[str, Any], source: str) -> Plan:
    """The tunnel addresses a compose document configures (for the checks)."""
    env = doc["services"]["server"].get("environment") or {}
    if not isinstance(env, dict):
        raise RpbuildError(f"{source}: the server's environment must be a mapping")
    tunnel: dict[str, dict[str, str]] = {}
    for role in ROLES:
        value = str(env.get(f"{role.upper()}_VPN_IP", ""))
        tunnel[role] = {}
        for item in filter(None, (v.strip() for v in value.split(","))):
            try:
                addr = ipaddress.ip_interface(item)
            except ValueError:
                raise RpbuildError(f"{source}: bad {role.upper()}_VPN_IP '{value}'") from None
            tunnel[role][str(addr.version)] = str(addr)
        if not tunnel[role]:
            raise RpbuildError(f"{source}: the server has no {role.upper()}_VPN_IP")
    families = {fam for role in ROLES for fam in tunnel[role]}
    ip = "dual" if families == {"4", "6"} else families.pop()
    rekey: float | None = None
    if STANDIN_REKEY_ENV in env:
        try:
            rekey = float(str(env[STANDIN_REKEY_ENV]))
        except ValueError:
            raise RpbuildError(
                f"{source}: bad {STANDIN_REKEY_ENV} '{env[STANDIN_REKEY_ENV]}'"
            ) from None
    return Plan(
        ip=ip,
        bridge={},
        tunnel=tunnel,
        server_public_ip=str(env.get("SERVER_PUBLIC_IP", "")),
        standin_rekey_seconds=rekey,
    )


def images(doc: Mapping[str, Any]) -> list[str]:
    return sorted({str(doc["services"][role].get("image", "")) for role in ROLES} - {""})


def missing_tools(package_names: Sequence[str], *, userspace: bool = False) -> list[str]:
    """Tools the topology needs that a profile's package list lacks."""
    needed = REQUIRED_PACKAGES | (USERSPACE_PACKAGES if userspace else {})
    return [tool for pkg, tool in needed.items() if pkg not in package_names]


def free_subnets(in_use: Sequence[str]) -> tuple[str, str]:
    """The first bridge subnets (IPv4, IPv6) from the defaults' ranges that no network uses.

    Tried in step: 172.31.240.0/24 with fd00:7270::/64, then 172.31.241.0/24 with
    fd00:7270:0:1::/64, and so on, 16 pairs. Docker refuses overlapping subnets,
    so a second topology (a test beside `rpbuild up`) takes the next pair.
    """
    used: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for text in in_use:
        try:
            used.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            continue
    for i in range(16):
        net4 = ipaddress.IPv4Network(f"172.31.{240 + i}.0/24")
        net6 = ipaddress.IPv6Network(f"fd00:7270:0:{i:x}::/64")
        if not any(net4.overlaps(u) for u in used if isinstance(u, ipaddress.IPv4Network)) and (
            not any(net6.overlaps(u) for u in used if isinstance(u, ipaddress.IPv6Network))
        ):
            return str(net4), str(net6)
    raise RpbuildError(
        "no free subnet pair in 172.31.240.0/20 and fd00:7270::/60; pass --subnet4 and --subnet6"
    )


def check_output(path: Path) -> None:
    """Refuse an `-o PATH` that cannot take the file, before anything is written.

    Left to the write, the error named its temporary file (`.x.json.1a2b.tmp: Is a
    directory`) or a parent (`afile: File exists`), never the option.
    """
    if path.is_dir():
        raise RpbuildError(
            f"-o {path}: is a directory", hint=f"name a file, e.g. -o {path / 'compose.json'}"
        )
    if path.exists() and not path.is_file():
        raise RpbuildError(
            f"-o {path}: not a regular file", hint="leave out -o to write to standard output"
        )
    parent = next((p for p in path.parents if p.exists() or p.is_symlink()), None)
    if parent is not None and not parent.is_dir():
        raise RpbuildError(f"-o {path}: {parent} is not a directory")


def write_output(path: Path, text: str) -> None:
    """Write the compose file to `-o PATH` whole or not at all; errors name `-o PATH`.

    A symbolic link is written through, as a shell redirection would, not replaced.
    """
    check_output(path)
    target = path.resolve() if path.is_symlink() else path
    try:
        atomic_write(target, text)
    except OSError as exc:
        raise RpbuildError(f"-o {path}: {exc.strerror or exc}") from None
