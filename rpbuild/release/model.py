"""What a release is asked to do and what it made: options, images, tags, verifications,
and the two ways a release is refused. Data only, so that every other part of the
package can import it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpbuild import nix
from rpbuild.errors import ExitCode, RpbuildError

if TYPE_CHECKING:
    from rpbuild import registry
    from rpbuild.release.signing import Signing

DEFAULT_SYSTEM = "x86_64-linux"


class ReleaseRefused(RpbuildError):
    """The release would not be pinned or would overwrite something; nothing was pushed."""

    exit_code = ExitCode.CHECK_FAILED


class NotReproducible(RpbuildError):
    """Building an image again gave a different image."""

    exit_code = ExitCode.CHECK_FAILED


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
    sign: Signing | None = None  # sign every pushed tag (rpbuild.release.signing)
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


def release_systems(options: ReleaseOptions) -> list[str]:
    """The systems a release builds, each once, in the order given; none: DEFAULT_SYSTEM."""
    return list(dict.fromkeys(options.systems)) or [DEFAULT_SYSTEM]
