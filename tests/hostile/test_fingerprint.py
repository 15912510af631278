"""Every input of the fingerprint, changed alone, rebuilds the image exactly once: the
first run after the change rebuilds, the next one is up to date again. Each input in its
own test, so that dropping one from the fingerprint fails exactly that test. Real nix and
Docker with the stand-ins (run under `flock /tmp/rpbuild-docker.lock`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STANDIN, RunCli, standin_overrides

pytestmark = [pytest.mark.nix, pytest.mark.docker]


@pytest.fixture
def tag() -> Iterator[str]:
    ref = f"rpbuild-test/{uuid.uuid4().hex[:10]}:fp"
    yield ref
    subprocess.run(["docker", "image", "rm", "--force", ref], capture_output=True, check=False)


@pytest.fixture
def rosenpass_copy(tmp_path: Path) -> Path:
    """A private copy of the stand-in rosenpass, to be edited as a local checkout."""
    copy = tmp_path / "rosenpass"
    shutil.copytree(STANDIN / "rosenpass", copy)
    return copy


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


Change = Callable[[Path, Path], list[str]]  # (project, rosenpass copy) -> extra arguments


def _lock(project: Path, _: Path) -> list[str]:
    lock = json.loads((project / "flake.lock").read_text())
    (project / "flake.lock").write_text(json.dumps(lock, indent=4) + "\n")  # same pins
    return []


def _profile(project: Path, _: Path) -> list[str]:
    path = project / "profiles" / "minimal.toml"
    path.write_text(path.read_text().replace("[image]", '[image]\nenv = { FP = "1" }', 1))
    return []


def _flake_template(project: Path, _: Path) -> list[str]:
    _append(project / "templates" / "flake.nix.j2", "# a comment only\n")
    return []


def _entrypoint_template(project: Path, _: Path) -> list[str]:
    _append(project / "templates" / "entrypoint.sh", "# a comment only\n")
    return []


def _system(_: Path, __: Path) -> list[str]:
    return ["--system", "aarch64-linux"]


def _settings(project: Path, _: Path) -> list[str]:
    settings = project / "rpbuild.toml"
    if 'rosenpass_source = "flake"' in (settings.read_text() if settings.exists() else ""):
        _append(settings, "rosenpass_follows_nixpkgs = true\n")
    else:  # rpbuild's default source (nixpkgs): the other one
        settings.write_text('rosenpass_source = "flake"\n')
    return []


def _override(_: Path, rosenpass: Path) -> list[str]:
    _append(rosenpass / "rp.sh", "# a comment only\n")
    return []


CHANGES: dict[str, Change] = {
    "lock": _lock,
    "profile": _profile,
    "flake-template": _flake_template,
    "entrypoint-template": _entrypoint_template,
    "system": _system,
    "settings": _settings,
    "override": _override,
}


def _image(rpbuild: RunCli, project: Path, rosenpass: Path, tag: str, *extra: str) -> Any:
    run = rpbuild(
        "image",
        "--tag",
        tag,
        *standin_overrides(rosenpass=rosenpass),
        "--json",
        *extra,
        cwd=project,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.mark.parametrize("what", list(CHANGES))
def test_changing_one_input_rebuilds_once(
    rpbuild: RunCli, project: Path, rosenpass_copy: Path, tag: str, what: str
) -> None:
    first = _image(rpbuild, project, rosenpass_copy, tag)
    assert _image(rpbuild, project, rosenpass_copy, tag)["up_to_date"] is True
    extra = CHANGES[what](project, rosenpass_copy)
    changed = _image(rpbuild, project, rosenpass_copy, tag, *extra)
    assert changed["up_to_date"] is False, f"changing the {what} did not rebuild"
    assert changed["fingerprint"] != first["fingerprint"]
    again = _image(rpbuild, project, rosenpass_copy, tag, *extra)
    assert again["up_to_date"] is True, f"changing the {what} rebuilt twice"
    assert again["image_id"] == changed["image_id"]
