"""Compose, driven through its CLI: Compose v2 (`docker compose`) or docker-compose 1.29.

Debian 12 packages only docker-compose 1.29; elsewhere Compose v2 is the norm.
Only commands and flags both understand are used, and containers, networks and
volumes are found by the labels both put on them, never by their names (v1 names
containers project_service_1, v2 project-service-1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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
        return Compose(engine=engine, command=(engine.binary, "compose"))
    standalone = "docker-compose" if engine.name == "docker" else "podman-compose"
    binary = process.which(standalone)
    if binary is not None:
        return Compose(engine=engine, command=(binary,))
    raise ToolMissing(
        f"neither `{engine.name} compose` nor {standalone} is installed",
        hint=f"install it with `apt-get install {standalone}`",
    )


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
    result = process.run(
        engine.argv(
            "ps",
            "--all",
            "--no-trunc",
            "--filter",
            f"label={PROJECT_LABEL}={project}",
            "--format",
            f'{{{{.ID}}}} {{{{.Label "{SERVICE_LABEL}"}}}}',
        ),
        what=f"{engine.name} ps",
        error=EngineError,
    )
    out: dict[str, str] = {}
    for line in result.stdout.splitlines():
        cid, _, service = line.strip().partition(" ")
        if cid:
            out[service] = cid
    return out


def leftovers(engine: Engine, project: str) -> dict[str, list[str]]:
    """What of the project still exists: containers, networks, volumes (ids or names)."""
    label = f"label={PROJECT_LABEL}={project}"
    found: dict[str, list[str]] = {}
    for kind, argv in (
        ("containers", engine.argv("ps", "--all", "--quiet", "--filter", label)),
        ("networks", engine.argv("network", "ls", "--quiet", "--filter", label)),
        ("volumes", engine.argv("volume", "ls", "--quiet", "--filter", label)),
    ):
        result = process.run(argv, what=f"{engine.name} {kind}", error=EngineError, check=False)
        found[kind] = result.stdout.split() if result.returncode == 0 else []
    return found


def sweep(engine: Engine, project: str) -> dict[str, list[str]]:
    """Remove whatever `down` left of the project (e.g. without its compose file)."""
    left = leftovers(engine, project)
    for kind, argv in (
        ("containers", ["rm", "--force", "--volumes"]),
        ("networks", ["network", "rm"]),
        ("volumes", ["volume", "rm", "--force"]),
    ):
        if left[kind]:
            process.run(
                engine.argv(*argv, *left[kind]),
                what=f"{engine.name} {argv[0]}",
                error=EngineError,
                check=False,
            )
    return leftovers(engine, project)


def subnets_in_use(engine: Engine) -> list[str]:
    """Every subnet of the engine's networks, to choose ones that do not collide."""
    ids = process.run(
        engine.argv("network", "ls", "--quiet"), what=f"{engine.name} network ls", error=EngineError
    ).stdout.split()
    if not ids:
        return []
    result = process.run(
        engine.argv("network", "inspect", *ids),
        what=f"{engine.name} network inspect",
        error=EngineError,
    )
    subnets: list[str] = []
    for net in json.loads(result.stdout or "[]"):
        ipam = net.get("IPAM") or {}
        for config in ipam.get("Config") or []:
            if config.get("Subnet"):
                subnets.append(str(config["Subnet"]))
        for sub in net.get("subnets") or []:  # podman
            if sub.get("subnet"):
                subnets.append(str(sub["subnet"]))
    return subnets
