"""The refusal to verify or push a non-reproducible image, end to end: no patch of
rpbuild, an image derivation that really differs each time nix builds it.

The project's own template (projects may carry one) wraps each image's stream script in
a derivation that appends the builder's PID to it: a valid script, a different output on
every build, which `nix build --rebuild` reports as not deterministic. A package of
random bytes inside the image would not do: `--rebuild` rebuilds only the image
derivation, whose output names its packages' store paths, not their contents.
Real nix, the stand-ins, a real registry; run under `flock /tmp/rpbuild-docker.lock`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import STANDIN_OVERRIDES, RunCli, commit_all
from tests.integration.test_release import Registry, registry, repo

pytestmark = [pytest.mark.nix, pytest.mark.docker]
__all__ = ["registry", "repo"]  # fixtures: a registry on 127.0.0.1, a committed project

EXPOSED = "builtins.mapAttrs (name: p: p.image) (profilesFor system));"
NONDETERMINISTIC = """builtins.mapAttrs (name: p: builtins.derivation {
          inherit (p.image) name system;
          builder = "/bin/sh";
          args = [ "-c" "{ /bin/cat ${p.image}; echo \\"# built by $$\\"; } > $out; /bin/chmod 555 $out" ];
        }) (profilesFor system));"""


@pytest.fixture
def nondeterministic(repo: Path, rpbuild: RunCli) -> Path:
    template = repo / "templates" / "flake.nix.j2"
    text = template.read_text()
    assert EXPOSED in text, "the template no longer exposes images this way"
    template.write_text(text.replace(EXPOSED, NONDETERMINISTIC))
    assert rpbuild("--project", str(repo), "render").returncode == 0
    commit_all(repo, "a template whose images differ on every build")
    return repo


def _one_error(stderr: str) -> str:
    errors = [ln for ln in stderr.splitlines() if ln.startswith("rpbuild: error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    return errors[0]


def test_verify_and_release_refuse_an_image_that_differs_when_rebuilt(
    nondeterministic: Path, rpbuild: RunCli, registry: Registry, tmp_path: Path
) -> None:
    project = nondeterministic
    verify = rpbuild(
        "--project", str(project), "verify", "--profile", "minimal", *STANDIN_OVERRIDES
    )
    assert verify.returncode == 1, verify.stdout + verify.stderr
    line = _one_error(verify.stderr)
    assert "minimal (x86_64-linux): not reproducible: nix build --rebuild" in line, line
    assert "deterministic" in line, line

    push = f"{registry.host}/nondeterministic/rosenpass"
    report = tmp_path / "report"
    run = rpbuild(
        "--project", str(project), "release", "9.9.9", "--profile", "minimal",
        "--push", push, "--no-tls-verify", "--report", str(report),
        *STANDIN_OVERRIDES, "--allow-override-input",
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    line = _one_error(run.stderr)
    assert "minimal (x86_64-linux) is not reproducible" in line and "nothing was pushed" in line
    assert "nondeterministic/rosenpass" not in registry.catalog()
    assert not report.exists()

    snapshot = rpbuild(
        "--project", str(project), "release", "9.9.9", "--profile", "minimal",
        "--push", push, "--no-tls-verify", "--report", str(report), "--snapshot",
        *STANDIN_OVERRIDES, "--allow-override-input",
    )  # fmt: skip
    assert snapshot.returncode == 0, snapshot.stderr
    data = json.loads((report / "release.json").read_text())
    assert data["verified"] is False
    (image,) = data["images"]
    assert "deterministic" in image["verification"]["reason"]
