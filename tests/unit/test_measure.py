"""rpbuild.measure's pure steps: which profiles to measure, and nix's contents read back
in profile order. The nix calls themselves are tested against the real nix
(tests/integration/test_sizes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpbuild.errors import ExitCode, RpbuildError
from rpbuild.measure import NotBuilt, _contents, _in_profile_order, _with_ancestors
from rpbuild.profiles import Profile, load_profiles

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


@pytest.fixture(scope="module")
def profiles() -> dict[str, Profile]:
    return load_profiles(PROFILES)


def test_a_profile_is_measured_with_its_ancestors_each_once(
    profiles: dict[str, Profile],
) -> None:
    # Ancestors are measured for the parent deltas; a shared one is listed once.
    assert _with_ancestors(profiles, ["debug"]) == ["debug", "with-wireguard", "minimal"]
    assert _with_ancestors(profiles, ["minimal", "debug"]) == [
        "minimal",
        "debug",
        "with-wireguard",
    ]
    assert _with_ancestors(profiles, []) == []


def test_an_unknown_profile_is_refused_by_name(profiles: dict[str, Profile]) -> None:
    with pytest.raises(RpbuildError, match="nope"):
        _with_ancestors(profiles, ["nope"])


def test_contents_are_read_as_strings() -> None:
    evaluated = {"minimal": {"contents": {"rosenpass": "/nix/store/a-rosenpass", "n": 1}}}
    assert _contents(evaluated, "minimal") == {"rosenpass": "/nix/store/a-rosenpass", "n": "1"}


@pytest.mark.parametrize(
    "evaluated",
    [{}, {"minimal": {}}, {"minimal": None}, {"minimal": {"contents": ["x"]}}, None],
)
def test_missing_contents_name_the_profile(evaluated: object) -> None:
    with pytest.raises(RpbuildError) as info:
        _contents(evaluated, "minimal")
    assert str(info.value) == "flake.nix has no contents for profile 'minimal'"


def test_contents_follow_the_profile_order_then_unknown_names_sorted(
    profiles: dict[str, Profile],
) -> None:
    minimal = profiles["minimal"]
    # nix returns the attribute set sorted by name.
    contents = {name: f"/nix/store/x-{name}" for name in sorted(["zz-extra", "aa-extra"])}
    contents |= {pkg.name: f"/nix/store/x-{pkg.name}" for pkg in minimal.packages}
    ordered = _in_profile_order(minimal, dict(sorted(contents.items())))
    assert [name for name, _ in ordered] == [
        *(pkg.name for pkg in minimal.packages),
        "aa-extra",
        "zz-extra",
    ]
    assert all(path == f"/nix/store/x-{name}" for name, path in ordered)


def test_not_built_is_a_failed_check() -> None:
    assert NotBuilt("x").exit_code == ExitCode.CHECK_FAILED
