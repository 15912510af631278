"""Shared fixtures: a throwaway copy of the project, and the rpbuild CLI as a user runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rpbuild.nix import NixOptions

REPO = Path(__file__).resolve().parent.parent

# The stand-in flakes build from host files (tests/standin), so nix's sandbox is off for the
# tests' own nix calls, and only for them: nothing machine-wide turns it off (.ci/setup).
_NIX_TEST_CONFIG = "sandbox = false"
if _NIX_TEST_CONFIG not in os.environ.get("NIX_CONFIG", ""):
    os.environ["NIX_CONFIG"] = "\n".join(
        line for line in (os.environ.get("NIX_CONFIG", ""), _NIX_TEST_CONFIG) if line
    )
STANDIN = REPO / "tests" / "standin"


def _standin_inputs(nixpkgs: Path, rosenpass: Path) -> tuple[tuple[str, str], ...]:
    return (("nixpkgs", f"path:{nixpkgs}"), ("rosenpass", f"path:{rosenpass}"))


# No binary cache: the tests are offline, and nix must not try one.
_NO_SUBSTITUTERS = (("substituters", ""),)


def standin_overrides(
    *, nixpkgs: Path = STANDIN / "nixpkgs", rosenpass: Path = STANDIN / "rosenpass"
) -> list[str]:
    """The stand-in inputs as rpbuild's command-line options (a copy may replace one)."""
    pairs = [("--override-input", *p) for p in _standin_inputs(nixpkgs, rosenpass)]
    pairs += [("--option", *o) for o in _NO_SUBSTITUTERS]
    return [word for pair in pairs for word in pair]


STANDIN_OVERRIDES = standin_overrides()


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


#: Where the test projects take rosenpass from (rpbuild.toml's rosenpass_source): unset,
#: rpbuild's default; CI runs the image, sizes, release and topology tests once more
#: with the other source (.ci/test).
ROSENPASS_SOURCE = os.environ.get("RPBUILD_TEST_ROSENPASS_SOURCE", "")


def use_rosenpass_source(root: Path, source: str) -> None:
    """Make a test project take rosenpass from `source` ("nixpkgs" or "flake")."""
    (root / "rpbuild.toml").write_text(f'rosenpass_source = "{source}"\n', encoding="utf-8")


def copy_project(parent: Path) -> Path:
    """A copy of this repository's project files under `parent`, free to edit."""
    root = parent / "project"
    root.mkdir()
    for name in ("profiles", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy2(REPO / "flake.lock", root / "flake.lock")
    if ROSENPASS_SOURCE:
        use_rosenpass_source(root, ROSENPASS_SOURCE)
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of this repository's project files, free to edit."""
    return copy_project(tmp_path)


RunCli = Callable[..., Run]


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache directory per test: one test's fake nix must not answer another's version."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


@pytest.fixture
def rpbuild(tmp_path: Path) -> RunCli:
    """Run `python -m rpbuild` in a subprocess, exactly as a user would."""
    return cli_runner(tmp_path)


def cli_runner(tmp_path: Path) -> RunCli:
    """`python -m rpbuild` with its state under `tmp_path` (for fixtures of any scope)."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Run:
        full_env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "COLUMNS": "200"}
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-m", "rpbuild", *args],
            cwd=cwd or tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run


def standin_nix_options() -> NixOptions:
    """The stand-in inputs as rpbuild's own nix options (for tests calling rpbuild.nix)."""
    return NixOptions(
        overrides=_standin_inputs(STANDIN / "nixpkgs", STANDIN / "rosenpass"),
        options=_NO_SUBSTITUTERS,
    )


def render_project(root: Path) -> str:
    """Render flake.nix in a project copy and return its path: flake reference."""
    from rpbuild.project import find_project
    from rpbuild.render import render_flake, write_flake

    proj = find_project(root)
    write_flake(proj, render_flake(proj, proj.load_profiles()))
    return f"path:{root}"


GIT_ID = ["-c", "user.name=rpbuild tests", "-c", "user.email=tests@rpbuild.invalid"]


def git(root: Path, *args: str) -> str:
    """Run git in a test repository with a fixed identity."""
    return subprocess.run(
        ["git", *GIT_ID, "-C", str(root), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def commit_all(root: Path, message: str) -> str:
    """Commit everything in a test repository; returns the new commit."""
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def _dangling_images() -> set[str]:
    if shutil.which("docker") is None:
        return set()
    out = subprocess.run(
        ["docker", "image", "ls", "-q", "--no-trunc", "--filter", "dangling=true"],
        capture_output=True,
        text=True,
        check=False,
    )
    return set(out.stdout.split()) if out.returncode == 0 else set()


@pytest.fixture(scope="session", autouse=True)
def _remove_images_this_session_left_dangling() -> Iterator[None]:
    """Rebuilds move tags to new images; the old ones this session made are removed."""
    before = _dangling_images()
    yield
    left = sorted(_dangling_images() - before)
    if left:
        subprocess.run(["docker", "image", "rm", *left], capture_output=True, check=False)
