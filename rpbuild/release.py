"""`rpbuild release` and `rpbuild verify`: pinned, reproducible images, pushed, with a report.

A release is built only from committed pins (flake.lock committed and unchanged, flake.nix
what the profiles render to, a clean tree unless it is a snapshot); every refusal is
decided before anything is built or pushed. Each image is verified by rebuilding its
derivation (`nix build --rebuild`) and streaming it again: the image ID (the digest of
its config, which covers every layer) must not change. Pushing goes from the nix build
output through a temporary archive into skopeo; several systems become one manifest list.
The report directory appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rpbuild import __version__, git, lockfile, nix, reference, registry, signing
from rpbuild import sizes as sz
from rpbuild.build import (
    BuildOptions,
    Prepared,
    check_system,
    now_utc,
    prepare,
    profile_error,
    stage,
)
from rpbuild.engine import normalise_id
from rpbuild.errors import ExitCode, Interrupted, NixError, ProjectError, RpbuildError
from rpbuild.fsutil import load_json
from rpbuild.notify import Notify, quiet
from rpbuild.profiles import CREATED_RE, instant_problem, select
from rpbuild.project import Project
from rpbuild.render import diff_flake, render_flake
from rpbuild.signing import Signing
from rpbuild.sizes_json import load_report_file, to_json
from rpbuild.state import load_state, project_lock
from rpbuild.views.sizes import render_markdown

REPORT_FORMAT = "rpbuild-release/1"
RELEASE_JSON = "release.json"
SUMMARY_MD = "SUMMARY.md"
DEFAULT_SYSTEM = "x86_64-linux"
SNAPSHOT_SUFFIX = "-SNAPSHOT"
#: The tag the `minimal` profile also gets on its own: REPO:VERSION.
DEFAULT_PROFILE = "minimal"
#: OCI architecture of each nix system; also the suffix of per-architecture tags.
ARCH = {"x86_64-linux": "amd64", "aarch64-linux": "arm64"}
_NONDETERMINISTIC = ("may not be deterministic", "not deterministic", "differs from")


class ReleaseRefused(RpbuildError):
    """The release would not be pinned or would overwrite something; nothing was pushed."""

    exit_code = ExitCode.CHECK_FAILED


class NotReproducible(RpbuildError):
    """Building an image again gave a different image."""

    exit_code = ExitCode.CHECK_FAILED


# -- tags -------------------------------------------------------------------------


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


# -- options and results ----------------------------------------------------------


@dataclass(frozen=True)
class ReleaseOptions:
    version: str
    profiles: tuple[str, ...] = ()  # none: every profile
    systems: tuple[str, ...] = ()  # none: DEFAULT_SYSTEM
    push: str | None = None  # REGISTRY/REPO
    snapshot: bool = False
    report: Path | None = None
    previous: Path | None = None  # a previous report; default: the newest next to `report`
    tls_verify: bool = True
    nix: nix.NixOptions = field(default_factory=nix.NixOptions)
    allow_override_input: bool = False  # publish a non-snapshot built from overridden inputs
    sign: Signing | None = None  # sign every pushed tag (rpbuild.signing)
    invocation: tuple[str, ...] = ()  # the command line, for the provenance


@dataclass(frozen=True)
class Verification:
    """Whether rebuilding an image gave the same image."""

    profile: str
    system: str
    out_path: str
    image_id: str  # from the first build
    rebuilt_image_id: str | None
    reproducible: bool
    reason: str | None
    recorded_image_id: str | None = None  # what `rpbuild image` loaded, if it matches
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "system": self.system,
            "out_path": self.out_path,
            "image_id": self.image_id,
            "rebuilt_image_id": self.rebuilt_image_id,
            "recorded_image_id": self.recorded_image_id,
            "reproducible": self.reproducible,
            "reason": self.reason,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class BuiltImage:
    profile: str
    system: str
    out_path: str
    fingerprint: str
    archive: registry.ArchiveImage
    verification: Verification | None = None
    manifest_digest: str | None = None
    reference: str | None = None  # the tag this one image was pushed under

    def as_dict(self) -> dict[str, Any]:
        verification = self.verification
        return {
            "profile": self.profile,
            "system": self.system,
            "architecture": self.archive.platform.get("architecture"),
            "image_id": self.archive.image_id,
            "manifest_digest": self.manifest_digest,
            "reference": self.reference,
            "out_path": self.out_path,
            "fingerprint": self.fingerprint,
            "labels": self.archive.labels,
            # Which rosenpass the image holds: from nixpkgs or the rosenpass flake.
            "rosenpass": {
                key: self.archive.labels.get(f"dev.rpbuild.rosenpass.{key}")
                for key in ("source", "version", "rev")
            },
            "verified": bool(verification and verification.reproducible),
            "verification": verification.as_dict() if verification else None,
        }


@dataclass(frozen=True)
class PushedTag:
    reference: str
    digest: str
    profile: str
    kind: str  # "image" or "list"
    platforms: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "digest": self.digest,
            "profile": self.profile,
            "kind": self.kind,
            "platforms": list(self.platforms),
        }


@dataclass(frozen=True)
class ReleaseResult:
    report: dict[str, Any]  # what release.json holds
    summary: str  # SUMMARY.md
    report_dir: Path | None
    verified: bool


# -- preflight: every refusal before anything is built ------------------------------


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


def _check_registry(options: ReleaseOptions, profiles: Sequence[str]) -> None:
    """Before anything is built: the registry answers, and a release never moves a
    published tag (snapshots may). A registry that cannot be reached, trusted or logged
    in to is refused here, not after the build."""
    if options.push is None:
        return
    systems = _systems(options)
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


def _systems(options: ReleaseOptions) -> list[str]:
    return list(dict.fromkeys(options.systems)) or [DEFAULT_SYSTEM]


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


def _validate(project: Project, options: ReleaseOptions, profiles: Sequence[str]) -> None:
    """The options on their own, before anything is asked of git, a registry or nix."""
    check_overrides(options)
    if options.push is not None:
        reference.repository(options.push, "--push")
        registry.require_skopeo()
    signing.check(options.sign, options.push)
    systems = _systems(options)
    for system in systems:
        check_system(project, system)
        if system not in ARCH:
            raise RpbuildError(f"no OCI architecture known for system '{system}'")
    check_tags(options.version, profiles, systems, snapshot=options.snapshot)


# -- building and verifying ---------------------------------------------------------


def _rebuild_reason(installable: str, opts: nix.NixOptions, on_log: Notify | None) -> str | None:
    """`nix build --rebuild`: None when nix got the same output again, else why not."""
    try:
        nix.build([installable], opts, rebuild=True, on_log=on_log)
    except NixError as exc:
        text = f"{exc.message}\n{exc.stderr_tail}"
        if any(marker in text for marker in _NONDETERMINISTIC):
            return f"nix build --rebuild: {exc.message}"
        raise
    return None


def _verify(
    image: BuiltImage,
    installable: str,
    opts: nix.NixOptions,
    scratch: Path,
    on_log: Notify | None,
) -> Verification:
    started = time.monotonic()
    reason = _rebuild_reason(installable, opts, on_log)
    second = registry.stream_image(Path(image.out_path), scratch)
    if reason is None and second.image_id != image.archive.image_id:
        reason = (
            f"streamed again, the image changed: {image.archive.image_id} then {second.image_id}"
        )
    return Verification(
        profile=image.profile,
        system=image.system,
        out_path=image.out_path,
        image_id=image.archive.image_id,
        rebuilt_image_id=second.image_id,
        reproducible=reason is None,
        reason=reason,
        seconds=time.monotonic() - started,
    )


def build_and_verify(
    project: Project,
    targets: Sequence[tuple[str, str]],
    opts: nix.NixOptions,
    scratch: Path,
    *,
    keep_archives: bool = True,
    notify: Notify = quiet,
    on_log: Notify | None = None,
) -> tuple[Prepared, list[BuiltImage]]:
    """Build each (profile, system), write its archive into scratch, and verify it.

    Without keep_archives (nothing is pushed) no archive is written: the image ID and
    config are read from the stream (registry.stream_image).
    All in one project lock: the staged flake must stay the one that was built
    until the rebuild has compared against it.
    """
    with project_lock(
        project.state_dir / "lock",
        on_wait=lambda: notify("another rpbuild is running in this project; waiting for it"),
    ):
        prepared = prepare(project, notify)
        fingerprints: dict[str, dict[str, str]] = {}
        for profile_name, system in targets:
            profile = select(prepared.profiles, profile_name)
            fingerprints.setdefault(system, {})[profile_name] = prepared.fingerprint(
                profile, system, opts
            )
        flake_ref = stage(prepared, fingerprints)
        images: list[BuiltImage] = []
        for profile_name, system in targets:
            installable = f"{flake_ref}#packages.{system}.{profile_name}"
            notify(f"building {profile_name} for {system}")
            try:
                out = nix.build([installable], opts, on_log=on_log)[0].out
            except nix.ProfileEvalError as exc:
                raise profile_error(prepared.profiles, exc) from None
            if keep_archives:
                archive = registry.read_archive(
                    registry.write_archive(Path(out), scratch / f"{profile_name}-{system}.tar")
                )
            else:
                archive = registry.stream_image(Path(out), scratch)
            image = BuiltImage(
                profile=profile_name,
                system=system,
                out_path=out,
                fingerprint=fingerprints[system][profile_name],
                archive=archive,
            )
            _check_architecture(image)
            notify(f"verifying {profile_name} for {system}: nix build --rebuild")
            image.verification = _verify(image, installable, opts, scratch, on_log)
            images.append(image)
    return prepared, images


def _check_architecture(image: BuiltImage) -> None:
    arch = image.archive.platform.get("architecture")
    if arch != ARCH[image.system]:
        raise RpbuildError(
            f"the {image.profile} image for {image.system} says architecture '{arch}', "
            f"not '{ARCH[image.system]}'"
        )


def verify(
    project: Project,
    profile: str,
    system: str,
    opts: nix.NixOptions,
    *,
    notify: Notify = quiet,
    on_log: Notify | None = None,
) -> Verification:
    """Build a profile's image, rebuild it, and compare the image IDs.

    When `rpbuild image` loaded the same build (same fingerprint), its recorded image
    ID must match too.
    """
    check_system(project, system)
    with tempfile.TemporaryDirectory(prefix="rpbuild-verify-") as tmp:
        _, images = build_and_verify(
            project,
            [(profile, system)],
            opts,
            Path(tmp),
            keep_archives=False,
            notify=notify,
            on_log=on_log,
        )
    image = images[0]
    result = image.verification
    assert result is not None
    state, _ = load_state(project.state_dir / "state.json")
    # Docker records sha256:HEX, Podman (and older state files) plain HEX.
    recorded = next(
        (
            normalise_id(rec.image_id)
            for rec in state.images.values()
            if rec.profile == profile
            and rec.system == system
            and rec.fingerprint == image.fingerprint
            and rec.out_path == image.out_path
        ),
        None,
    )
    if recorded is not None and recorded != normalise_id(result.image_id) and result.reproducible:
        result = replace(
            result,
            reproducible=False,
            reason=f"the image `rpbuild image` loaded earlier is {recorded}, "
            f"this build is {result.image_id}",
        )
    return replace(result, recorded_image_id=recorded)


# -- pushing ------------------------------------------------------------------------


def _platform(image: BuiltImage) -> str:
    plat = image.archive.platform
    text = f"{plat['os']}/{plat['architecture']}"
    return text + (f"/{plat['variant']}" if plat.get("variant") else "")


def _push(images: Sequence[BuiltImage], options: ReleaseOptions, notify: Notify) -> list[PushedTag]:
    """Push every image and tag; a push stopped half-way says which tags it touched."""
    attempted: list[str] = []

    def push_note(message: str, ref: str) -> None:
        attempted.append(ref)
        notify(message)

    try:
        return _push_all(images, options, push_note)
    except (KeyboardInterrupt, RpbuildError) as exc:
        if not attempted:
            raise
        touched = ", ".join(attempted)
        note = (
            f"the registry may already hold {touched}: delete those tags there, or release "
            "under another version"
        )
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(f"interrupted while pushing; {note}") from None
        exc.hint = f"{note}; {exc.hint}" if exc.hint else note
        raise


def _push_all(
    images: Sequence[BuiltImage], options: ReleaseOptions, push_note: Callable[[str, str], None]
) -> list[PushedTag]:
    assert options.push is not None
    repo, tls, sign = options.push, options.tls_verify, options.sign
    pushed: list[PushedTag] = []
    by_profile: dict[str, list[BuiltImage]] = {}
    for image in images:
        by_profile.setdefault(image.profile, []).append(image)
    for profile, group in by_profile.items():
        tags = tags_for(options.version, profile, snapshot=options.snapshot)
        main = registry.docker_ref(repo, tags[0])
        if len(group) == 1:
            image = group[0]
            push_note(f"pushing {main}", main)
            image.manifest_digest = registry.push_archive(
                image.archive.path, main, tls_verify=tls, sign=sign
            )
            image.reference = main
            digest, kind = image.manifest_digest, "image"
        else:
            entries = []
            for image in group:
                ref = registry.docker_ref(
                    repo,
                    arch_tag(options.version, profile, image.system, snapshot=options.snapshot),
                )
                push_note(f"pushing {ref}", ref)
                image.manifest_digest = registry.push_archive(
                    image.archive.path, ref, tls_verify=tls, sign=sign
                )
                image.reference = ref
                raw = registry.raw_manifest(ref, tls_verify=tls)
                entry = registry.ListEntry(manifest=raw, platform=image.archive.platform)
                if entry.descriptor()["digest"] != image.manifest_digest:
                    raise registry.RegistryError(
                        f"{ref}: the registry serves a manifest other than the one pushed"
                    )
                entries.append(entry)
            push_note(f"pushing the manifest list {main}", main)
            digest = registry.push_list(entries, main, tls_verify=tls, sign=sign)
            kind = "list"
        platforms = tuple(_platform(image) for image in group)
        pushed.append(PushedTag(main, digest, profile, kind, platforms))
        for extra in tags[1:]:
            ref = registry.docker_ref(repo, extra)
            push_note(f"tagging {ref}", ref)
            again = registry.retag(main, ref, tls_verify=tls, sign=sign)
            if again != digest:
                raise registry.RegistryError(f"{ref}: tagged as {again}, expected {digest}")
            pushed.append(PushedTag(ref, digest, profile, kind, platforms))
    return pushed


# -- the report ---------------------------------------------------------------------


def find_previous(report: Path | None, explicit: Path | None, *, snapshot: bool) -> Path | None:
    """The report to diff sizes against: the given one, else the newest release report
    next to this one (snapshots are skipped unless this is a snapshot too)."""
    if explicit is not None:
        if not (explicit / RELEASE_JSON).is_file():
            raise RpbuildError(f"{explicit}: not a release report (no {RELEASE_JSON})")
        return explicit
    if report is None or not report.parent.is_dir():
        return None
    best: tuple[str, Path] | None = None
    for candidate in report.parent.iterdir():
        path = candidate / RELEASE_JSON
        if candidate == report or ".tmp-" in candidate.name or not path.is_file():
            continue
        try:
            data = load_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
            continue
        if data.get("snapshot") and not snapshot:
            continue
        stamp = str(data.get("released_at", ""))
        if not CREATED_RE.match(stamp) or instant_problem(stamp) is not None:
            continue  # not a date rpbuild wrote: it cannot be ordered
        if best is None or stamp > best[0]:
            best = (stamp, candidate)
    return best[1] if best else None


_MISSING = object()


def _json_kind(value: object) -> str:
    """How a wrong JSON value is named in a message: its type, not its (maybe long) text."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is _MISSING:
        return "nothing (the key is missing)"
    if value is None:
        return "null"
    return next((k for t, k in kinds.items() if isinstance(value, t)), "a number")


