"""Every refusal of a release, decided before anything is built or pushed: the pins are
committed and unchanged, the report directory is new, the options fit together, every
tag is valid and, unless it is a snapshot, not yet in the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rpbuild import git, reference, registry
from rpbuild.build import check_system
from rpbuild.errors import RpbuildError
from rpbuild.project import Project
from rpbuild.release import signing
from rpbuild.release.model import ReleaseOptions, ReleaseRefused, release_systems
from rpbuild.release.tags import ARCH, check_tags, release_tags
from rpbuild.render import diff_flake, render_flake


@dataclass(frozen=True)
class Pinned:
    commit: str
    clean: bool
    lock_bytes: bytes
    changes: tuple[str, ...]  # `git status --porcelain` lines (snapshot only)


def _listing(lines: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(line.strip() for line in lines[:limit])
    more = len(lines) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def check_pinned(project: Project, *, snapshot: bool) -> Pinned:
    """Refuse a release that is not built from committed pins; each refusal says why."""
    root = project.root
    if project.builtin:
        raise ReleaseRefused(
            "not in an rpbuild project: a release is built from a git checkout with "
            "profiles/, flake.nix and a committed flake.lock (use --project DIR)"
        )
    if not git.is_work_tree(root):
        raise ReleaseRefused(
            f"{root}: not a git work tree; a release is built from committed files "
            "(commit profiles/, templates/, flake.nix and flake.lock first)"
        )
    commit = git.head_commit(root)
    if commit is None:
        raise ReleaseRefused(f"{root}: the git repository has no commit yet")
    lock = project.lock_path
    if not lock.is_file():
        raise ReleaseRefused(
            f"{lock}: missing; a release is pinned by a committed flake.lock "
            "(create it with `rpbuild lock update` and commit it)"
        )
    if not git.is_committed(root, lock):
        raise ReleaseRefused(
            f"{lock}: not committed; commit it so that the release is pinned to it"
        )
    lock_changes = git.status(root, lock)
    if lock_changes:
        raise ReleaseRefused(
            f"{lock}: has uncommitted changes ({_listing(lock_changes)}); commit them or "
            "restore it with `git checkout -- flake.lock`"
        )
    rendered = render_flake(project, project.load_profiles())
    if diff_flake(project, rendered):
        raise ReleaseRefused(
            f"{project.flake_path}: `rpbuild render --check` fails: it is not what the "
            "profiles and templates produce; run `rpbuild render` and commit flake.nix"
        )
    # rpbuild's own state directory is never part of a release.
    own = (
        (project.state_dir.relative_to(root).as_posix(),)
        if project.state_dir.is_relative_to(root)
        else ()
    )
    changes = git.status(root, exclude=own)
    if changes and not snapshot:
        raise ReleaseRefused(
            f"{root}: working tree not clean ({_listing(changes)}); commit or stash the "
            "changes, or release with --snapshot"
        )
    return Pinned(
        commit=commit, clean=not changes, lock_bytes=lock.read_bytes(), changes=tuple(changes)
    )


def check_lock_unchanged(project: Project, before: bytes) -> None:
    """After the build: nix must not have touched the lock the release is pinned to."""
    lock = project.lock_path
    now = lock.read_bytes() if lock.is_file() else b""
    if now != before or git.status(project.root, lock):
        raise ReleaseRefused(
            f"{lock}: changed during the build; nothing was pushed "
            "(restore it with `git checkout -- flake.lock`)"
        )


def check_report_dir(report: Path | None) -> None:
    """Before anything is asked of git or a registry: the report directory must be new,
    and not below a file. Nothing is created here; StagedReport proves the rest by
    creating the directory under its temporary name before anything is built."""
    if report is None:
        return
    if report.exists() or report.is_symlink():
        raise ReleaseRefused(f"{report}: already exists; a release report is never overwritten")
    ancestor = report.parent
    while not (ancestor.exists() or ancestor.is_symlink()) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise RpbuildError(f"--report {report}: {ancestor} is not a directory")


def check_registry(options: ReleaseOptions, profiles: Sequence[str]) -> None:
    """Before anything is built: the registry answers, and a release never moves a
    published tag (snapshots may). A registry that cannot be reached, trusted or logged
    in to is refused here, not after the build."""
    if options.push is None:
        return
    systems = release_systems(options)
    for profile in profiles:
        for tag in release_tags(options.version, profile, systems, snapshot=options.snapshot):
            ref = registry.docker_ref(options.push, tag)
            found = registry.exists(ref, tls_verify=options.tls_verify)
            if options.snapshot:
                return  # the registry answered; a snapshot may move its tags
            if found:
                raise ReleaseRefused(
                    f"{ref}: already in the registry; a release never overwrites a tag "
                    "(choose a new VERSION, or use --snapshot)"
                )


def check_overrides(options: ReleaseOptions) -> None:
    """A release is what flake.lock pins; an overridden input makes it something else."""
    if options.snapshot or options.allow_override_input or not options.nix.overrides:
        return
    names = ", ".join(dict.fromkeys(name for name, _ in options.nix.overrides))
    raise ReleaseRefused(
        f"--override-input {names}: a release is built from the inputs flake.lock pins; "
        "release with --snapshot, or add --allow-override-input to publish it anyway "
        "(the report records the override)"
    )


def check_options(project: Project, options: ReleaseOptions, profiles: Sequence[str]) -> None:
    """The options on their own, before anything is asked of git, a registry or nix."""
    check_overrides(options)
    if options.push is not None:
        reference.repository(options.push, "--push")
        registry.require_skopeo()
    signing.check(options.sign, options.push)
    systems = release_systems(options)
    for system in systems:
        check_system(project, system)
        if system not in ARCH:
            raise RpbuildError(f"no OCI architecture known for system '{system}'")
    check_tags(options.version, profiles, systems, snapshot=options.snapshot)
