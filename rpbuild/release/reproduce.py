"""Building release images and proving them reproducible: each image is built, its
derivation rebuilt (`nix build --rebuild`) and streamed again, and the image ID must
not change. `verify` is the `rpbuild verify` command's domain: one profile, also
compared with the image `rpbuild image` loaded.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from rpbuild import nix, registry
from rpbuild.build import Prepared, check_system, prepare, profile_error, stage
from rpbuild.engine import normalise_id
from rpbuild.errors import NixError, RpbuildError
from rpbuild.notify import Notify, quiet
from rpbuild.profiles import select
from rpbuild.project import Project
from rpbuild.release.model import BuiltImage, Verification
from rpbuild.release.tags import ARCH
from rpbuild.state import load_state, project_lock

_NONDETERMINISTIC = ("may not be deterministic", "not deterministic", "differs from")


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
