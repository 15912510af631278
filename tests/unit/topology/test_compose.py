"""The two-peer topology's compose document, without Docker."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpbuild.errors import RpbuildError
from rpbuild.topology import compose as cmp
from tests.conftest import RunCli

IMAGE = "rosenpass:with-wireguard"


def doc(**kwargs: Any) -> dict[str, Any]:
    return cmp.document(cmp.TopologySpec(image=IMAGE, **kwargs))


@pytest.mark.parametrize("ip", cmp.IP_MODES)
def test_services_are_unprivileged_and_only_add_net_admin(ip: str) -> None:
    d = doc(ip=ip)
    assert d["version"] == "2.4"
    assert sorted(d["services"]) == ["client", "server"]
    for service in d["services"].values():
        assert "privileged" not in service
        assert service["cap_add"] == ["NET_ADMIN"]
        assert "NET_ADMIN" not in service["cap_drop"]
        assert {"CHOWN", "DAC_OVERRIDE", "SETUID", "NET_RAW"} <= set(service["cap_drop"])
        assert service["pull_policy"] == "never"
        assert service["image"] == IMAGE
        assert "no-new-privileges:true" in service["security_opt"]
        assert "network_mode" not in service and "pid" not in service


def test_each_peer_alone_holds_its_private_volume_and_writes_only_its_public_one() -> None:
    services = doc()["services"]
    mounts = {role: services[role]["volumes"] for role in cmp.ROLES}
    assert mounts["server"] == [
        "server-private:/keys/private",
        "server-public:/keys/public/server",
        "client-public:/keys/public/client:ro",
    ]
    assert mounts["client"] == [
        "client-private:/keys/private",
        "client-public:/keys/public/client",
        "server-public:/keys/public/server:ro",
    ]
    for role in cmp.ROLES:
        other = "client" if role == "server" else "server"
        assert not any(m.startswith(f"{other}-private") for m in mounts[role])
    assert sorted(doc()["volumes"]) == [
        "client-private",
        "client-public",
        "server-private",
        "server-public",
    ]


def test_ipv4_only_has_no_ipv6_network_and_no_sysctls() -> None:
    d = doc(ip="4")
    net = d["networks"]["transit"]
    assert "enable_ipv6" not in net
    assert net["ipam"]["config"] == [{"subnet": cmp.DEFAULT_SUBNET4}]
    for service in d["services"].values():
        assert "sysctls" not in service
        assert "ipv6_address" not in service["networks"]["transit"]
    env = d["services"]["client"]["environment"]
    assert env["SERVER_PUBLIC_IP"] == "172.31.240.10"
    assert env["SERVER_VPN_IP"] == "10.213.0.1/24"
    assert env["CLIENT_VPN_IP"] == "10.213.0.2/24"


@pytest.mark.parametrize("ip", ["6", "dual"])
def test_ipv6_uses_a_ula_subnet_and_only_the_one_sysctl(ip: str) -> None:
    d = doc(ip=ip)
    net = d["networks"]["transit"]
    assert net["enable_ipv6"] is True
    subnets = [ipaddress.ip_network(c["subnet"]) for c in net["ipam"]["config"]]
    v6 = [s for s in subnets if s.version == 6]
    assert v6 and all(s.subnet_of(cmp.ULA) for s in v6)
    for service in d["services"].values():
        assert service["sysctls"] == {"net.ipv6.conf.all.disable_ipv6": "0"}
    env = d["services"]["server"]["environment"]
    assert env["SERVER_PUBLIC_IP"] == "fd00:7270::a"
    for key in ("SERVER_VPN_IP", "CLIENT_VPN_IP"):
        for item in env[key].split(","):
            addr = ipaddress.ip_interface(item)
            assert not addr.ip.is_link_local
            if addr.version == 6:
                assert addr.ip in cmp.ULA
    families = {ipaddress.ip_interface(i).version for i in env["SERVER_VPN_IP"].split(",")}
    assert families == ({4, 6} if ip == "dual" else {6})


def test_tun_device_only_for_userspace_wireguard() -> None:
    assert all("devices" not in s for s in doc()["services"].values())
    assert all("WIREGUARD" not in s["environment"] for s in doc()["services"].values())
    for service in doc(userspace_wireguard=True)["services"].values():
        assert service["devices"] == ["/dev/net/tun:/dev/net/tun"]
        # the entrypoint starts wireguard-go before rp (upstream rp never does)
        assert service["environment"]["WIREGUARD"] == "userspace"


def test_the_stand_in_rekey_interval_reaches_both_peers_and_the_plan() -> None:
    assert all(cmp.STANDIN_REKEY_ENV not in s["environment"] for s in doc()["services"].values())
    document = doc(standin_rekey_seconds=6.0)
    for service in document["services"].values():
        assert service["environment"][cmp.STANDIN_REKEY_ENV] == "6"
    assert cmp.plan_of(document, "f").standin_rekey_seconds == 6.0
    assert cmp.plan_of(doc(), "f").standin_rekey_seconds is None
    for bad in (0.5, 3601.0, float("nan")):
        with pytest.raises(RpbuildError, match=r"--standin-rekey-seconds: .* from 1 to 3600"):
            doc(standin_rekey_seconds=bad)


def test_healthchecks_run_the_entrypoint_without_a_shell_and_order_the_start() -> None:
    services = doc()["services"]
    for service in services.values():
        check = service["healthcheck"]
        assert check["test"] == ["CMD", "/bin/rpbuild-entrypoint", "healthcheck"]
        assert check["interval"] == "1s" and check["start_period"]
    assert services["client"]["depends_on"] == {"server": {"condition": "service_healthy"}}
    assert "depends_on" not in services["server"]


def test_environment_is_what_the_entrypoint_reads() -> None:
    services = doc()["services"]
    assert services["server"]["environment"]["MODE"] == "server"
    assert services["client"]["environment"]["MODE"] == "client"
    for service in services.values():
        env = service["environment"]
        assert all(isinstance(v, str) for v in env.values())
        assert env["SERVER_PUBKEY_DIR"] == "/keys/public/server"
        assert env["CLIENT_PUBKEY_DIR"] == "/keys/public/client"
        assert env["PRIVATE_KEY_DIR"] == "/keys/private"
        assert env["SERVER_PORT"] == "9999"


def test_dump_is_json_and_round_trips_through_load() -> None:
    d = doc(ip="dual")
    text = cmp.dump(d)
    assert json.loads(text) == d
    loaded = cmp.load(text, "x.json")
    p = cmp.plan_of(loaded, "x.json")
    assert p.ip == "dual"
    assert p.tunnel == cmp.plan(cmp.TopologySpec(image=IMAGE)).tunnel


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"ip": "5"}, "--ip: '5'"),
        ({"subnet4": "8.8.8.0/24"}, "not a private network"),
        ({"subnet4": "172.31.240.0/30"}, "too small"),
        ({"subnet4": "172.31.240.1/24"}, "not an IPv4 network"),
        ({"subnet6": "fe80::/64"}, "not a unique local"),
        ({"subnet6": "2001:db8::/64"}, "not a unique local"),
        ({"tunnel6": "fd00:7270::/48"}, "--subnet6 .* overlaps the IPv6 tunnel subnet"),
        ({"tunnel4": "172.31.240.0/25"}, "--subnet4 .* overlaps the IPv4 tunnel subnet"),
        ({"tunnel4": "10.213.0.0/29"}, "^IPv4 tunnel subnet: 10.213.0.0/29 is too small"),
        ({"tunnel6": "fe80::/64"}, "^IPv6 tunnel subnet: fe80::/64 is not a unique local"),
        ({"server_port": 65535}, "1 to 65534"),
    ],
)
def test_bad_specs_name_the_option(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(RpbuildError, match=message) as info:
        cmp.plan(cmp.TopologySpec(image=IMAGE, **kwargs))
    assert "--tunnel" not in info.value.message  # not a flag: never named like one


def test_networks_are_checked_without_bridge_subnets() -> None:
    """Before the bridge subnets are chosen, only the given ones and the tunnels count."""
    assert cmp.check_networks(subnet4=None, subnet6=None) == (None, None)
    with pytest.raises(RpbuildError, match=r"^IPv6 tunnel subnet: 'x' is not an IPv6 network"):
        cmp.check_networks(subnet4=None, subnet6=None, tunnel6="x")
    with pytest.raises(RpbuildError, match=r"^--subnet6 fd00:7270:1::/48 overlaps"):
        cmp.check_networks(subnet4=None, subnet6="fd00:7270:1::/48")


def test_load_rejects_what_is_not_ours() -> None:
    with pytest.raises(RpbuildError, match=r"^c.yml: not a compose file \(JSON or YAML\): YAML"):
        cmp.load("services:\n  server: [\n", "c.yml")
    with pytest.raises(RpbuildError, match=r"^c.json: not a compose file \(JSON or YAML\): JSON"):
        cmp.load('{"services": ', "c.json")
    with pytest.raises(RpbuildError, match="no 'client' service"):
        cmp.load("services:\n  server: {}\n", "c.yml")
    with pytest.raises(RpbuildError, match="no 'client' service"):
        cmp.load('{"services": {"server": {}}}', "c.json")


def test_yaml_and_json_hold_the_same_document() -> None:
    doc = cmp.document(cmp.TopologySpec(image="rosenpass:with-wireguard", ip="dual"))
    as_yaml = cmp.dump(doc, "yaml")
    assert not as_yaml.lstrip().startswith("{")
    assert cmp.load(as_yaml, "c.yml") == cmp.load(cmp.dump(doc), "c.json") == doc
    assert cmp.format_for(Path("x.YAML")) == cmp.format_for(Path("x.yml")) == "yaml"
    assert cmp.format_for(Path("x.json")) == cmp.format_for(None) == "json"


def test_free_subnets_skip_used_ones() -> None:
    assert cmp.free_subnets([]) == (cmp.DEFAULT_SUBNET4, cmp.DEFAULT_SUBNET6)
    assert cmp.free_subnets(["172.31.240.0/24", "fd00:7270:0:1::/64", "bogus"]) == (
        "172.31.242.0/24",
        "fd00:7270:0:2::/64",
    )
    with pytest.raises(RpbuildError, match="no free subnet"):
        cmp.free_subnets(["172.31.0.0/16"])


def test_missing_tools() -> None:
    assert cmp.missing_tools(["rosenpass", "wireguard-tools", "iputils"]) == []
    assert cmp.missing_tools(["rosenpass"]) == ["wg", "ping"]
    assert cmp.missing_tools(["wireguard-tools", "iputils"], userspace=True) == ["wireguard-go"]
    assert cmp.missing_tools(["wireguard-tools", "iputils", "wireguard-go"], userspace=True) == []


@given(i=st.integers(0, 15), prefix4=st.integers(16, 28), prefix6=st.integers(48, 120))
def test_addresses_lie_in_their_subnets_and_differ(i: int, prefix4: int, prefix6: int) -> None:
    net4 = ipaddress.IPv4Network(f"172.31.{240 + i}.0/{prefix4}", strict=False)
    net6 = ipaddress.IPv6Network(f"fd00:7270:0:{i:x}::/{prefix6}", strict=False)
    spec = cmp.TopologySpec(image=IMAGE, subnet4=str(net4), subnet6=str(net6), tunnel6="fd01::/64")
    p = cmp.plan(spec)
    bridge = [ipaddress.ip_address(a) for r in cmp.ROLES for a in p.bridge[r].values()]
    assert len(set(bridge)) == len(bridge)
    assert all(a in (net4 if a.version == 4 else net6) for a in bridge)
    assert ipaddress.ip_address(p.server_public_ip) == ipaddress.ip_address(p.bridge["server"]["6"])


def test_cli_writes_the_document_and_refuses_profiles_without_wg_and_ping(
    rpbuild: RunCli, project: Path
) -> None:
    out = rpbuild("compose", "--ip", "6", cwd=project)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d == cmp.document(cmp.TopologySpec(image="rosenpass:with-wireguard", ip="6"))
    minimal = rpbuild("compose", "--profile", "minimal", cwd=project)
    assert minimal.returncode == 2
    assert "profile minimal has no wg and no ping" in minimal.stderr
    bad = rpbuild("compose", "--subnet6", "fe80::/64", cwd=project)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "rpbuild: error: --subnet6: fe80::/64 is not a unique local (fd00::/8) network"
    ]


def test_overlap_names_the_network_of_the_same_family() -> None:
    networks = [("bridge", "172.17.0.0/16"), ("v6", "fd00:7270::/48"), ("odd", "bogus")]
    assert cmp.overlap("172.17.5.0/24", networks) == ("bridge", "172.17.0.0/16")
    assert cmp.overlap("172.16.0.0/12", networks) == ("bridge", "172.17.0.0/16")
    assert cmp.overlap("fd00:7270:0:1::/64", networks) == ("v6", "fd00:7270::/48")
    assert cmp.overlap("172.18.0.0/24", networks) is None
    assert cmp.overlap("fd00:7271::/64", networks) is None


def test_subnets_of_reads_an_edited_file_without_failing() -> None:
    assert cmp.subnets_of(doc(ip="dual")) == [cmp.DEFAULT_SUBNET4, cmp.DEFAULT_SUBNET6]
    assert cmp.subnets_of(doc(ip="4")) == [cmp.DEFAULT_SUBNET4]
    odd = {"networks": {"a": {"ipam": {"config": [{"subnet": "x"}, "y", {}]}}, "b": None}}
    assert cmp.subnets_of(odd) == []
    assert cmp.subnets_of({"networks": ["a"]}) == []


# --- -o PATH: checked first, errors name the option ----------------------------------


def bad_outputs(tmp_path: Path) -> list[tuple[Path, str]]:
    (tmp_path / "existing").mkdir()
    (tmp_path / "afile").write_text("keep\n")
    os.mkfifo(tmp_path / "fifo")
    return [
        (tmp_path / "existing", f"-o {tmp_path / 'existing'}: is a directory"),
        (tmp_path / "afile" / "x.json", f"-o {tmp_path}/afile/x.json: {tmp_path}/afile is not a directory"),
        (tmp_path / "afile" / "d" / "x.json", f"-o {tmp_path}/afile/d/x.json: {tmp_path}/afile is not a directory"),
        (tmp_path / "fifo", f"-o {tmp_path / 'fifo'}: not a regular file"),
    ]  # fmt: skip


def test_bad_output_paths_name_the_option_and_write_nothing(tmp_path: Path) -> None:
    """`compose -o DIR` named a temporary file (`.DIR.yyn3_mtg.tmp: Is a directory`),
    `-o afile/x.json` said `afile: File exists`."""
    for path, message in bad_outputs(tmp_path):
        with pytest.raises(RpbuildError) as checked:
            cmp.check_output(path)
        with pytest.raises(RpbuildError) as written:
            cmp.write_output(path, "{}\n")
        assert checked.value.message == written.value.message == message
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["afile", "existing", "fifo"]
    assert (tmp_path / "afile").read_text() == "keep\n"


def test_output_is_written_whole_through_links_and_into_new_directories(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    cmp.write_output(link, "{}\n")
    assert link.is_symlink() and target.read_text() == "{}\n"
    cmp.write_output(tmp_path / "new" / "c.json", "{}\n")
    assert (tmp_path / "new" / "c.json").read_text() == "{}\n"
    assert not list(tmp_path.rglob("*.tmp"))


def test_cli_refuses_a_bad_output_path_in_one_line(
    rpbuild: RunCli, project: Path, tmp_path: Path
) -> None:
    for path, message in bad_outputs(tmp_path):
        out = rpbuild("compose", "-o", str(path), cwd=project)
        assert out.returncode == 2, out.stderr
        assert out.stderr.splitlines()[0] == f"rpbuild: error: {message}"
        assert out.stdout == ""


def test_an_ipv6_subnet_with_ip_4_is_refused_not_dropped() -> None:
    with pytest.raises(RpbuildError) as info:
        cmp.document(cmp.TopologySpec(image=IMAGE, ip="4", subnet6="fd00:1::/64"))
    assert info.value.message == (
        "--subnet6: fd00:1::/64 is not used with --ip 4, whose bridge is IPv4 only"
    )
    assert info.value.hint == "leave out --subnet6, or use --ip 6 or --ip dual"
    # --subnet4 is used with --ip 6: the bridge keeps its IPv4 subnet.
    d = cmp.document(cmp.TopologySpec(image=IMAGE, ip="6", subnet4="172.30.5.0/24"))
    subnets = [c["subnet"] for c in d["networks"]["transit"]["ipam"]["config"]]
    assert subnets == ["172.30.5.0/24", cmp.DEFAULT_SUBNET6]
    # Unset: no IPv6 at all. Even the default subnet, given explicitly, is refused.
    d = cmp.document(cmp.TopologySpec(image=IMAGE, ip="4"))
    assert [c["subnet"] for c in d["networks"]["transit"]["ipam"]["config"]] == [
        cmp.DEFAULT_SUBNET4
    ]
    with pytest.raises(RpbuildError):
        cmp.document(cmp.TopologySpec(image=IMAGE, ip="4", subnet6=cmp.DEFAULT_SUBNET6))


def test_cli_refuses_a_subnet_the_ip_mode_does_not_use(rpbuild: RunCli, project: Path) -> None:
    r = rpbuild("compose", "--ip", "4", "--subnet6", "fd00:1::/64", cwd=project)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        "rpbuild: error: --subnet6: fd00:1::/64 is not used with --ip 4, whose bridge is IPv4 only",
        "rpbuild: hint: leave out --subnet6, or use --ip 6 or --ip dual",
    ]
