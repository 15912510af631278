"""`rpbuild verify-release REPORT`: check a release report against its registry.

For every pushed tag and per-architecture image: the registry serves the manifest whose
digest the report records, and, through a containers-policy.json that requires the
signature (rpbuild writes one from a public key, or the user gives theirs), skopeo
accepts it (a manifest list with all its images, as a pull checks them). The report's
SBOMs and provenance must be there, unchanged (their SHA-256 in release.json), name
the very images and digests, and each SBOM must describe its image.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpbuild import registry
from rpbuild.errors import ExitCode, RpbuildError
from rpbuild.notify import Notify
from rpbuild.release import provenance, signing
from rpbuild.release.report import RELEASE_JSON


class VerifyFailed(RpbuildError):
    """Something in the report does not match the registry or the report's own files."""

    exit_code = ExitCode.CHECK_FAILED


@dataclass(frozen=True)
class PublishedCheck:
    subject: str  # a reference or a file in the report
    what: str  # digest, signature, sbom, provenance
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.what:<10} {self.subject}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "what": self.what, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class VerifyOptions:
    gpg_public_key: Path | None = None
    sigstore_public_key: Path | None = None
    policy: Path | None = None  # the user's own policy.json instead of a key
    registries_d: Path | None = None
    tls_verify: bool = True


def load_report(directory: Path) -> dict[str, Any]:
    path = directory / RELEASE_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RpbuildError(f"{path}: cannot read it: {exc.strerror}") from None
    except ValueError as exc:
        raise RpbuildError(f"{path}: not JSON: {exc}") from None
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith("rpbuild-release/"):
        raise RpbuildError(f"{path}: not a release report rpbuild wrote")
    for key, kind in (("tags", list), ("images", list)):
        if not isinstance(data.get(key), kind):
            raise RpbuildError(f"{path}: {key}: missing or not a list")
    return data


def _read(directory: Path, name: str) -> str | None:
    try:
        return (directory / Path(name).name).read_text(encoding="utf-8")
    except OSError:
        return None


def check_files(directory: Path, report: Mapping[str, Any]) -> list[PublishedCheck]:
    """The SBOMs and the provenance: present, unchanged, and about these images."""
    checks: list[PublishedCheck] = []
    attest = report.get("attestations")
    if not isinstance(attest, dict):
        return [
            PublishedCheck(RELEASE_JSON, "files", False, "the report records no SBOM or provenance")
        ]
    images = {(i["profile"], i["system"]): i for i in report["images"]}
    for entry in attest.get("sboms", []):
        name = entry["file"]
        text = _read(directory, name)
        if text is None:
            checks.append(PublishedCheck(name, "sbom", False, "missing from the report"))
            continue
        if provenance.sha256_of(text) != entry["sha256"]:
            checks.append(PublishedCheck(name, "sbom", False, "changed since the release"))
            continue
        image = images.get((entry["profile"], entry["system"]))
        try:
            root = json.loads(text)["metadata"]["component"]
            props = {p["name"]: p["value"] for p in root.get("properties", [])}
        except (ValueError, KeyError, TypeError):
            checks.append(PublishedCheck(name, "sbom", False, "not a CycloneDX document"))
            continue
        if image is None or props.get("rpbuild:image_id") != image["image_id"]:
            checks.append(PublishedCheck(name, "sbom", False, "describes another image"))
            continue
        checks.append(PublishedCheck(name, "sbom", True, f"image {image['image_id']}"))
    for key in {(i["profile"], i["system"]) for i in report["images"]} - {
        (e["profile"], e["system"]) for e in attest.get("sboms", [])
    }:
        checks.append(
            PublishedCheck(f"{key[0]} ({key[1]})", "sbom", False, "no SBOM in the report")
        )
    prov = attest.get("provenance") or {}
    name = prov.get("file", provenance.FILE_NAME)
    text = _read(directory, name)
    if text is None:
        checks.append(PublishedCheck(name, "provenance", False, "missing from the report"))
    elif provenance.sha256_of(text) != prov.get("sha256"):
        checks.append(PublishedCheck(name, "provenance", False, "changed since the release"))
    else:
        try:
            statement = json.loads(text)
            subjects = {
                (s["name"], "sha256:" + s["digest"]["sha256"]) for s in statement["subject"]
            }
        except (ValueError, KeyError, TypeError):
            subjects = set()
        expected = {
            (s["name"], "sha256:" + s["digest"]["sha256"]) for s in provenance.subjects(report)
        }
        ok = bool(subjects) and subjects == expected
        detail = f"{len(subjects)} subject(s)" if ok else "its subjects are not the pushed digests"
        checks.append(PublishedCheck(name, "provenance", ok, detail))
    return checks


