"""build.prepare's render cache: keyed on the bytes that were parsed, never a second read."""

from __future__ import annotations

from pathlib import Path

from rpbuild.build import _render_inputs
from rpbuild.profiles import load_profiles
from rpbuild.project import find_project


def test_the_render_key_hashes_the_profile_bytes_that_were_parsed(project: Path) -> None:
    """An edit between parsing and hashing used to tie the new bytes to a flake rendered
    from the old ones, and the cache then trusted that stale flake.nix for good."""
    proj = find_project(project)
    profiles = load_profiles(proj.profiles_dir)
    parsed = (project / "profiles" / "minimal.toml").read_bytes()
    (project / "profiles" / "minimal.toml").write_text("# edited meanwhile\n")
    assert _render_inputs(proj, profiles)["profile:minimal.toml"] == parsed