def _previous_sizes(previous: Path) -> tuple[dict[str, Any], dict[str, sz.SizeReport]]:
    """The previous report's release.json and size reports, read before anything is
    built; a report of another shape is refused naming the file and the key at fault."""
    path = previous / RELEASE_JSON
    try:
        data = load_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RpbuildError(f"{path}: unreadable release report: {exc}") from None

    def wrong(where: str, expected: str, value: object) -> RpbuildError:
        return RpbuildError(
            f"{path}: {where}: expected {expected}, got {_json_kind(value)}; "
            "not a release report rpbuild wrote"
        )

    if not isinstance(data, dict):
        raise wrong("(top level)", "an object", data)
    files = data.get("sizes", _MISSING)
    if not isinstance(files, dict):
        raise wrong("sizes", "an object of system: file name", files)
    for system, name in files.items():
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise wrong(f"sizes.{system}", "a file name in the report directory", name)
    if not isinstance(data.get("version"), str):
        raise wrong("version", "a string", data.get("version", _MISSING))
    if data.get("format") != REPORT_FORMAT:
        raise RpbuildError(
            f"{path}: format: {data.get('format')!r}, not {REPORT_FORMAT!r}; "
            "not a release report this rpbuild wrote"
        )
    reports = {system: load_report_file(previous / name) for system, name in files.items()}
    return data, reports


