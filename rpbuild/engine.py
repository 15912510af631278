"""The container engine (Docker or Podman), driven through its CLI."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpbuild import process
from rpbuild.errors import EngineError, RpbuildError, ToolMissing

ENGINES = ("docker", "podman")
_INSTALL_HINT = {
    "docker": "install it with `apt-get install docker.io` and start the daemon "
    "(`systemctl start docker`)",
    "podman": "install it with `apt-get install podman`",
}


@dataclass(frozen=True)
class Engine:
    name: str
    binary: str

    def argv(self, *args: str) -> list[str]:
        return [self.binary, *args]


@dataclass(frozen=True)
class ImageInfo:
    id: str
    tags: tuple[str, ...]
    labels: dict[str, str]
    size: int
    architecture: str
    created: str


def detect(preferred: str | None = None) -> Engine:
    """Docker unless Podman is asked for or is the only one installed.

    Nothing is run here: the up-to-date path costs one `image inspect`, and a
    daemon that does not answer is recognised in whatever call fails first.
    """
    if preferred is not None and preferred not in ENGINES:
        raise RpbuildError(f"--engine {preferred}: unknown engine (known: {', '.join(ENGINES)})")
    for name in [preferred] if preferred else list(ENGINES):
        binary = process.which(name)
        if binary is not None:
            return Engine(name=name, binary=binary)
    wanted = preferred or "docker"
    raise ToolMissing(f"{wanted} is not installed", hint=_INSTALL_HINT[wanted])


_DAEMON_DOWN = re.compile(
    r"Cannot connect to the Docker daemon|Is the docker daemon running|error during connect"
    r"|connect: no such file or directory|Cannot connect to Podman",
    re.I,
)


def _daemon_down(engine: Engine, stderr: str) -> ToolMissing | None:
    return _daemon_error(engine) if _DAEMON_DOWN.search(stderr) else None


def _daemon_error(engine: Engine) -> ToolMissing:
    if engine.name == "docker":
        host = os.environ.get("DOCKER_HOST")
        if host:  # the local daemon's state is beside the point then
            return ToolMissing(
                f"the Docker daemon at DOCKER_HOST={host} is not running or not reachable",
                hint="check DOCKER_HOST (unset it for the local daemon), or use --engine podman",
            )
        return ToolMissing(
            "the Docker daemon is not running or not reachable",
            hint="start it with `systemctl start docker` (or `dockerd &`), or use --engine podman",
        )
    return ToolMissing("podman cannot reach its service", hint="check `podman info`")


def ensure_running(engine: Engine) -> None:
    """Fail early, before a build, when the daemon does not answer.

    Some commands (`docker load`) fail without saying why when it is down.
    """
    fmt = "{{.Server.Version}}" if engine.name == "docker" else "{{.Version}}"
    result = process.run(
        engine.argv("version", "--format", fmt),
        what=f"{engine.name} version",
        error=EngineError,
        check=False,
    )
    if result.returncode != 0:
        if _DAEMON_DOWN.search(result.stderr) or not result.stderr.strip():
            raise _daemon_error(engine)
        # Anything else (permission denied on the socket, say) is reported as it is:
        # "start the daemon" would send the user the wrong way.
        raise result.error(
            EngineError,
            f"cannot use {engine.name}: {result.stderr_tail(1)}",
            hint=(
                "add your user to the docker group (then log in again), or run as root"
                if "permission denied" in result.stderr.lower()
                else None
            ),
        )


def _call(engine: Engine, *args: str, what: str, check: bool = True) -> process.Result:
    """Run an engine command, turning 'daemon not running' into one clear error."""
    result = process.run(engine.argv(*args), what=what, error=EngineError, check=False)
    if result.returncode != 0:
        down = _daemon_down(engine, result.stderr)
        if down is not None:
            raise down
        if check:
            raise result.error(EngineError, f"{what} failed: {result.stderr_tail(1)}")
    return result


_LOADED_RE = re.compile(r"Loaded image(?: ID)?: (\S+)")
_PODMAN_LOADED_RE = re.compile(r"Loaded image(?:\(s\))?: (\S+)")


def parse_loaded(output: str) -> list[str]:
    """Image references or IDs that `docker load` / `podman load` reported."""
    refs: list[str] = []
    for line in output.splitlines():
        m = _LOADED_RE.search(line) or _PODMAN_LOADED_RE.search(line)
        if m:
            refs.extend(r for r in m.group(1).split(",") if r)
    return refs


def load_stream(engine: Engine, producer: list[str]) -> list[str]:
    """Pipe an image stream (streamLayeredImage's script) straight into `load`."""
    try:
        result = process.pipe(
            producer,
            engine.argv("load"),
            what=f"{engine.name} load",
            producer_what=f"the image stream script {Path(producer[0]).name}",
            error=EngineError,
        )
    except EngineError as exc:
        if exc.argv[:1] == producer[:1]:  # the stream failed first: the engine is fine
            raise
        raise _daemon_down(engine, exc.stderr_tail) or exc from None
    return parse_loaded(result.stdout + result.stderr)


def load_archive(engine: Engine, archive: Path) -> list[str]:
    result = _call(engine, "load", "-i", str(archive), what=f"{engine.name} load")
    return parse_loaded(result.stdout + result.stderr)


def inspect(engine: Engine, reference: str) -> ImageInfo | None:
    """The image's metadata, or None when the engine does not hold it."""
    result = _call(
        engine, "image", "inspect", reference, what=f"{engine.name} image inspect", check=False
    )
    if result.returncode != 0:
        if re.search(r"no such image|image not known|not found", result.stderr, re.I):
            return None
        raise result.error(
            EngineError, f"{engine.name} image inspect {reference} failed: {result.stderr_tail(1)}"
        )
    data: list[dict[str, Any]] = json.loads(result.stdout)
    if not data:
        return None
    item = data[0]
    config = item.get("Config") or {}
    return ImageInfo(
        id=normalise_id(str(item.get("Id", ""))),
        tags=tuple(item.get("RepoTags") or ()),
        labels=dict(config.get("Labels") or item.get("Labels") or {}),
        size=int(item.get("Size", 0)),
        architecture=str(item.get("Architecture", "")),
        created=str(item.get("Created", "")),
    )


def normalise_id(image_id: str) -> str:
    """Docker says sha256:HEX, Podman plain HEX: one form for comparisons and reports."""
    return image_id if image_id.startswith("sha256:") or not image_id else f"sha256:{image_id}"


def untag(engine: Engine, reference: str) -> None:
    """Remove one name from an image (the image stays while it has other names)."""
    _call(engine, "image", "rm", reference, what=f"{engine.name} image rm")


# -- listings and resources (the test topology's) ------------------------------------


def query(engine: Engine, *args: str, what: str) -> str:
    """A listing's output; a listing that fails is an error, never "nothing found".

    `down` once took an unreachable daemon's failing `docker ps` for an empty project,
    said it had removed everything and deleted the state of a topology still running.
    """
    result = process.run(engine.argv(*args), what=what, error=EngineError, check=False)
    if result.returncode != 0:
        raise query_failure(engine, result, what)
    return result.stdout


def query_failure(engine: Engine, result: process.Result, what: str) -> EngineError:
    """The error for a failed query; an engine that does not answer is the usual cause."""
    ensure_running(engine)  # raises that, with its fix
    last = result.stderr_tail(1).strip()
    return result.error(
        EngineError, f"{what} failed (exit {result.returncode})" + (f": {last}" if last else "")
    )


def attempt(engine: Engine, *args: str, what: str) -> process.Result:
    """Run an engine command whose failure the caller judges (it may be expected)."""
    return process.run(engine.argv(*args), what=what, error=EngineError, check=False)


# -- containers (the test topology's peers) ------------------------------------------


def inspect_containers(engine: Engine, ids: Sequence[str]) -> list[dict[str, Any]]:
    """`inspect` of some containers, as the engine's JSON (a failure is an error)."""
    if not ids:
        return []
    result = process.run(
        engine.argv("inspect", *ids), what=f"{engine.name} inspect", error=EngineError
    )
    data = json.loads(result.stdout or "[]")
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def container_output(engine: Engine, cid: str) -> list[str]:
    """A container's stdout and stderr, timestamped, in order (empty when it is gone)."""
    result = process.run(
        engine.argv("logs", "--timestamps", cid),
        what=f"{engine.name} logs",
        error=EngineError,
        check=False,
    )
    # stdout and stderr come apart; --timestamps puts them back in order.
    return sorted((result.stdout + result.stderr).splitlines())


def exec_in(engine: Engine, cid: str, *argv: str, timeout: float = 60) -> process.Result:
    """Run a command in a container; its exit status is the caller's to judge."""
    return process.run(
        engine.argv("exec", cid, *argv),
        what=f"{engine.name} exec {argv[0]}",
        error=EngineError,
        check=False,
        timeout=timeout,
    )


def remove_if_unused(engine: Engine, image_id: str) -> None:
    """Remove an image that no name and no container uses any more; else leave it."""
    process.run(
        engine.argv("image", "rm", image_id),
        what=f"{engine.name} image rm",
        error=EngineError,
        check=False,
    )


def tag(engine: Engine, source: str, target: str) -> None:
    if source != target:
        process.run(
            engine.argv("tag", source, target), what=f"{engine.name} tag", error=EngineError
        )
