"""`rpbuild sizes`: evaluate the profiles' contents, build what is missing, then
measure every profile with a single `nix path-info` call."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpbuild import memo, nix
from rpbuild.build import (
    BuildOptions,
    Prepared,
    check_system,
    locked,
    prepare,
    profile_error,
    stage,
)
from rpbuild.errors import ExitCode, NixError, RpbuildError
from rpbuild.fsutil import read_cache, write_cache
from rpbuild.nix import PathInfo
from rpbuild.notify import Notify, quiet
from rpbuild.profiles import Profile, display_path, select
from rpbuild.project import Project
from rpbuild.sizes import (
    ProfileInput,
    SizeReport,
    compute_report,
    loaded_image_sizes,
    select_profiles,
)
from rpbuild.state import (
    hash_parts,
    load_state,
    override_is_pinned,
)


class NotBuilt(RpbuildError):
    """--no-build and some profiles are not in the store."""

    exit_code = ExitCode.CHECK_FAILED


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


@dataclass(frozen=True)
class Measured:
    """The profiles' store paths and their closure, from one staged flake."""

    prepared: Prepared
    flake_ref: str  # the staged flake: valid while `measuring` holds the project lock
    cache_key: str  # what the evaluated contents depend on; for caches of the same kind
    measured: list[str]  # the selected profiles and their ancestors
    selected: list[str]
    fingerprints: dict[str, str]
    contents: dict[str, dict[str, str]]  # profile: package name: store path
    infos: dict[str, PathInfo]  # the union closure, from `nix path-info -r`


@contextmanager
def measuring(
    project: Project,
    names: Sequence[str],
    options: BuildOptions,
    *,
    no_build: bool = False,
    notify: Notify = quiet,
    on_log: Notify | None = None,
) -> Iterator[Measured]:
    """Evaluate the profiles' contents (cached), build what is missing and read their
    closure with one `nix path-info`; the staged flake stays valid inside the block."""
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
        evaluated = cached_eval(
            project.state_dir / f"contents-{options.system}.json",
            key,
            f"{flake_ref}#rpbuild.{options.system}",
            prepared,
            options,
        )
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
        yield Measured(
            prepared=prepared,
            flake_ref=flake_ref,
            cache_key=key,
            measured=measured,
            selected=selected,
            fingerprints=fingerprints,
            contents=contents,
            infos=infos,
        )


def cached_eval(
    cache: Path, key: str, installable: str, prepared: Prepared, options: BuildOptions
) -> Any:
    """`nix eval --json`, kept in cache under key; an override by URL (github:...) may
    move without any local change, so then nothing is cached."""
    cacheable = all(override_is_pinned(u) for _, u in options.nix.overrides)
    evaluated = read_cache(cache, key) if cacheable else None
    if evaluated is None:
        try:
            evaluated = nix.eval_json(installable, options.nix)
        except nix.ProfileEvalError as exc:
            raise profile_error(prepared.profiles, exc) from None
        write_cache(cache, key, evaluated)
    return evaluated


def size_report(
    project: Project,
    names: Sequence[str],
    options: BuildOptions,
    *,
    no_build: bool = False,
    notify: Notify = quiet,
    on_log: Notify | None = None,
) -> SizeReport:
    # The inputs' key before anything is read: recorded with the answer only when it
    # is the same afterwards (nothing was edited meanwhile), see rpbuild/memo.py.
    request = memo.sizes_request(names, options.system)
    before = memo.input_key(project, request, options.nix.overrides)
    with measuring(project, names, options, no_build=no_build, notify=notify, on_log=on_log) as m:
        profiles = m.prepared.profiles
        state, warning = load_state(project.state_dir / "state.json")
        if warning:  # the loaded sizes are left out; `image` rebuilds on it
            notify(f"warning: {warning.removesuffix('; rebuilding')}; loaded sizes not shown")
        references = {name: profiles[name].image.reference for name in m.measured}
        image_sizes = loaded_image_sizes(
            state.images.values(), references, options.system, m.fingerprints
        )
        inputs = [
            ProfileInput(
                name=name,
                packages=_in_profile_order(profiles[name], m.contents[name]),
                extends=profiles[name].extends,
                budget=profiles[name].budget,
                image_size=image_sizes.get(name),
            )
            for name in m.measured
        ]
        report = compute_report(options.system, m.infos, inputs, nix_version=str(nix.nix_version()))
    after = memo.input_key(project, request, options.nix.overrides)
    memo.remember_sizes(
        project,
        before if before == after else None,
        m.selected,
        (
            {
                "name": i.name,
                "packages": [list(pkg) for pkg in i.packages],
                "extends": i.extends,
                "budget": i.budget,
                "reference": references[i.name],
                "fingerprint": m.fingerprints[i.name],
            }
            for i in inputs
        ),
    )
    return select_profiles(report, m.selected)