def _inputs(lock_bytes: bytes, overrides: Sequence[tuple[str, str]]) -> dict[str, Any]:
    lock = load_json(lock_bytes)
    pins = lockfile.pins(lock)
    override = dict(overrides)
    return {
        name: {**pins[name].as_dict(), "override": override.get(name)}
        for name in lockfile.direct_inputs(lock)
        if name in pins
    }


def _md_code(text: str | None) -> str:
    return f"`{text}`" if text else "–"


def render_summary(
    report: Mapping[str, Any],
    sizes: Mapping[str, sz.SizeReport],
    diffs: Mapping[str, sz.ReportDiff | None],
) -> str:
    """SUMMARY.md: what was released from what, the digests, and the size changes."""
    title = f"# rosenpass images {report['version']}"
    if report["snapshot"]:
        title += " (snapshot)"
    git_info = report["git"]
    state = "clean tree" if git_info["clean"] else "uncommitted changes"
    verified = "**yes**" if report["verified"] else "**no**"
    lines = [
        title,
        "",
        f"Built {report['released_at']} from commit `{git_info['commit'][:12]}` ({state}) "
        f"with rpbuild {report['rpbuild_version']} and Nix {report['nix_version']}. "
        f"Every image reproducible: {verified}.",
        "",
        "## Inputs",
        "",
        "| Input | Revision | Date | narHash | Built from |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, pin in report["inputs"].items():
        origin = f"override {_md_code(pin['override'])}" if pin["override"] else pin["source"]
        lines.append(
            f"| {name} | {_md_code(pin['rev'])} | {pin['date'] or '–'} "
            f"| {_md_code(pin['nar_hash'])} | {origin} |"
        )
    lines += [
        "",
        "## Images",
        "",
        "| Profile | System | rosenpass | Pushed as | Manifest digest | Image ID | Reproducible |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for image in report["images"]:
        verification = image["verification"] or {}
        ok = "yes" if image["verified"] else f"no: {verification.get('reason') or '?'}"
        rp = image.get("rosenpass") or {}
        rosenpass = f"{rp.get('version') or '?'} from {rp.get('source') or '?'}"
        lines.append(
            f"| {image['profile']} | {image['system']} | {rosenpass} "
            f"| {_md_code(image['reference'])} "
            f"| {_md_code(image['manifest_digest'])} | {_md_code(image['image_id'])} | {ok} |"
        )
    if report["tags"]:
        lines += ["", "## Tags", "", "| Tag | Digest | Platforms |", "| --- | --- | --- |"]
        for tag in report["tags"]:
            kind = "manifest list: " if tag["kind"] == "list" else ""
            platforms = ", ".join(tag["platforms"])
            lines.append(f"| `{tag['reference']}` | `{tag['digest']}` | {kind}{platforms} |")
    lines.append("")
    previous = report.get("previous")
    if previous:
        lines += [
            f"Size changes are against release {previous['version']} "
            f"(report `{previous['report']}`).",
            "",
        ]
    else:
        lines += ["No earlier release report to compare sizes with.", ""]
    for system, size_report in sizes.items():
        text = render_markdown(size_report, diffs.get(system))
        lines.append(text.replace("## Image sizes", f"## Image sizes: {system}", 1).rstrip())
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


class StagedReport:
    """The report directory under a temporary name next to it (DIR.tmp-XXXX), renamed
    to DIR by commit(): it exists whole or not at all.

    It is created before anything is built, so that a location that cannot be written
    (a read-only or virtual file system, which os.access cannot tell for root) refuses
    the release instead of failing after the push and burning the version. Leaving the
    `with` block without commit() removes it and the parents it made.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made: list[Path] = []  # parents this made, outermost first
        missing = []
        parent = directory.parent
        while not (parent.exists() or parent.is_symlink()) and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        try:
            for path in reversed(missing):
                try:
                    path.mkdir()
                except FileExistsError:
                    if not path.is_dir():
                        raise
                    continue
                self._made.append(path)
            self.tmp = Path(tempfile.mkdtemp(prefix=f"{directory.name}.tmp-", dir=directory.parent))
        except OSError as exc:
            self._remove_parents()
            failed = exc.filename if exc.filename in {str(p) for p in missing} else "it"
            raise RpbuildError(
                f"--report {directory}: cannot create {failed}: {exc.strerror}"
            ) from None
        self._committed = False

    def __enter__(self) -> StagedReport:
        return self

    def __exit__(self, *_: object) -> None:
        if not self._committed:
            self.discard()

    def write(self, name: str, text: str) -> None:
        try:
            (self.tmp / name).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise RpbuildError(
                f"--report {self.directory}: cannot write {name}: {exc.strerror}"
            ) from None

    def commit(self) -> None:
        """Rename the complete report into place; never over an existing one."""
        try:
            self.tmp.chmod(0o755)
            if self.directory.exists() or self.directory.is_symlink():
                raise ReleaseRefused(
                    f"{self.directory}: appeared during the release; not overwritten"
                )
            self.tmp.rename(self.directory)
        except OSError as exc:
            raise RpbuildError(
                f"--report {self.directory}: cannot write it: {exc.strerror}"
            ) from None
        self._committed = True

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._remove_parents()

    def _remove_parents(self) -> None:
        for path in reversed(self._made):
            with contextlib.suppress(OSError):
                path.rmdir()  # only if empty: someone else may have put something there
        self._made = []


def write_report(directory: Path, files: Mapping[str, str]) -> None:
    """Write every file into DIR.tmp-XXXX, then rename it to DIR: all or nothing."""
    with StagedReport(directory) as staged:
        for name, text in files.items():
            staged.write(name, text)
        staged.commit()


# -- release ------------------------------------------------------------------------


def release(
    project: Project,
    options: ReleaseOptions,
    *,
    notify: Notify = quiet,
    on_log: Notify | None = None,
) -> ReleaseResult:
    """Check the pins, build and verify every image, push, and write the report."""
    from rpbuild import provenance
    from rpbuild.measure import size_report

    started = now_utc()
    profiles_all = project.load_profiles()
    profiles = list(dict.fromkeys(options.profiles)) or list(profiles_all)
    for name in profiles:
        select(profiles_all, name)
    systems = _systems(options)
    _validate(project, options, profiles)
    warning = signing.lookaside_warning(options.sign, options.push)
    if warning is not None:
        notify(warning)
    check_report_dir(options.report)

    pinned = check_pinned(project, snapshot=options.snapshot)
    previous = find_previous(options.report, options.previous, snapshot=options.snapshot)
    previous_data, previous_sizes = _previous_sizes(previous) if previous else ({}, {})
    _check_registry(options, profiles)

    with contextlib.ExitStack() as stack:
        # Made now, before anything is built: a report that cannot be written refuses
        # the release here instead of after the push.
        staged = stack.enter_context(StagedReport(options.report)) if options.report else None
        sizes: dict[str, sz.SizeReport] = {}
        for system in systems:
            notify(f"measuring sizes for {system}")
            sizes[system] = size_report(
                project,
                profiles,
                BuildOptions(system=system, nix=options.nix),
                notify=notify,
                on_log=on_log,
            )
            if staged is not None:
                text = json.dumps(to_json(sizes[system]), indent=2) + "\n"
                staged.write(f"sizes-{system}.json", text)
        diffs = {
            system: sz.compare(previous_sizes[system], sizes[system])
            if system in previous_sizes
            else None
            for system in systems
        }
        # Everything the report needs that does not depend on the push, asked before it.
        report: dict[str, Any] = {
            "format": REPORT_FORMAT,
            "version": options.version,
            "snapshot": options.snapshot,
            "released_at": None,
            "repository": options.push,
            "git": {
                "commit": pinned.commit,
                "clean": pinned.clean,
                "changes": list(pinned.changes),
            },
            "rpbuild_version": __version__,
            "nix_version": str(nix.nix_version()),
            "inputs": _inputs(pinned.lock_bytes, options.nix.overrides),
            "profiles": profiles,
            "systems": systems,
            "images": [],
            "tags": [],
            "verified": False,
            "sizes": {system: f"sizes-{system}.json" for system in systems},
            "previous": (
                {"version": previous_data.get("version"), "report": str(previous)}
                if previous
                else None
            ),
        }
        targets = [(profile, system) for profile in profiles for system in systems]
        with tempfile.TemporaryDirectory(prefix="rpbuild-release-") as tmp:
            _, images = build_and_verify(
                project,
                targets,
                options.nix,
                Path(tmp),
                keep_archives=options.push is not None,  # only a push needs the file
                notify=notify,
                on_log=on_log,
            )
            check_lock_unchanged(project, pinned.lock_bytes)
            failed = [i for i in images if not (i.verification and i.verification.reproducible)]
            if failed and not options.snapshot:
                first = failed[0].verification
                raise NotReproducible(
                    f"{failed[0].profile} ({failed[0].system}) is not reproducible: "
                    f"{first.reason if first else '?'}; nothing was pushed",
                    hint="a --snapshot release pushes it anyway and records it in the report",
                )
            boms = provenance.sboms(project, images, options.nix, notify=notify, on_log=on_log)
            pushed = _push(images, options, notify) if options.push else []

        report["released_at"] = now_utc()
        report["images"] = [image.as_dict() for image in images]
        report["tags"] = [tag.as_dict() for tag in pushed]
        report["verified"] = not failed
        attestations = provenance.finish(
            report,
            boms,
            invocation=options.invocation,
            started=started,
            finished=report["released_at"],
            signing=options.sign.as_dict() if options.sign and pushed else None,
        )
        summary = render_summary(report, sizes, diffs)
        summary += "\n".join(provenance.summary_lines(report))
        if staged is not None:
            for name, text in attestations.items():
                staged.write(name, text)
            staged.write(RELEASE_JSON, json.dumps(report, indent=2) + "\n")
            staged.write(SUMMARY_MD, summary)
            staged.commit()
    return ReleaseResult(
        report=report, summary=summary, report_dir=options.report, verified=not failed
    )


def summary_lines(result: ReleaseResult) -> list[str]:
    """A few lines for the terminal: what was pushed (or built) and where the report is."""
    report = result.report
    lines = []
    if report["tags"]:
        lines.append(f"released {report['version']}:")
        lines += [f"  {t['reference']}  {t['digest']}" for t in report["tags"]]
    else:
        lines.append(f"built {report['version']} (not pushed: no --push):")
        lines += [f"  {i['profile']} ({i['system']})  {i['image_id']}" for i in report["images"]]
    lines.append(
        "every image reproducible"
        if result.verified
        else "NOT every image reproducible (see the report)"
    )
    signed = report.get("signing")
    if signed:
        lines.append(f"every tag signed ({signed['method']}, {signed['key']})")
    if result.report_dir is not None:
        lines.append(f"report: {result.report_dir} (with the SBOMs and the provenance)")
    return lines


# -- lock update --------------------------------------------------------------------


@dataclass(frozen=True)
class LockUpdate:
    changes: tuple[lockfile.Change, ...]
    created: bool  # there was no flake.lock before
    path: Path
    inputs: tuple[str, ...] = ()  # what was asked for; none: every input


def update_lock(
    project: Project,
    inputs: Sequence[str],
    opts: nix.NixOptions,
    *,
    notify: Notify = quiet,
) -> LockUpdate:
    """`nix flake update` in a private copy; the project's lock is replaced atomically
    only when nix succeeded, so a failure leaves the old lock as it was."""
    from rpbuild.fsutil import atomic_write
    from rpbuild.render import write_flake

    if project.builtin:
        raise ProjectError(
            "not in an rpbuild project: `rpbuild lock update` changes a project's flake.lock "
            "(use --project DIR)"
        )
    with project_lock(project.state_dir / "lock"):
        # Read under the lock: a concurrent update must not make the diff wrong.
        old = lockfile.read(project.lock_path)
        known = lockfile.direct_inputs(old)
        for name in inputs:
            if known and name.split("/", 1)[0] not in known:
                raise RpbuildError(
                    f"{project.lock_path}: no flake input '{name}' (inputs: {', '.join(known)})"
                )
        if write_flake(project, render_flake(project, project.load_profiles())):
            notify(f"{project.flake_path}: was stale, re-rendered from the profiles")
        project.state_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="lock-update-", dir=project.state_dir))
        try:
            shutil.copy2(project.flake_path, work / "flake.nix")
            if project.lock_path.is_file():
                shutil.copy2(project.lock_path, work / "flake.lock")
            notify("updating " + (", ".join(inputs) if inputs else "every input"))
            try:
                nix.lock_update(work, inputs, opts)
            except NixError as exc:
                raise NixError(
                    f"{project.lock_path}: left as it was: {exc.message}",
                    argv=exc.argv,
                    returncode=exc.returncode,
                    stderr_tail=exc.stderr_tail,
                    hint=exc.hint,
                ) from None
            new = lockfile.read(work / "flake.lock")
            if new is None:
                raise RpbuildError(f"nix wrote no flake.lock for {project.flake_path}")
            new_bytes = (work / "flake.lock").read_bytes()
            old_bytes = project.lock_path.read_bytes() if project.lock_path.is_file() else None
            if new_bytes != old_bytes:
                atomic_write(project.lock_path, new_bytes)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return LockUpdate(
        changes=tuple(lockfile.diff(old, new)),
        created=old is None,
        path=project.lock_path,
        inputs=tuple(inputs),
    )


def lock_changes_lines(result: LockUpdate) -> list[str]:
    """A plain table of the changed inputs: input, old rev and date, new rev and date."""
    if not result.changes:
        asked = ", ".join(result.inputs) if result.inputs else "every input"
        return [f"{result.path}: no change ({asked} already at the newest revision)"]
    rows = [("input", "old", "old date", "new", "new date")]
    for change in result.changes:
        old, new = change.old, change.new
        rows.append(
            (
                change.path,
                old.short if old else "(new)",
                (old.date or "–") if old else "",
                new.short if new else "(removed)",
                (new.date or "–") if new else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    verb = "created" if result.created else "updated"
    return [f"{result.path}: {verb}; {len(result.changes)} input(s) changed", *lines]
