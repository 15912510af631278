"""`rpbuild sbom` against the real nix, on the stand-in inputs: the document is valid
CycloneDX 1.6 and lists exactly the closure `nix path-info -r` reports, for every profile."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rpbuild import sbom
from tests.conftest import STANDIN, STANDIN_OVERRIDES, RunCli

pytestmark = [
    pytest.mark.nix,
    pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed"),
]

NIX = ["nix", "--extra-experimental-features", "nix-command flakes"]
PROFILES = ("minimal", "with-wireguard", "debug")


def nix_json(*args: str) -> Any:
    proc = subprocess.run([*NIX, *args], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def closure_by_nix(project: Path, profile: str) -> dict[str, dict[str, Any]]:
    """The image's closure as nix itself reports it: the profile's contents (from the
    rendered flake, evaluated by nix here) through `nix path-info -r`."""
    contents = nix_json(
        "eval",
        "--json",
        *STANDIN_OVERRIDES,
        f"path:{project}#rpbuild.x86_64-linux.{profile}.contents",
    )
    data = nix_json("path-info", "--json", "-r", *contents.values())
    items = data if isinstance(data, list) else [{"path": k, **v} for k, v in data.items()]
    return {item["path"]: item for item in items}


@pytest.mark.parametrize("profile", PROFILES)
def test_components_are_exactly_the_closure_nix_reports(
    rpbuild: RunCli, project: Path, tmp_path: Path, profile: str
) -> None:
    out = tmp_path / f"{profile}.cdx.json"
    done = rpbuild(
        "sbom", "-q", "--profile", profile, "-o", str(out), *STANDIN_OVERRIDES, cwd=project
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert sbom.validation_errors(text) is None
    doc = json.loads(text)
    assert doc["specVersion"] == "1.6"
    closure = closure_by_nix(project, profile)
    components = {c["bom-ref"]: c for c in doc["components"]}
    assert sorted(components) == sorted(closure)
    for path, item in closure.items():
        comp = components[path]
        assert {"alg": "SHA-256", "content": sbom.sha256_hex(item["narHash"])} in comp["hashes"]
        edges = {d["ref"]: set(d.get("dependsOn", [])) for d in doc["dependencies"]}
        assert edges[path] == set(item["references"]) - {path}
    root = doc["metadata"]["component"]
    props = {p["name"]: p["value"] for p in root["properties"]}
    assert props["rpbuild:profile"] == profile
    assert props["rpbuild:image_id"].startswith("sha256:")
    assert props["rpbuild:input:nixpkgs:override"] == f"path:{STANDIN / 'nixpkgs'}"


def test_metadata_and_licences_come_from_the_derivations(rpbuild: RunCli, project: Path) -> None:
    done = rpbuild("sbom", "-q", "--profile", "with-wireguard", *STANDIN_OVERRIDES, cwd=project)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    by_name = {c["name"]: c for c in doc["components"]}
    wg = by_name["wireguard-tools"]
    assert wg["licenses"] == [{"license": {"id": "GPL-2.0-only"}}]
    assert wg["purl"] == f"pkg:nix/wireguard-tools@{wg['version']}"
    assert wg["type"] == "application"
    # The metadata evaluation is cached with the contents: a second run evaluates nothing.
    cached = list((project / ".rpbuild").glob("meta-x86_64-linux.json"))
    assert cached, "the metadata evaluation was not cached"
    again = rpbuild("sbom", "-q", "--profile", "with-wireguard", *STANDIN_OVERRIDES, cwd=project)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["components"] == doc["components"]


def test_an_unknown_profile_is_one_line(rpbuild: RunCli, project: Path) -> None:
    done = rpbuild("sbom", "--profile", "nope", *STANDIN_OVERRIDES, cwd=project)
    assert done.returncode != 0
    assert "nope" in done.stderr and "Traceback" not in done.stderr