def _references(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(reference, digest, kind) of every tag and per-architecture image pushed."""
    refs: dict[str, tuple[str, str, str]] = {}
    for tag in report["tags"]:
        refs[tag["reference"]] = (tag["reference"], tag["digest"], tag["kind"])
    for image in report["images"]:
        if image.get("reference") and image.get("manifest_digest"):
            refs.setdefault(
                image["reference"], (image["reference"], image["manifest_digest"], "image")
            )
    return list(refs.values())


def _policy_file(
    report: Mapping[str, Any], options: VerifyOptions, tmp: Path
) -> tuple[Path | None, str]:
    if options.policy is not None:
        return options.policy, f"policy {options.policy}"
    if options.gpg_public_key is None and options.sigstore_public_key is None:
        return None, ""
    repository = report.get("repository")
    if not repository:
        raise RpbuildError("the report has no repository: the release was not pushed")
    data = signing.policy(
        str(repository),
        gpg_public_key=options.gpg_public_key,
        sigstore_public_key=options.sigstore_public_key,
    )
    path = tmp / "policy.json"
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    key = options.gpg_public_key or options.sigstore_public_key
    return path, f"signed by {key}"


def verify_release(
    directory: Path,
    options: VerifyOptions,
    *,
    notify: Notify = lambda _: None,
) -> list[PublishedCheck]:
    """Every check, in order; the caller fails when one is not ok."""
    report = load_report(directory)
    for key in (options.gpg_public_key, options.sigstore_public_key, options.policy):
        if key is not None and not key.is_file():
            raise RpbuildError(f"{key}: no such file")
    checks = check_files(directory, report)
    refs = _references(report)
    if not refs:
        checks.append(PublishedCheck(str(directory), "digest", False, "the release pushed nothing"))
        return checks
    tls = options.tls_verify
    with tempfile.TemporaryDirectory(prefix="rpbuild-verify-release-") as tmp_name:
        tmp = Path(tmp_name)
        policy_path, policy_text = _policy_file(report, options, tmp)
        if policy_path is None and report.get("signing"):
            raise RpbuildError(
                f"{directory / RELEASE_JSON}: the release is signed "
                f"({report['signing']['method']}, {report['signing']['key']}): give the "
                "public key (--key FILE, or --sigstore-key FILE) or --policy FILE"
            )
        for ref, digest, kind in refs:
            notify(f"checking {ref}")
            try:
                raw = registry.raw_manifest(ref, tls_verify=tls)
            except registry.RegistryError as exc:
                checks.append(PublishedCheck(ref, "digest", False, exc.message))
                continue
            served = "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
            checks.append(
                PublishedCheck(
                    ref,
                    "digest",
                    served == digest,
                    digest
                    if served == digest
                    else f"the registry serves {served}, the report says {digest}",
                )
            )
            if policy_path is None:
                continue
            ok, detail = _accepted(ref, kind, policy_path, options, tmp)
            checks.append(PublishedCheck(ref, "signature", ok, policy_text if ok else detail))
    return checks


def _accepted(
    ref: str, kind: str, policy_path: Path, options: VerifyOptions, tmp: Path
) -> tuple[bool, str]:
    """Whether skopeo, bound by the policy, copies the image (a list with all its images)
    out of the registry, into a `dir:` that is removed again."""
    args = [*signing.verify_args(policy_path, options.registries_d), "copy", "--quiet"]
    args.append(f"--src-tls-verify={'true' if options.tls_verify else 'false'}")
    if kind == "list":
        args.append("--all")
    dest = tmp / "copy"
    try:
        result = registry.run_skopeo(
            [*args, f"docker://{ref}", f"dir:{dest}"], what=f"skopeo copy {ref}"
        )
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    if result.returncode == 0:
        return True, ""
    return False, registry.skopeo_message(result.stderr) or f"skopeo exit {result.returncode}"
