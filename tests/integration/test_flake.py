"""The rendered flake against the real nix, with the stand-in inputs (see tests/standin)."""

from __future__ import annotations

import json
import os
import shutil
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpbuild import nix
from tests.conftest import REPO, RunCli, render_project, standin_nix_options

pytestmark = pytest.mark.nix

# The reference lock (nix wrote it on a networked machine), kept in the repository.
PINNED = REPO / "tests" / "data" / "pinned-inputs.json"
SYSTEMS = ("x86_64-linux", "aarch64-linux")
PROFILES = ("debug", "minimal", "with-wireguard")


def test_every_profile_evaluates_for_both_systems(project: Path) -> None:
    ref = render_project(project)
    evaluated = nix.eval_json(f"{ref}#rpbuild", standin_nix_options())
    assert sorted(evaluated) == sorted(SYSTEMS)
    for system in SYSTEMS:
        assert sorted(evaluated[system]) == sorted(PROFILES)
        for profile in PROFILES:
            item = evaluated[system][profile]
            assert all(p.startswith("/nix/store/") for p in item["contents"].values())
            labels = item["config"]["Labels"]
            assert labels["dev.rpbuild.system"] == system
            assert labels["dev.rpbuild.profile"] == profile
            assert labels["org.opencontainers.image.version"] == "0.2.1-standin"
            assert item["config"]["Entrypoint"] == ["/bin/rpbuild-entrypoint"]
        assert "bash" in evaluated[system]["debug"]["contents"]
        assert "bash" not in evaluated[system]["minimal"]["contents"]
    # Each system gets its own packages: nothing is hard-coded to x86_64-linux.
    assert (
        evaluated["x86_64-linux"]["minimal"]["contents"]["iproute2"]
        != evaluated["aarch64-linux"]["minimal"]["contents"]["iproute2"]
    )
    # Both systems' images evaluate too (their derivations, not only the contents).
    drvs = nix.eval_json(
        f"{ref}#packages",
        standin_nix_options(),
    )
    assert sorted(drvs) == sorted(SYSTEMS)


def test_every_x86_64_profile_builds(project: Path) -> None:
    ref = render_project(project)
    results = nix.build(
        [f"{ref}#packages.x86_64-linux.{p}" for p in PROFILES], standin_nix_options()
    )
    assert len(results) == 3
    for result in results:
        script = Path(result.outputs["out"])
        assert script.read_bytes().startswith(b"#!")


def test_flake_lock_pins_the_reference_revisions() -> None:
    lock = json.loads((REPO / "flake.lock").read_text())
    pinned = json.loads(PINNED.read_text())
    assert lock["version"] == pinned["lock_version"]
    assert lock["nodes"]["root"]["inputs"] == {"nixpkgs": "nixpkgs", "rosenpass": "rosenpass"}
    for name, node in pinned["nodes"].items():
        assert lock["nodes"][name]["locked"] == node["locked"], name
        assert lock["nodes"][name].get("inputs") == node.get("inputs"), name
    assert set(lock["nodes"]) == {*pinned["nodes"], "root"}


def test_nix_accepts_the_lock_without_changing_it(tmp_path: Path) -> None:
    flake = tmp_path / "flake"
    flake.mkdir()
    shutil.copy2(REPO / "flake.nix", flake / "flake.nix")
    shutil.copy2(REPO / "flake.lock", flake / "flake.lock")
    before = (flake / "flake.lock").read_bytes()
    meta = nix.flake_metadata(f"path:{flake}", nix.NixOptions(options=(("substituters", ""),)))
    assert (flake / "flake.lock").read_bytes() == before
    revs = {name: i.rev for name, i in meta.inputs.items()}
    assert revs["nixpkgs"] == "63143ac2c9186be6d9da6035fa22620018c85932"
    assert revs["rosenpass"] == "62aa9b4351536a0bd0eeaae14878e0c3b691b3c2"


# --- values from profiles reach nix as data ---------------------------------------------

# Arbitrary unicode without NUL (Nix strings cannot hold it) and without lone surrogates
# (TOML and UTF-8 cannot); quotes, backslashes, ${, '' and control characters included.
nasty = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    max_size=40,
) | st.sampled_from(
    ["${builtins.currentTime}", "''", "'''${x}", '\\"', "\\${", "a\nb\r\tc", "\x85\u2028\u2029"]
)


