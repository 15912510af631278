"""`rpbuild sizes`: evaluate the profiles' contents, build what is missing, then
measure every profile with a single `nix path-info` call."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rpbuild import nix
from rpbuild.build import (
    BuildOptions,
    Notify,
    check_system,
    locked,
    prepare,
    profile_error,
    quiet,
    stage,
)
from rpbuild.errors import NixError, RpbuildError
from rpbuild.fsutil import read_cache, write_cache
from rpbuild.profiles import Profile, display_path, select
from rpbuild.project import Project
from rpbuild.sizes import ProfileInput, SizeReport, compute_report
from rpbuild.state import (
    ImageRecord,
    hash_parts,
    load_state,
    override_is_pinned,
)


class NotBuilt(RpbuildError):
    """--no-build and some profiles are not in the store."""

    exit_code = 1


def _with_ancestors(profiles: dict[str, Profile], names: Sequence[str]) -> list[str]:
    wanted: list[str] = []
    for name in names:
        for member in select(profiles, name).chain:
            if member not in wanted:
                wanted.append(member)
    return wanted


def _contents(evaluated: Any, profile: str) -> dict[str, str]:
    try:
        contents = evaluated[profile]["contents"]
        return {str(k): str(v) for k, v in contents.items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise RpbuildError(f"flake.nix has no contents for profile '{profile}'") from exc


def _in_profile_order(profile: Profile, contents: dict[str, str]) -> list[tuple[str, str]]:
    """nix gives the contents sorted by name; reports list them as the profile does."""
    order = {pkg.name: i for i, pkg in enumerate(profile.packages)}
    return sorted(contents.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))


# Engines in the order their record is preferred when one profile is loaded into both.
ENGINE_PREFERENCE = ("docker", "podman")


def loaded_image_sizes(
    records: Iterable[ImageRecord],
    profiles: Mapping[str, Profile],
    system: str,
    fingerprints: Mapping[str, str],
) -> dict[str, int]:
    """The loaded image size per profile, from loads of exactly this definition.

    One profile can have several such records (docker and podman, several --tag
    references), and their sizes differ (each engine counts its own way). The one
    shown must not depend on the order of the state file: the record for the
    profile's own reference wins, then docker over podman, then the first reference
    and engine by name.
    """
    best: dict[str, tuple[tuple[bool, int, str, str], int]] = {}
    for rec in records:
        profile = profiles.get(rec.profile)
        if profile is None or rec.system != system:
            continue
        if rec.fingerprint != fingerprints.get(rec.profile):
            continue
        engine_rank = (
            ENGINE_PREFERENCE.index(rec.engine)
            if rec.engine in ENGINE_PREFERENCE
            else len(ENGINE_PREFERENCE)
        )
        rank = (rec.reference != profile.image.reference, engine_rank, rec.reference, rec.engine)
        if rec.profile not in best or rank < best[rec.profile][0]:
            best[rec.profile] = (rank, rec.size)
    return {name: size for name, (_, size) in sorted(best.items())}


def size_report(
    project: Project,
    names: Sequence[str],
    options: BuildOptions,
    *,
    no_build: bool = False,
    notify: Notify = quiet,
    on_log: Callable[[str], None] | None = None,
) -> SizeReport:
    check_system(project, options.system)
    with locked(project, notify):
        prepared = prepare(project, notify)
        profiles = prepared.profiles
        selected = list(names) or list(profiles)
        for name in selected:
            select(profiles, name)
        measured = _with_ancestors(profiles, selected)
        # Staged with their fingerprints, the images built here are the very derivations
        # `rpbuild image` and `rpbuild release` build: nothing is built twice.
        fingerprints = {
            name: prepared.fingerprint(profiles[name], options.system, options.nix)
            for name in measured
        }
        flake_ref = stage(prepared, {options.system: fingerprints})
        # Which store paths a profile is made of depends only on the lock, the rendered
        # flake, the system and the overrides; evaluating nixpkgs costs seconds, so the
        # answer is kept until one of those changes.
        cache = project.state_dir / f"contents-{options.system}.json"
        key = hash_parts(
            {
                "lock": prepared.lock_bytes,
                "flake": project.flake_path.read_bytes(),
                "system": options.system.encode(),
                "overrides": "\n".join(
                    f"{n}={ident}" for n, ident in prepared.override_ids(options.nix)
                ).encode(),
            }
        )
        # An override by URL (github:...) may move without any local change: no cache then.
        cacheable = all(override_is_pinned(u) for _, u in options.nix.overrides)
        evaluated = read_cache(cache, key) if cacheable else None
        if evaluated is None:
            try:
                evaluated = nix.eval_json(f"{flake_ref}#rpbuild.{options.system}", options.nix)
            except nix.ProfileEvalError as exc:
                raise profile_error(profiles, exc) from None
            write_cache(cache, key, evaluated)
        contents = {name: _contents(evaluated, name) for name in measured}

        def build_missing(missing: Sequence[str]) -> None:
            if no_build:
                raise NotBuilt(
                    f"not built for {options.system}: {', '.join(missing)} "
                    "(run without --no-build, or `rpbuild image --profile NAME`)"
                )
            notify(f"building {', '.join(missing)} for {options.system}")
            try:
                nix.build(
                    [f"{flake_ref}#packages.{options.system}.{name}" for name in missing],
                    options.nix,
                    on_log=on_log,
                )
            except nix.ProfileEvalError as exc:
                raise profile_error(profiles, exc) from None
            except nix.BuildFailed as exc:
                where = [display_path(profiles[name].path) for name in missing]
                exc.message = f"{', '.join(where)}: {exc.message}"
                raise

        missing = [
            name
            for name in measured
            if any(not Path(path).exists() for path in contents[name].values())
        ]
        if missing:
            build_missing(missing)
        roots = sorted({path for name in measured for path in contents[name].values()})
        # A path on disk is not always a valid one (a failed or interrupted build can
        # leave its output behind): nix names it, and the profiles holding it are built.
        # Each round builds profiles not built in an earlier round, so this ends.
        rebuilt: set[str] = set()
        while True:
            try:
                infos = nix.path_info(roots, options.nix, recursive=True, closure_size=True)
                break
            except NixError as exc:
                invalid = nix.invalid_path(exc)
                stale = [n for n in measured if invalid in contents[n].values()]
                if invalid is None or not stale or rebuilt.issuperset(stale):
                    raise
                rebuilt.update(stale)
                build_missing(stale)

        state, warning = load_state(project.state_dir / "state.json")
        if warning:  # the loaded sizes are left out; `image` rebuilds on it
            notify(f"warning: {warning.removesuffix('; rebuilding')}; loaded sizes not shown")
        image_sizes = loaded_image_sizes(
            state.images.values(), profiles, options.system, fingerprints
        )
        inputs = [
            ProfileInput(
                name=name,
                packages=_in_profile_order(profiles[name], contents[name]),
                extends=profiles[name].extends,
                budget=profiles[name].budget,
                image_size=image_sizes.get(name),
            )
            for name in measured
        ]
        report = compute_report(options.system, infos, inputs, nix_version=str(nix.nix_version()))
    return replace(report, profiles=tuple(p for p in report.profiles if p.name in selected))
