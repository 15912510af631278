"""The tag scheme of a release: VERSION-PROFILE, VERSION alone for the minimal profile,
an architecture suffix under a manifest list, -SNAPSHOT last; and the check that every
tag is valid before anything is built.
"""

from __future__ import annotations

from collections.abc import Sequence

from rpbuild import reference
from rpbuild.errors import RpbuildError

SNAPSHOT_SUFFIX = "-SNAPSHOT"
#: The tag the `minimal` profile also gets on its own: REPO:VERSION.
DEFAULT_PROFILE = "minimal"
#: OCI architecture of each nix system; also the suffix of per-architecture tags.
ARCH = {"x86_64-linux": "amd64", "aarch64-linux": "arm64"}


def tags_for(version: str, profile: str, *, snapshot: bool) -> list[str]:
    """VERSION-PROFILE, and VERSION alone for the minimal profile; -SNAPSHOT last."""
    suffix = SNAPSHOT_SUFFIX if snapshot else ""
    tags = [f"{version}-{profile}{suffix}"]
    if profile == DEFAULT_PROFILE:
        tags.append(f"{version}{suffix}")
    return tags


def arch_tag(version: str, profile: str, system: str, *, snapshot: bool) -> str:
    """The tag of one architecture's image under a manifest list."""
    suffix = SNAPSHOT_SUFFIX if snapshot else ""
    return f"{version}-{profile}-{ARCH[system]}{suffix}"


def release_tags(
    version: str, profile: str, systems: Sequence[str], *, snapshot: bool
) -> list[str]:
    """Every tag a release pushes for one profile: with several systems, each
    architecture's image has a tag of its own besides the manifest list's."""
    tags = tags_for(version, profile, snapshot=snapshot)
    if len(systems) > 1:
        tags += [arch_tag(version, profile, s, snapshot=snapshot) for s in systems]
    return tags


def check_tags(
    version: str, profiles: Sequence[str], systems: Sequence[str], *, snapshot: bool
) -> None:
    """Every tag the release would push, checked before anything is built: skopeo
    refuses an invalid one only when it comes to it, after earlier profiles were pushed.

    The version is the part a user chooses, so a tag it spoils names the version.
    """
    if len(version) <= reference.TAG_MAX:
        problem = reference.tag_problem(version)
        if problem is not None:
            raise RpbuildError(f"VERSION {version!r}: {problem}")
    tags = [t for p in profiles for t in release_tags(version, p, systems, snapshot=snapshot)]
    longest = max(tags, key=len, default=version)
    suffix = len(longest) - len(version)
    if len(longest) > reference.TAG_MAX and suffix < reference.TAG_MAX:
        raise RpbuildError(
            f"VERSION {version!r}: too long: the tag '{longest}' would have "
            f"{len(longest)} characters, at most {reference.TAG_MAX} "
            f"(a version of up to {reference.TAG_MAX - suffix} characters fits every tag)"
        )
    for tag in tags:
        reference.check_tag(tag)