def _toml_string(value: str) -> str:
    """A TOML basic string: escape what TOML requires, keep all other characters raw."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _profile_with(value: str, cmd: list[str]) -> str:
    return (
        f"description = {_toml_string(value)}\n"
        "[image]\n"
        f"cmd = [{', '.join(_toml_string(c) for c in cmd)}]\n"
        f"env = {{ VALUE = {_toml_string(value)} }}\n"
        f"labels = {{ {_toml_string('x.' + value)} = {_toml_string(value)} }}\n"
        "[[package]]\n"
        'name = "gnugrep"\n'
        f"description = {_toml_string(value)}\n"
    )


# RPBUILD_HYPOTHESIS_EXAMPLES raises the count for a longer search (each example is a nix eval).
@settings(
    max_examples=int(os.environ.get("RPBUILD_HYPOTHESIS_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=nasty, cmd=st.lists(nasty, max_size=3))
def test_any_string_reaches_nix_exactly(project: Path, value: str, cmd: list[str]) -> None:
    for old in (project / "profiles").glob("*.toml"):
        old.unlink()
    (project / "profiles" / "p.toml").write_text(_profile_with(value, cmd), encoding="utf-8")
    ref = render_project(project)
    config: dict[str, Any] = nix.eval_json(
        f"{ref}#rpbuild.x86_64-linux.p.config", standin_nix_options()
    )
    assert config["Env"] == [f"VALUE={value}"]
    assert config["Cmd"] == cmd
    assert config["Labels"]["x." + value] == value
    assert config["Labels"]["org.opencontainers.image.description"] == value


def test_interpolation_in_a_value_stays_inert(project: Path) -> None:
    minimal = project / "profiles" / "minimal.toml"
    minimal.write_text(
        minimal.read_text()
        + '\n[image.env]\nWHEN = "${builtins.currentTime}"\nQUOTE = "\'\'; abort"\n'
    )
    ref = render_project(project)
    config = nix.eval_json(f"{ref}#rpbuild.x86_64-linux.minimal.config", standin_nix_options())
    assert "WHEN=${builtins.currentTime}" in config["Env"]
    assert "QUOTE=''; abort" in config["Env"]


def test_attribute_injection_is_refused_before_nix(rpbuild: RunCli, project: Path) -> None:
    minimal = project / "profiles" / "minimal.toml"
    minimal.write_text(
        minimal.read_text().replace(
            'attr = "gnugrep"', 'attr = "coreutils; x = builtins.abort \\"x\\""'
        )
    )
    result = rpbuild("render", cwd=project)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "rpbuild: error: profiles/minimal.toml: package 'gnugrep': invalid attribute path"
    )
    assert not (project / "flake.nix").exists()


def test_missing_attribute_is_mapped_back_to_profile_and_package(
    rpbuild: RunCli, project: Path
) -> None:
    minimal = project / "profiles" / "minimal.toml"
    minimal.write_text(minimal.read_text().replace('attr = "gnugrep"', 'attr = "gnugrepp"'))
    from tests.conftest import STANDIN_OVERRIDES

    result = rpbuild("sizes", "--profile", "minimal", *STANDIN_OVERRIDES, cwd=project)
    assert result.returncode != 0
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("rpbuild: error:")]
    assert len(errors) == 1, result.stderr
    # The file that lists the package, whichever profile nix evaluated first.
    assert errors[0].startswith("rpbuild: error: profiles/minimal.toml: profile '")
    assert errors[0].endswith("package 'gnugrep': nixpkgs has no attribute 'gnugrepp'")
    assert "Traceback" not in result.stderr


def test_printable_ascii_round_trip_in_one_go(project: Path) -> None:
    """Every printable ASCII character, once, in every kind of value."""
    value = string.printable
    (project / "profiles" / "p.toml").write_text(_profile_with(value, [value]), encoding="utf-8")
    ref = render_project(project)
    config = nix.eval_json(f"{ref}#rpbuild.x86_64-linux.p.config", standin_nix_options())
    assert config["Env"] == [f"VALUE={value}"]
    assert config["Cmd"] == [value]


def test_an_attribute_that_is_not_a_package_is_named(rpbuild: RunCli, project: Path) -> None:
    minimal = project / "profiles" / "minimal.toml"
    minimal.write_text(minimal.read_text().replace('attr = "gnugrep"', 'attr = "runtimeShell"'))
    from tests.conftest import STANDIN_OVERRIDES

    result = rpbuild("image", "--tag", "rpbuild-test/never:x", *STANDIN_OVERRIDES, cwd=project)
    assert result.returncode != 0
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("rpbuild: error:")]
    assert errors == [
        "rpbuild: error: profiles/minimal.toml: profile 'minimal', package 'gnugrep': "
        "nixpkgs attribute 'runtimeShell' is not a package"
    ], result.stderr
