"""The release tag scheme and the check that every tag is valid before anything is built."""

from __future__ import annotations

import pytest

from rpbuild.errors import RpbuildError
from rpbuild.release import tags


def test_tags_for_minimal_gets_the_bare_version_and_snapshot_comes_last() -> None:
    assert tags.tags_for("1.2.0", "minimal", snapshot=False) == ["1.2.0-minimal", "1.2.0"]
    assert tags.tags_for("1.2.0", "debug", snapshot=False) == ["1.2.0-debug"]
    assert tags.tags_for("1.2.0", "minimal", snapshot=True) == [
        "1.2.0-minimal-SNAPSHOT",
        "1.2.0-SNAPSHOT",
    ]
    assert tags.arch_tag("1.2.0", "debug", "aarch64-linux", snapshot=True) == (
        "1.2.0-debug-arm64-SNAPSHOT"
    )


TWO = ("x86_64-linux", "aarch64-linux")


def test_release_tags_include_each_architecture_with_several_systems() -> None:
    assert tags.release_tags("1.0", "debug", TWO[:1], snapshot=False) == ["1.0-debug"]
    assert tags.release_tags("1.0", "minimal", TWO, snapshot=True) == [
        "1.0-minimal-SNAPSHOT",
        "1.0-SNAPSHOT",
        "1.0-minimal-amd64-SNAPSHOT",
        "1.0-minimal-arm64-SNAPSHOT",
    ]


def test_a_version_that_fits_only_without_per_arch_tags_is_refused_naming_it() -> None:
    """With several systems the longest tag is VERSION-PROFILE-ARCH-SNAPSHOT; it once got
    through the check and failed in skopeo after other profiles were pushed."""
    profiles = ["debug", "with-wireguard"]
    # "-with-wireguard-SNAPSHOT" is 24 characters: 104 fit, and one system passes.
    version = "1." + "0" * 102
    tags.check_tags(version, profiles, TWO[:1], snapshot=True)
    # "-with-wireguard-arm64-SNAPSHOT" is 30: 98 fit.
    with pytest.raises(RpbuildError) as info:
        tags.check_tags(version, profiles, TWO, snapshot=True)
    assert info.value.message == (
        f"VERSION '{version}': too long: the tag '{version}-with-wireguard-amd64-SNAPSHOT' "
        "would have 134 characters, at most 128 (a version of up to 98 characters fits every tag)"
    )
    tags.check_tags(version[:98], profiles, TWO, snapshot=True)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("1.2.0 foo", "VERSION '1.2.0 foo': ' ' is not allowed in a tag"),
        ("1.2/0", "VERSION '1.2/0': '/' is not allowed in a tag"),
        ("-1.2.0", "VERSION '-1.2.0': a tag starts with a letter, a digit or '_'"),
        ("", "VERSION '': must not be empty"),
    ],
)
def test_a_version_that_spoils_every_tag_is_named(version: str, message: str) -> None:
    with pytest.raises(RpbuildError) as info:
        tags.check_tags(version, ["minimal"], TWO, snapshot=False)
    assert info.value.message.startswith(message)
