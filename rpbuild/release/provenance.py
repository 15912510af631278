"""What a release report says about where its images came from: an SBOM per image and an
in-toto statement with a SLSA provenance v1 predicate.

The statement's subjects are the digests the registry holds (each pushed tag and each
per-architecture image; the image IDs when nothing was pushed), its resolved
dependencies the flake inputs as flake.lock pins them (revision and NAR hash) and the
project's own commit, its builder the nix and rpbuild versions, and the exact command
line. It is written, not signed: the images' signatures (GPG or sigstore, see
`rpbuild.release.signing`) and the report's checksums in release.json tie them together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rpbuild import __version__, nix
from rpbuild import sbom as sb
from rpbuild.build import BuildOptions
from rpbuild.measure import measuring
from rpbuild.notify import Notify, quiet
from rpbuild.project import Project
from rpbuild.sbom import sha256_hex

if TYPE_CHECKING:
    from rpbuild.release.model import BuiltImage

FILE_NAME = "provenance.intoto.json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
#: What an rpbuild release is, as a SLSA build type (documented in the README).
BUILD_TYPE = "https://rpbuild.dev/release/v1"
BUILDER_ID = "https://rpbuild.dev/rpbuild-release"


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _digest(value: str) -> dict[str, str]:
    algo, _, hex_digest = value.partition(":")
    return {algo: hex_digest}


def subjects(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every digest the release made public: the pushed tags (images and manifest lists)
    and the per-architecture images; without a push, each image's ID."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for tag in report["tags"]:
        out[(tag["reference"], tag["digest"])] = {
            "name": tag["reference"],
            "digest": _digest(tag["digest"]),
            "annotations": {"kind": tag["kind"], "platforms": list(tag["platforms"])},
        }
    for image in report["images"]:
        if image.get("reference") and image.get("manifest_digest"):
            key = (image["reference"], image["manifest_digest"])
            out.setdefault(
                key,
                {
                    "name": image["reference"],
                    "digest": _digest(image["manifest_digest"]),
                    "annotations": {"kind": "image", "platforms": [image["architecture"]]},
                },
            )
    if not out:
        for image in report["images"]:
            name = f"{image['profile']}-{image['system']}"
            out[(name, image["image_id"])] = {
                "name": name,
                "digest": _digest(image["image_id"]),
                "annotations": {"kind": "image-config"},
            }
    return list(out.values())


def _dependencies(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    deps: list[dict[str, Any]] = []
    commit = report["git"]["commit"]
    deps.append(
        {
            "name": "project",
            "digest": {"gitCommit": commit},
            "annotations": {"clean": report["git"]["clean"]},
        }
    )
    for name, pin in report["inputs"].items():
        digest: dict[str, str] = {}
        if pin.get("rev"):
            digest["gitCommit"] = pin["rev"]
        nar = sha256_hex(pin.get("nar_hash"))
        if nar:
            # The SHA-256 of the input's NAR serialisation, what nix checks it by.
            digest["sha256"] = nar
        dep: dict[str, Any] = {"name": name, "digest": digest}
        source = pin.get("override") or pin.get("source")
        if source:
            dep["uri"] = str(source)
        dep["annotations"] = {
            "narHash": pin.get("nar_hash"),
            "lastModified": pin.get("last_modified"),
            "overridden": bool(pin.get("override")),
        }
        deps.append(dep)
    return deps


def statement(
    report: Mapping[str, Any],
    *,
    invocation: Sequence[str],
    started: str,
    finished: str,
    byproducts: Mapping[str, str],
) -> dict[str, Any]:
    """The in-toto Statement v1 with a SLSA provenance v1 predicate for a release.

    byproducts: file name in the report -> its SHA-256 (the SBOMs)."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects(report),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "invocation": list(invocation),
                    "version": report["version"],
                    "profiles": list(report["profiles"]),
                    "systems": list(report["systems"]),
                    "repository": report["repository"],
                    "snapshot": report["snapshot"],
                },
                "internalParameters": {"reportFormat": report["format"]},
                "resolvedDependencies": _dependencies(report),
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": {"rpbuild": __version__, "nix": report["nix_version"]},
                },
                "metadata": {"startedOn": started, "finishedOn": finished},
                "byproducts": [
                    {"name": name, "digest": {"sha256": digest}}
                    for name, digest in sorted(byproducts.items())
                ],
            },
        },
    }


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """SUMMARY.md's section on the SBOMs, the provenance and the signatures."""
    attest = report.get("attestations") or {}
    if not attest:
        return []
    lines = ["", "## Supply chain", ""]
    for entry in attest.get("sboms", []):
        lines.append(
            f"- SBOM of {entry['profile']} ({entry['system']}), CycloneDX 1.6: "
            f"[{entry['file']}]({entry['file']})"
        )
    prov = attest.get("provenance")
    if prov:
        link = f"[{prov['file']}]({prov['file']})"
        lines.append(f"- Provenance (in-toto statement, SLSA provenance v1): {link}")
    signing = report.get("signing")
    if signing:
        lines.append(f"- Every pushed tag is signed: {signing['method']} ({signing['key']}).")
    elif report.get("tags"):
        lines.append("- The pushed tags are not signed.")
    lines += ["", "Check it all against the registry with `rpbuild verify-release DIR`.", ""]
    return lines


def sboms(
    project: Project,
    images: Sequence[BuiltImage],
    opts: nix.NixOptions,
    *,
    notify: Notify = quiet,
    on_log: Notify | None = None,
) -> dict[tuple[str, str], str]:
    """The SBOM of every built image, by (profile, system); made before anything is
    pushed, so that a release whose SBOM cannot be made pushes nothing."""
    out: dict[tuple[str, str], str] = {}
    systems = list(dict.fromkeys(image.system for image in images))
    for system in systems:
        group = [image for image in images if image.system == system]
        options = BuildOptions(system=system, nix=opts)
        notify(f"writing the SBOMs for {system}")
        names = [image.profile for image in group]
        with measuring(project, names, options, notify=notify, on_log=on_log) as m:
            closures = {c.profile: c for c in sb.closures(m, options, names)}
            for image in group:
                meta = sb.image_meta(m, image.profile, options, image.archive.image_id)
                bom = sb.make_bom(meta, closures[image.profile])
                out[(image.profile, system)] = sb.to_json(bom)
    return out


def finish(
    report: dict[str, Any],
    boms: Mapping[tuple[str, str], str],
    *,
    invocation: Sequence[str],
    started: str,
    finished: str,
    signing: Mapping[str, Any] | None,
) -> dict[str, str]:
    """The report's SBOM and provenance files (name: text); records them, with their
    SHA-256, and the signing in the report."""
    files = {sb.file_name(profile, system): text for (profile, system), text in boms.items()}
    digests = {name: sha256_of(text) for name, text in files.items()}
    report["signing"] = dict(signing) if signing else None
    doc = statement(
        report, invocation=invocation, started=started, finished=finished, byproducts=digests
    )
    text = json.dumps(doc, indent=2) + "\n"
    files[FILE_NAME] = text
    report["attestations"] = {
        "sboms": [
            {
                "profile": profile,
                "system": system,
                "file": sb.file_name(profile, system),
                "sha256": digests[sb.file_name(profile, system)],
            }
            for profile, system in boms
        ],
        "provenance": {"file": FILE_NAME, "sha256": sha256_of(text)},
    }
    return files
