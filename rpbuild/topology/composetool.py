"""Compose, driven through its CLI: Compose v2 (`docker compose`) or docker-compose 1.29.

Debian 12 packages only docker-compose 1.29; elsewhere Compose v2 is the norm.
Only commands and flags both understand are used, and containers, networks and
volumes are found by the labels both put on them, never by their names (v1 names
containers project_service_1, v2 project-service-1).
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from rpbuild import engine as engines
from rpbuild import process
from rpbuild.engine import Engine
from rpbuild.errors import EngineError, ToolMissing

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


@dataclass(frozen=True)
class Compose:
    engine: Engine
    command: tuple[str, ...]  # ("docker", "compose") or ("docker-compose",)

    @property
    def name(self) -> str:
        return " ".join(Path(part).name for part in self.command)

    def argv(self, project: str, file: Path, *args: str) -> list[str]:
        return [*self.command, "-p", project, "-f", str(file), *args]


def detect(engine: Engine) -> Compose:
    """`ENGINE compose` when it works, else the standalone docker-compose / podman-compose."""
    plugin = process.run(
        engine.argv("compose", "version"),
        what=f"{engine.name} compose version",
        error=EngineError,
        check=False,
    )
    if plugin.returncode == 0:
        if engine.name == "podman" and "external compose provider" in plugin.stderr:
            _check_podman_socket(engine)
        return Compose(engine=engine, command=(engine.binary, "compose"))
    standalone = "docker-compose" if engine.name == "docker" else "podman-compose"
    binary = process.which(standalone)
    if binary is not None:
        return Compose(engine=engine, command=(binary,))
    raise ToolMissing(
        f"neither `{engine.name} compose` nor {standalone} is installed",
        hint=f"install it with `apt-get install {standalone}`",
    )


def _check_podman_socket(engine: Engine) -> None:
    """`podman compose` hands the work to docker-compose (Debian 13), which talks to
    Podman's API socket; without the service behind it, `up` would fail after the build
    with only "exit status 1". Found first, and said."""
    info = process.run(
        engine.argv("info", "--format", "{{.Host.RemoteSocket.Path}}"),
        what=f"{engine.name} info",
        error=EngineError,
        check=False,
    )
    path = info.stdout.strip().removeprefix("unix://")
    if info.returncode != 0 or not path:
        return  # nothing to check against: compose will say what it says
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
        except OSError:
            raise ToolMissing(
                f"`{engine.name} compose` runs docker-compose against Podman's API socket "
                f"{path}, and no Podman service listens there",
                hint="start it: `systemctl start podman.socket` (or `podman system service "
                "--time=0 &`)",
            ) from None


def up(compose: Compose, project: str, file: Path, *, timeout: float) -> None:
    """Create and start the services; waits on depends_on conditions itself."""
    process.run(
        compose.argv(project, file, "up", "--detach", "--no-build"),
        what=f"{compose.name} up",
        error=EngineError,
        timeout=timeout,
    )


def down(compose: Compose, project: str, file: Path) -> process.Result:
    """Stop and remove the containers, the network and the volumes (the keys)."""
    return process.run(
        compose.argv(project, file, "down", "--volumes", "--remove-orphans", "--timeout", "5"),
        what=f"{compose.name} down",
        error=EngineError,
        check=False,
        timeout=120,
    )


def containers(engine: Engine, project: str) -> dict[str, str]:
    """service -> container id, stopped ones included."""
    listing = engines.query(
        engine,
        "ps",
        "--all",
        "--no-trunc",
        "--filter",
        f"label={PROJECT_LABEL}={project}",
        "--format",
        f'{{{{.ID}}}} {{{{.Label "{SERVICE_LABEL}"}}}}',
        what=f"{engine.name} ps",
    )
    out: dict[str, str] = {}
    for line in listing.splitlines():
        cid, _, service = line.strip().partition(" ")
        if cid:
            out[service] = cid
    return out


def leftovers(engine: Engine, project: str) -> dict[str, list[str]]:
    """What of the project still exists: containers, networks, volumes (ids or names).

    Raises when the engine cannot say: an empty answer must mean nothing is left.
    """
    label = f"label={PROJECT_LABEL}={project}"
    found: dict[str, list[str]] = {}
    for kind, command in (
        ("containers", ("ps", "--all")),
        ("networks", ("network", "ls")),
        ("volumes", ("volume", "ls")),
    ):
        what = f"{engine.name} {command[0] if kind == 'containers' else ' '.join(command)}"
        found[kind] = engines.query(
            engine, *command, "--quiet", "--filter", label, what=what
        ).split()
    return found


def sweep(engine: Engine, project: str) -> dict[str, list[str]]:
    """Remove whatever `down` left of the project (e.g. without its compose file)."""
    left = leftovers(engine, project)
    for kind, argv in (
        ("containers", ["rm", "--force", "--volumes"]),
        ("networks", ["network", "rm"]),
        ("volumes", ["volume", "rm", "--force"]),
    ):
        if left[kind]:  # what could not be removed shows in the second listing
            engines.attempt(engine, *argv, *left[kind], what=f"{engine.name} {argv[0]}")
    return leftovers(engine, project)


_GONE = re.compile(r"no such network|network \S+ not found", re.I)


def network_subnets(engine: Engine) -> list[tuple[str, str]]:
    """(network name, subnet) for every subnet of the engine's networks.

    Other programs create and remove networks meanwhile: one that vanishes between
    the listing and the inspection is asked about again, not an error.
    """
    what = f"{engine.name} network inspect"
    for _ in range(3):
        ids = engines.query(engine, "network", "ls", "--quiet", what=f"{engine.name} network ls")
        if not ids.split():
            return []
        result = engines.attempt(engine, "network", "inspect", *ids.split(), what=what)
        if result.returncode == 0:
            return _parse_subnets(result.stdout)
        if not _GONE.search(result.stderr):
            break
    raise engines.query_failure(engine, result, what)


def _parse_subnets(output: str) -> list[tuple[str, str]]:
    subnets: list[tuple[str, str]] = []
    for net in json.loads(output or "[]"):
        name = str(net.get("Name") or net.get("name") or net.get("Id") or net.get("id") or "?")
        ipam = net.get("IPAM") or {}
        for config in ipam.get("Config") or []:
            if config.get("Subnet"):
                subnets.append((name, str(config["Subnet"])))
        for sub in net.get("subnets") or []:  # podman
            if sub.get("subnet"):
                subnets.append((name, str(sub["subnet"])))
    return subnets


def subnets_in_use(engine: Engine) -> list[str]:
    """Every subnet of the engine's networks, to choose ones that do not collide."""
    return [subnet for _, subnet in network_subnets(engine)]
