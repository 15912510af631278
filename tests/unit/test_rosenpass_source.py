"""rpbuild.toml's rosenpass_source: which packages a profile gets, and what is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rpbuild.errors import ProfileError, ProjectError
from rpbuild.project import find_project

REPO = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    shutil.copy2(REPO / "flake.lock", tmp_path / "flake.lock")
    return tmp_path


def _settings(project: Path, text: str) -> None:
    (project / "rpbuild.toml").write_text(text)


def test_default_is_nixpkgs_rosenpass_and_rosenpass_tools(project: Path) -> None:
    proj = find_project(project)
    assert proj.settings.rosenpass_source == "nixpkgs"
    minimal = proj.load_profiles()["minimal"]
    by_name = {p.name: p for p in minimal.packages}
    assert (by_name["rosenpass"].source, by_name["rosenpass"].attr) == ("nixpkgs", ("rosenpass",))
    tools = by_name["rosenpass-tools"]
    assert (tools.source, tools.attr, tools.required) == ("nixpkgs", ("rosenpass-tools",), True)
    assert minimal.spec()["rosenpass"] == {"package": "rosenpass", "source": "nixpkgs"}
    # Profiles that extend minimal get the same two packages, once.
    debug = proj.load_profiles()["debug"]
    assert [p.name for p in debug.packages].count("rosenpass-tools") == 1
    assert not any(p.source == "rosenpass" for p in debug.packages)


def test_flake_source_keeps_the_profile_as_written(project: Path) -> None:
    _settings(project, 'rosenpass_source = "flake"\n')
    minimal = find_project(project).load_profiles()["minimal"]
    names = [p.name for p in minimal.packages]
    assert "rosenpass-tools" not in names
    assert minimal.spec()["rosenpass"] == {"package": "rosenpass", "source": "flake"}


def test_the_source_changes_the_definition_and_so_the_fingerprint(project: Path) -> None:
    nixpkgs = find_project(project).load_profiles()["minimal"].definition()
    _settings(project, 'rosenpass_source = "flake"\n')
    flake = find_project(project).load_profiles()["minimal"].definition()
    assert nixpkgs != flake


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('rosenpass_source = "github"\n', "rosenpass_source must be one of 'nixpkgs', 'flake'"),
        ("rosenpass_source = 1\n", "rosenpass_source must be one of"),
        (
            "rosenpass_follows_nixpkgs = true\n",
            "rosenpass_follows_nixpkgs applies only to rosenpass_source = 'flake'",
        ),
    ],
)
def test_bad_settings_name_the_file(project: Path, text: str, message: str) -> None:
    _settings(project, text)
    with pytest.raises(ProjectError) as info:
        find_project(project)
    assert str(info.value).startswith(f"{project / 'rpbuild.toml'}: ")
    assert message in str(info.value)


def test_a_flake_output_nixpkgs_lacks_is_refused_by_name(project: Path) -> None:
    minimal = project / "profiles" / "minimal.toml"
    minimal.write_text(
        minimal.read_text().replace('attr = "rosenpass"', 'attr = "rosenpass-static"')
    )
    with pytest.raises(ProfileError) as info:
        find_project(project).load_profiles()
    message = str(info.value)
    assert "minimal.toml: package 'rosenpass': the rosenpass flake's 'rosenpass-static'" in message
    assert "rosenpass_source = 'flake'" in message


def test_a_package_named_like_the_added_tools_is_refused(project: Path) -> None:
    debug = project / "profiles" / "debug.toml"
    debug.write_text(debug.read_text() + '\n[[package]]\nname = "rosenpass-tools"\nattr = "bash"\n')
    with pytest.raises(ProfileError) as info:
        find_project(project).load_profiles()
    assert "already has one; rename it" in str(info.value)
