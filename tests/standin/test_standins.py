"""The stand-in flakes (tests/standin/nixpkgs, tests/standin/rosenpass) do what the
integration tests rely on: they evaluate for both systems, build offline, give
deterministic images that `docker load` accepts, and in an image rp exchange over a
wireguard-go device brings up a tunnel with the same, renewed pre-shared key on both sides.

A throwaway consumer flake in tmp_path takes both stand-ins as inputs (through
--override-input, as the integration tests do).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STANDIN, standin_overrides

NIX = [
    "nix",
    "--extra-experimental-features",
    "nix-command flakes",
    "--option",
    "substituters",
    "",
]
# The consumer flake's inputs, as rpbuild's tests pass them (its no-cache option repeats NIX's).
OVERRIDES = ["--no-write-lock-file", *standin_overrides()]
SYSTEMS = ("x86_64-linux", "aarch64-linux")
PACKAGES = (
    "busybox",
    "coreutils-full",
    "gnugrep",
    "iproute2",
    "procps",
    "iputils",
    "bash",
    "iptables",
    "tcpdump",
    "iana-etc",
    "wireguard-tools",
    "glibc",
)

pytestmark = [
    pytest.mark.nix,
    pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed"),
]


def docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


CONSUMER = """
{
  inputs.nixpkgs.url = "path:/nonexistent/nixpkgs";
  inputs.rosenpass.url = "path:/nonexistent/rosenpass";
  inputs.rosenpass.inputs.nixpkgs.follows = "nixpkgs";
  outputs = { self, nixpkgs, rosenpass }:
    let
      mk = system:
        let
          pkgs = nixpkgs.legacyPackages.${system};
          args = {
            name = "rpbuild-standin-test";
            tag = "@TAG@";
            contents = [
              rosenpass.packages.${system}.rosenpass
              pkgs.coreutils-full pkgs.iana-etc pkgs.gnugrep pkgs.iproute2
              pkgs.wireguard-tools pkgs.wireguard-go pkgs.iputils pkgs.bash pkgs.procps
              (pkgs.writeScriptBin "hello" "#!${pkgs.runtimeShell}\\necho hello\\n")
            ];
            config = {
              Entrypoint = [ "/bin/sh" "-c" ];
              Cmd = [ "sleep 600" ];
              Env = [ "A=b" ];
              Labels = { "x" = "y"; };
            };
            extraCommands = "mkdir -p tmp && chmod 1777 tmp";
          };
        in {
          stream = pkgs.dockerTools.streamLayeredImage args;
          gz = pkgs.dockerTools.buildLayeredImage args;
          unknownArg = pkgs.dockerTools.streamLayeredImage (args // { fromImage = null; });
          unknownConfig = pkgs.dockerTools.streamLayeredImage (args // { config = { Foo = 1; }; });
        };
    in {
      packages.x86_64-linux = mk "x86_64-linux";
      packages.aarch64-linux = mk "aarch64-linux";
    };
}
"""


def nix(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NIX, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def build(flake_ref: str, *attrs: str, extra: tuple[str, ...] = ()) -> list[str]:
    proc = nix("build", "--no-link", "--json", *extra, *(f"{flake_ref}#{a}" for a in attrs))
    assert proc.returncode == 0, proc.stderr
    return [entry["outputs"]["out"] for entry in json.loads(proc.stdout)]


def eval_json(flake_ref: str, attr: str, apply: str, extra: tuple[str, ...] = ()) -> Any:
    proc = nix("eval", "--json", *extra, f"{flake_ref}#{attr}", "--apply", apply)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(flake ref, image tag) of the throwaway consumer flake."""
    tag = "t" + uuid.uuid4().hex[:12]
    root = tmp_path_factory.mktemp("consumer")
    (root / "flake.nix").write_text(CONSUMER.replace("@TAG@", tag))
    return f"path:{root}", tag


@pytest.fixture
def loaded_image(consumer: tuple[str, str]) -> Iterator[str]:
    ref, tag = consumer
    [script] = build(ref, "packages.x86_64-linux.stream", extra=tuple(OVERRIDES))
    image = f"rpbuild-standin-test:{tag}"
    with subprocess.Popen([script], stdout=subprocess.PIPE) as stream:
        load = subprocess.run(["docker", "load"], stdin=stream.stdout, capture_output=True)
    assert stream.returncode == 0 and load.returncode == 0, load.stderr
    try:
        yield image
    finally:
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True)


@pytest.mark.parametrize("system", SYSTEMS)
def test_packages_evaluate_with_metadata(system: str) -> None:
    ref = f"path:{STANDIN / 'nixpkgs'}"
    info = eval_json(
        ref,
        f"legacyPackages.{system}",
        "ps: builtins.mapAttrs (n: p: { inherit (p) name pname version; d = p.meta.description; }) "
        "{ inherit (ps) " + " ".join(PACKAGES) + "; }",
    )
    assert set(info) == set(PACKAGES)
    for name, pkg in info.items():
        assert pkg["name"] == f"{pkg['pname']}-{pkg['version']}", name
        assert pkg["d"]
    rp = eval_json(
        f"path:{STANDIN / 'rosenpass'}",
        f"packages.{system}",
        "ps: builtins.mapAttrs (n: p: { inherit (p) pname version; }) ps",
    )
    assert set(rp) == {"rosenpass", "rosenpass-static", "default"}
    assert {p["pname"] for p in rp.values()} == {"rosenpass"}


def test_payloads_and_shared_glibc() -> None:
    ref = f"path:{STANDIN / 'nixpkgs'}"
    system = "aarch64-linux"  # built on x86_64 too
    sizes = eval_json(ref, f"legacyPackages.{system}.standinPayloadSizes", "x: x")
    attrs = [f"legacyPackages.{system}.{p}" for p in PACKAGES]
    outs: dict[str, str] = eval_json(
        ref, f"legacyPackages.{system}", "ps: { inherit (ps) " + " ".join(PACKAGES) + "; }"
    )
    assert sorted(build(ref, *attrs)) == sorted(outs.values())
    for name, out in outs.items():
        payload = Path(out) / (
            "lib/glibc-standin-payload" if name == "glibc" else f"share/{name}/payload"
        )
        if name == "busybox":
            assert not payload.exists()
            continue
        assert payload.stat().st_size == sizes[name], name
    refs = {
        name: subprocess.run(
            ["nix-store", "--query", "--references", out], capture_output=True, text=True
        ).stdout.split()
        for name, out in outs.items()
    }
    sharing = [name for name, r in refs.items() if outs["glibc"] in r]
    assert len(sharing) >= 2
    assert all(outs["busybox"] in refs[p] for p in ("coreutils-full", "gnugrep", "iproute2"))


@pytest.mark.parametrize("attr", ["unknownArg", "unknownConfig"])
def test_unsupported_arguments_throw(consumer: tuple[str, str], attr: str) -> None:
    ref, _ = consumer
    proc = nix("eval", *OVERRIDES, f"{ref}#packages.x86_64-linux.{attr}.drvPath")
    assert proc.returncode != 0
    assert "stand-in dockerTools.streamLayeredImage: unsupported" in proc.stderr


def test_images_are_deterministic(consumer: tuple[str, str]) -> None:
    ref, _ = consumer
    attrs = ("packages.x86_64-linux.stream", "packages.x86_64-linux.gz")
    first = build(ref, *attrs, extra=tuple(OVERRIDES))
    again = build(ref, *attrs, extra=(*OVERRIDES, "--rebuild"))  # fails if not bit-identical
    assert sorted(first) == sorted(again)
    [script] = build(ref, attrs[0], extra=tuple(OVERRIDES))
    streams = [subprocess.run([script], capture_output=True, check=True).stdout for _ in range(2)]
    assert streams[0] == streams[1]


@pytest.mark.parametrize("system,arch", [("x86_64-linux", "amd64"), ("aarch64-linux", "arm64")])
def test_image_tag_and_architecture(consumer: tuple[str, str], system: str, arch: str) -> None:
    ref, tag = consumer
    got = eval_json(
        ref, f"packages.{system}.stream", "d: [d.imageName d.imageTag]", extra=tuple(OVERRIDES)
    )
    assert got == ["rpbuild-standin-test", tag]
    [script] = build(ref, f"packages.{system}.stream", extra=tuple(OVERRIDES))
    assert f'"architecture": "{arch}"' in Path(script).read_text()


@pytest.mark.docker
@pytest.mark.skipif(not docker_works(), reason="no working Docker engine")
def test_image_runs(loaded_image: str) -> None:
    def run(cmd: str) -> str:
        proc = subprocess.run(
            # NET_RAW dropped: the stand-in's ping, like iputils', needs no raw socket.
            [
                "docker",
                "run",
                "--rm",
                "--pull",
                "never",
                "--cap-drop",
                "NET_RAW",
                loaded_image,
                cmd,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    assert "rp" in run("ls /bin").split()
    assert " 0% packet loss" in run("ping -c1 -W2 127.0.0.1")
    assert run("wg --version").startswith("wireguard-tools")
    assert run("bash -c 'echo ok'") == "ok\n"
    assert "icmp\t1" in run("cat /etc/protocols")
    assert run("hello") == "hello\n"
    assert run("stat -c %a /tmp") == "1777\n"
    inspect = json.loads(
        subprocess.run(
            ["docker", "inspect", loaded_image], capture_output=True, text=True, check=True
        ).stdout
    )[0]
    assert inspect["Architecture"] == "amd64"
    assert inspect["Created"].startswith("1970-01-01T00:00:01")
    assert inspect["Config"]["Labels"] == {"x": "y"}
    assert "A=b" in inspect["Config"]["Env"]


@pytest.mark.docker
@pytest.mark.skipif(not docker_works(), reason="no working Docker engine")
def test_rp_tunnel_between_two_containers(loaded_image: str, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    network = f"rpbuild-standin-{suffix}"
    names = [f"rpbuild-standin-a-{suffix}", f"rpbuild-standin-b-{suffix}"]
    ips = ["172.31.249.10", "172.31.249.11"]

    def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
        if check:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    docker("network", "create", "--subnet", "172.31.249.0/24", network)
    try:
        for name, ip in zip(names, ips, strict=True):
            docker(
                "run", "-d", "--pull", "never", "--name", name, "--network", network,
                "--ip", ip, "--cap-add", "NET_ADMIN", "--device", "/dev/net/tun",
                "--sysctl", "net.ipv6.conf.all.disable_ipv6=0", loaded_image, "sleep 600",
            )  # fmt: skip
            docker("exec", name, "rp", "genkey", "/keys/sk")
            docker("exec", name, "rp", "pubkey", "/keys/sk", "/keys/pk")
        for i, name in enumerate(names):
            peer = names[1 - i]
            docker("cp", f"{peer}:/keys/pk", str(tmp_path / peer))
            docker("cp", str(tmp_path / peer), f"{name}:/peer")
        # As the entrypoint does: a userspace device first (upstream rp needs one), then rp.
        # a is the server (listen only), b the client (endpoint): rpbuild's topology.
        for i, name in enumerate(names):
            docker("exec", name, "wireguard-go", "rosenpass0")
            own, far = (
                (["listen", f"{ips[0]}:9999"], [])
                if i == 0
                else ([], ["endpoint", f"{ips[0]}:9999"])
            )
            exchange = ["rp", "exchange", "/keys/sk", "dev", "rosenpass0", *own, "peer", "/peer", *far,
                        "allowed-ips", f"10.249.0.{2 - i}/32,fd00:249::{2 - i}/128"]  # fmt: skip
            docker(
                "exec", "-d", "-e", "ROSENPASS_STANDIN_REKEY_SECONDS=4", name, "sh", "-c",
                " ".join(exchange) + " >/tmp/rp.log 2>&1",
            )  # fmt: skip
        for i, name in enumerate(names):
            docker(
                "exec", name, "sh", "-c",
                "for i in $(seq 100); do ip link show rosenpass0 2>/dev/null | grep -q ,UP"
                " && break; sleep 0.1; done;"
                f" ip addr add 10.249.0.{i + 1}/24 dev rosenpass0 &&"
                f" ip -6 addr add fd00:249::{i + 1}/64 dev rosenpass0 || {{ cat /tmp/rp.log; exit 1; }}",
            )  # fmt: skip

        def psks() -> list[str]:
            out = [
                docker("exec", n, "wg", "show", "rosenpass0", "preshared-keys").stdout
                for n in names
            ]
            return [o.split()[1] if len(o.split()) == 2 else "" for o in out]

        def wait_for(check: Callable[[list[str]], bool], what: str) -> list[str]:
            deadline = time.monotonic() + 30
            while not check(keys := psks()):
                assert time.monotonic() < deadline, f"{what}: {keys}"
                time.sleep(0.2)
            return keys

        first = wait_for(lambda k: k[0] not in ("", "(none)") and k[0] == k[1], "the same PSK")
        ping4 = docker("exec", names[1], "ping", "-c", "3", "-w", "15", "10.249.0.1", check=False)
        assert ping4.returncode == 0, ping4.stdout
        ping6 = docker("exec", names[1], "ping", "-c", "3", "-w", "15", "fd00:249::1", check=False)
        assert ping6.returncode == 0, ping6.stdout
        wait_for(lambda k: k[0] != first[0] and k[0] == k[1], "a renewed, equal PSK")
        docker("exec", names[0], "pkill", "-TERM", "-f", "bin/rp exchange")
        gone = docker(
            "exec", names[0], "sh", "-c",
            "for i in $(seq 50); do ip link show rosenpass0 >/dev/null 2>&1 || exit 0;"
            " sleep 0.1; done; exit 1",
            check=False,
        )  # fmt: skip
        assert gone.returncode == 0, "rp exchange did not remove its device on SIGTERM"
    finally:
        docker("rm", "-f", *names, check=False)
        docker("network", "rm", network, check=False)


def test_nixpkgs_rosenpass_is_built_from_the_flake_standins_own_files() -> None:
    """Flakes cannot read outside their directory, so the stand-in nixpkgs keeps a copy of
    the rosenpass stand-in's program sources (tests/standin/nixpkgs/rosenpass/): both
    rosenpass sources must give the same rp and rosenpass. Every source file of the flake
    stand-in (all but flake.nix and documentation) is copied, byte for byte; after an edit
    there, copy it again (and adapt packages.nix when the way it is built changed)."""
    flake_dir, copy_dir = STANDIN / "rosenpass", STANDIN / "nixpkgs" / "rosenpass"
    sources = {
        p.name
        for p in flake_dir.iterdir()
        if p.is_file() and p.name not in ("flake.nix", "flake.lock") and p.suffix != ".md"
    }
    assert {p.name for p in copy_dir.iterdir()} == sources
    for name in sorted(sources):
        assert (copy_dir / name).read_bytes() == (flake_dir / name).read_bytes(), name
