"""The image pipeline: render, fingerprint, build with nix, load into the engine.

Kept apart from the CLI so that `image`, `up`, `sizes` and `release` share one
path to an image, and apart from nix.py/engine.py so those stay one-operation
wrappers.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rpbuild import TEMPLATE_VERSION, __version__, lockfile, memo, nix, reference
from rpbuild import engine as engines
from rpbuild.errors import EngineError, Interrupted, ProfileError, ProjectError, RpbuildError
from rpbuild.fsutil import is_stream_script, make_dirs, sweep_temporaries, write_if_changed
from rpbuild.memo import ImageResult
from rpbuild.notify import Notify, quiet
from rpbuild.profiles import Profile, display_path, name_length_problem, select
from rpbuild.project import SETTINGS_FILE, SYSTEMS, Project
from rpbuild.render import ENTRYPOINT_TEMPLATE, FLAKE_TEMPLATE, render_flake, write_flake
from rpbuild.state import (
    ImageRecord,
    State,
    fingerprint,
    hash_parts,
    load_state,
    local_path,
    override_identity,
    override_is_pinned,
    project_lock,
    remember_render,
    render_is_current,
    save_state,
)

FINGERPRINT_LABEL = memo.FINGERPRINT_LABEL
BUILD_INFO = "rpbuild-build.json"


@dataclass(frozen=True)
class BuildOptions:
    system: str = "x86_64-linux"
    engine: str | None = None
    tag: str | None = None
    force: bool = False
    nix: nix.NixOptions = field(default_factory=nix.NixOptions)


@dataclass(frozen=True)
class Prepared:
    """A project rendered and staged for nix: what every nix-using command needs."""

    project: Project
    profiles: dict[str, Profile]
    rendered: bool  # flake.nix was stale and has been rewritten
    templates: dict[str, str]
    lock_bytes: bytes
    lock_inputs: tuple[str, ...]  # every input path in the lock (`rosenpass/nixpkgs`)
    _override_ids: dict[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def override_ids(self, options: nix.NixOptions) -> tuple[tuple[str, str], ...]:
        """The overrides, checked and named by what they stand for, once per run: a
        local checkout is digested once however many profiles are fingerprinted."""
        key = options.overrides
        if key not in self._override_ids:
            check_overrides(self.lock_inputs, options)
            self._override_ids[key] = tuple((n, override_identity(u)) for n, u in key)
        return self._override_ids[key]

    def fingerprint(self, profile: Profile, system: str, options: nix.NixOptions) -> str:
        """The image's fingerprint; every nix-using command asks for it before nix
        runs, so the overrides are checked here."""
        return fingerprint(
            lock_bytes=self.lock_bytes,
            profile_spec=profile.definition(),
            system=system,
            templates=self.templates,
            follows=self.project.settings.rosenpass_follows_nixpkgs,
            override_ids=self.override_ids(options),
        )


def reference_for(profile: Profile, tag: str | None) -> str:
    """The image reference to build: --tag when given (checked, named in errors)."""
    if tag is None:
        return profile.image.reference  # checked when the profile was read
    # The limits nix's store names and the engine set, named before the grammar's own.
    name = tag.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    if (problem := name_length_problem(name)) is not None:
        raise ProfileError(f"--tag: image reference too long: {problem}")
    return str(reference.image_tag(tag, profile.image.tag, "--tag"))


def check_overrides(inputs: Sequence[str], options: nix.NixOptions) -> None:
    """Refuse an --override-input nix would accept silently or reject obscurely.

    nix ignores an override of an input the flake does not have, and reports a local
    path without flake.nix by its copy in the store.
    """
    for name, url in options.overrides:
        if not name.strip("/"):
            raise ProjectError(f"--override-input: empty input name (before {url!r})")
        if not url.strip():
            raise ProjectError(f"--override-input {name}: empty URL")
        top, _, nested = name.strip("/").partition("/")
        direct = [i for i in inputs if "/" not in i]
        if top not in direct:
            raise ProjectError(
                f"--override-input {name}: the flake has no input '{top}' "
                f"(its inputs: {', '.join(direct)})"
            )
        if nested and name.strip("/") not in inputs:
            theirs = [i.removeprefix(f"{top}/") for i in inputs if i.startswith(f"{top}/")]
            raise ProjectError(
                f"--override-input {name}: flake.lock has no input '{nested}' under '{top}' "
                f"({top}'s inputs: {', '.join(theirs) or 'none'})"
            )
        local = local_path(url)
        if local is not None:
            if local.exists() and not local.is_dir():
                raise ProjectError(
                    f"--override-input {name} {url}: not a directory (name the directory "
                    "that holds flake.nix)"
                )
            if not local.is_dir():
                raise ProjectError(f"--override-input {name} {url}: no such directory")
            if not (local / "flake.nix").is_file():
                raise ProjectError(f"--override-input {name} {url}: no flake.nix in {local}")


def check_system(project: Project, system: str) -> None:
    if system not in SYSTEMS:
        raise ProjectError(f"unknown system '{system}' (supported: {', '.join(SYSTEMS)})")
    if system not in project.settings.systems:
        raise ProjectError(
            f"system '{system}' is not enabled in rpbuild.toml "
            f"(enabled: {', '.join(project.settings.systems)})"
        )


def _render_inputs(project: Project, profiles: Mapping[str, Profile]) -> dict[str, bytes]:
    """Everything flake.nix is rendered from, as bytes."""
    parts = {f"profile:{p.path.name}": p.source for p in profiles.values()}
    for name in (FLAKE_TEMPLATE, ENTRYPOINT_TEMPLATE):
        parts[f"template:{name}"] = (project.templates_dir / name).read_bytes()
    settings = project.root / SETTINGS_FILE
    parts["settings"] = settings.read_bytes() if settings.is_file() else b""
    parts["rpbuild"] = f"{__version__}/{TEMPLATE_VERSION}/{project.builtin}".encode()
    return parts


def prepare(project: Project, notify: Notify = quiet) -> Prepared:
    """Load profiles, re-render flake.nix when stale, and read the lock."""
    profiles = project.load_profiles()
    lock_path = project.require_lock()
    lock_bytes = lock_path.read_bytes()
    lock = lockfile.check(lock_path, lock_bytes)
    inputs = _render_inputs(project, profiles)
    key = hash_parts(inputs)
    changed = False
    if not render_is_current(project.state_dir, key, project.flake_path):
        changed = write_flake(project, render_flake(project, profiles))
        remember_render(project.state_dir, key, project.flake_path)
    if changed:
        notify(f"{project.flake_path}: was stale, re-rendered from the profiles")
    templates = {
        name: inputs[f"template:{name}"].decode() for name in (FLAKE_TEMPLATE, ENTRYPOINT_TEMPLATE)
    }
    return Prepared(
        project=project,
        profiles=profiles,
        rendered=changed,
        templates=templates,
        lock_bytes=lock_bytes,
        lock_inputs=tuple(lockfile.input_paths(lock)),
    )


def stage(
    prepared: Prepared,
    fingerprints: Mapping[str, Mapping[str, str]],
    references: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """Copy flake.nix and flake.lock into a private directory and return its path: URL.

    A `path:` flake sees exactly these files, whether or not the project is a git
    checkout with flake.nix committed, and nix copies only them into the store.
    references ({system: {profile: "name:tag"}}) names images other than their
    profile's default, so that they load under that name (see build_image).
    """
    project = prepared.project
    stage_dir = project.state_dir / "flake"
    make_dirs(stage_dir)
    write_if_changed(stage_dir / "flake.nix", project.flake_path.read_bytes())
    write_if_changed(stage_dir / "flake.lock", prepared.lock_bytes)
    info: dict[str, Any] = {
        "fingerprints": {s: dict(sorted(p.items())) for s, p in sorted(fingerprints.items())}
    }
    if references:
        info["references"] = {
            system: {name: _name_and_tag(ref) for name, ref in sorted(refs.items())}
            for system, refs in sorted(references.items())
        }
    write_if_changed(stage_dir / BUILD_INFO, json.dumps(info, indent=2, sort_keys=True) + "\n")
    return f"path:{stage_dir.resolve()}"


def _name_and_tag(reference: str) -> dict[str, str]:
    """Split a checked NAME:TAG reference (the name may hold a registry host:port)."""
    name, tag = reference.rsplit(":", 1)
    return {"name": name, "tag": tag}


@contextlib.contextmanager
def locked(project: Project, notify: Notify = quiet) -> Iterator[None]:
    """One rpbuild at a time in a project (they share the staged flake and the state)."""
    with project_lock(
        project.state_dir / "lock",
        on_wait=lambda: notify("another rpbuild is running in this project; waiting for it"),
    ):
        # A run killed mid-write (SIGKILL) leaves its temporary file; the state and the
        # staged flake are written only under this lock, so what is there now is stale.
        for directory in (project.state_dir, project.state_dir / "flake"):
            sweep_temporaries(directory)
        yield


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_image(
    project: Project,
    profile_name: str,
    options: BuildOptions,
    *,
    notify: Notify = quiet,
    on_log: Notify | None = None,
) -> ImageResult:
    """Build one profile's image and load it, unless the engine already holds it.

    The answer is recorded for repeat runs (rpbuild/memo.py) under the key of the
    inputs as they were before and still are after: an edit meanwhile records nothing.
    """
    request = memo.image_request(profile_name, options.system, options.engine, options.tag)
    before = memo.input_key(project, request, options.nix.overrides)
    result = _build_image(project, profile_name, options, notify=notify, on_log=on_log)
    if before is not None and before == memo.input_key(project, request, options.nix.overrides):
        binary = engines.detect(options.engine).binary
        memo.remember_image(project, before, result, binary)
    return result


def _build_image(
    project: Project,
    profile_name: str,
    options: BuildOptions,
    *,
    notify: Notify = quiet,
    on_log: Notify | None = None,
) -> ImageResult:
    started = time.monotonic()
    check_system(project, options.system)
    with locked(project, notify):
        prepared = prepare(project, notify)
        profile = select(prepared.profiles, profile_name)
        fp = prepared.fingerprint(profile, options.system, options.nix)
        engine = engines.detect(options.engine)
        reference = reference_for(profile, options.tag)
        state_path = project.state_dir / "state.json"
        state, warning = load_state(state_path)
        if warning:
            notify(f"warning: {warning}")
        key = ImageRecord.key_for(engine.name, options.system, reference)
        record = state.images.get(key)

        def result(info: engines.ImageInfo, out_path: str, *, up_to_date: bool) -> ImageResult:
            return ImageResult(
                profile=profile.name,
                system=options.system,
                engine=engine.name,
                reference=reference,
                image_id=info.id,
                size=info.size,
                seconds=time.monotonic() - started,
                up_to_date=up_to_date,
                fingerprint=fp,
                out_path=out_path,
                rendered=prepared.rendered,
            )

        def still_loaded() -> engines.ImageInfo | None:
            if options.force or record is None or record.fingerprint != fp:
                return None
            info = engines.inspect(engine, reference)
            if info is not None and info.labels.get(FINGERPRINT_LABEL) == fp:
                return info
            notify(f"{reference}: no longer in {engine.name}; rebuilding")
            return None

        # An override that can move (a branch, a repository URL) is only resolved by
        # nix: then nix builds (instant when nothing moved) and the load is skipped
        # when it gives the recorded build.
        moving = [n for n, url in options.nix.overrides if not override_is_pinned(url)]
        if not moving and (info := still_loaded()) is not None:
            assert record is not None
            return result(info, record.out_path, up_to_date=True)
        if moving and record is not None and record.fingerprint == fp and not options.force:
            notify(f"--override-input {', '.join(moving)} may have moved; asking nix")

        engines.ensure_running(engine)
        # Another name is built into the image itself: loading it never moves the
        # profile's default tag, which another project or run may be using. A template
        # from before --tag cannot do that; rpbuild 0.1 has no such projects, so it is
        # refused rather than served by a second load-and-retag path.
        default = profile.image.reference
        if reference != default and "references" not in prepared.templates[FLAKE_TEMPLATE]:
            raise ProjectError(
                f"{prepared.project.templates_dir / FLAKE_TEMPLATE}: predates --tag support "
                "(it cannot name the image); update it from `rpbuild init`"
            )
        flake_ref = stage(
            prepared,
            {options.system: {profile.name: fp}},
            {options.system: {profile.name: reference}} if reference != default else None,
        )
        installable = f"{flake_ref}#packages.{options.system}.{profile.name}"
        notify(f"building {profile.name} for {options.system}")
        try:
            results = nix.build([installable], options.nix, on_log=on_log)
        except nix.ProfileEvalError as exc:
            raise profile_error(prepared.profiles, exc) from None
        except nix.BuildFailed as exc:
            exc.message = f"{display_path(profile.path)}: {exc.message}"
            raise
        out_path = results[0].outputs["out"]
        if moving and record is not None and record.out_path == out_path:
            info = still_loaded()
            if info is not None and info.id == engines.normalise_id(record.image_id):
                return result(info, out_path, up_to_date=True)
        notify(f"loading {reference} into {engine.name}")
        out = Path(out_path)
        previous = engines.inspect(engine, reference)
        # The intent first: the record of what the reference names goes before the
        # load may move it, so that a run killed meanwhile (SIGKILL: no cleanup) leaves
        # a state that claims nothing false, and the next run rebuilds.
        replaced = state.images.pop(key, None)
        if replaced is not None:
            save_state(state_path, state)
        try:
            if is_stream_script(out):
                loaded = engines.load_stream(engine, [out_path])
            else:
                loaded = engines.load_archive(engine, out)
        except BaseException as exc:
            if isinstance(exc, Interrupted) and _undo_load(engine, reference, previous, fp):
                exc.message += f"; {reference} is the previous image again"
            _keep_record(engine, state_path, state, replaced)
            raise
        info = engines.inspect(engine, reference)
        if info is None:
            raise EngineError(
                f"{reference}: {engine.name} loaded the image as {', '.join(loaded) or '?'}; "
                f"does {prepared.project.templates_dir / FLAKE_TEMPLATE} name images by the "
                "build info's references?"
            )
        if info.labels.get(FINGERPRINT_LABEL) != fp:
            raise EngineError(
                f"{reference}: the loaded image does not carry fingerprint {fp[:12]}; "
                "is flake.nix from an older rpbuild? run `rpbuild render`"
            )
        state.images[key] = ImageRecord(
            profile=profile.name,
            system=options.system,
            engine=engine.name,
            reference=reference,
            fingerprint=fp,
            image_id=info.id,
            out_path=out_path,
            size=info.size,
            built_at=now_utc(),
        )
        save_state(state_path, state)
        return result(info, out_path, up_to_date=False)


def _keep_record(
    engine: engines.Engine, state_path: Path, state: State, record: ImageRecord | None
) -> None:
    """After a failed load, the record taken out for it goes back if the reference
    still names the image it records (else the next run rebuilds)."""
    if record is None:
        return
    with contextlib.suppress(RpbuildError):
        now = engines.inspect(engine, record.reference)
        if now is not None and now.id == engines.normalise_id(record.image_id):
            state.images[record.key] = record
            save_state(state_path, state)


#: How long an interrupted load is watched for the daemon finishing it anyway.
UNDO_WINDOW_S = 3.0


def _undo_load(
    engine: engines.Engine, reference: str, previous: engines.ImageInfo | None, fp: str
) -> bool:
    """After Ctrl-C during a load, put `reference` back on the image it named before.

    Stopping the engine's client does not stop its daemon: a stream it has received
    whole is still committed, moments later. So the reference is watched for a while,
    and if the new image (it carries fingerprint fp) took it, the old one gets it back
    and the new one goes. True when something had to be undone.
    """
    deadline = time.monotonic() + UNDO_WINDOW_S
    while True:
        now = engines.inspect(engine, reference)
        taken = now is not None and (previous is None or now.id != previous.id)
        if taken and now is not None and now.labels.get(FINGERPRINT_LABEL) == fp:
            if previous is not None:
                engines.tag(engine, previous.id, reference)
            else:
                engines.untag(engine, reference)
            engines.remove_if_unused(engine, now.id)
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def profile_error(profiles: Mapping[str, Profile], exc: nix.ProfileEvalError) -> ProfileError:
    """Map nix's evaluation error back to the profile file and package at fault."""
    profile = profiles.get(exc.profile or "")
    if profile is None:
        return ProfileError(f"flake.nix: {exc.message}")
    # Name the file that lists the package, which may be a profile this one extends.
    origin = next((p.origin for p in profile.packages if p.name == exc.package), profile.name)
    declared = profiles.get(origin, profile)
    return ProfileError(f"{display_path(declared.path)}: {exc.message}")
