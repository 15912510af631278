"""verify-release's checks of a published release: the report's own files, and the registry
through skopeo (mocked here: argument building and output parsing only; the real registry
and skopeo are in tests/integration/test_signing.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from rpbuild import process, registry
from rpbuild.errors import RpbuildError
from rpbuild.release import verify_published as vr
from tests.unit.release.sample import report, sbom_text, write_report


def test_an_intact_report_passes_its_file_checks(tmp_path: Path) -> None:
    directory, data = write_report(tmp_path)
    checks = vr.check_files(directory, data)
    assert [c.what for c in checks] == ["sbom", "sbom", "provenance"]
    assert all(c.ok for c in checks), [c.line() for c in checks]


def test_a_changed_missing_or_foreign_file_fails(tmp_path: Path) -> None:
    directory, data = write_report(tmp_path)
    (directory / "sbom-minimal-x86_64-linux.cdx.json").write_text(sbom_text("sha256:" + "9" * 64))
    (directory / "sbom-minimal-aarch64-linux.cdx.json").unlink()
    prov = directory / "provenance.intoto.json"
    prov.write_text(prov.read_text() + " ")
    failed = {(c.subject, c.detail) for c in vr.check_files(directory, data) if not c.ok}
    assert failed == {
        ("sbom-minimal-x86_64-linux.cdx.json", "changed since the release"),
        ("sbom-minimal-aarch64-linux.cdx.json", "missing from the report"),
        ("provenance.intoto.json", "changed since the release"),
    }


def test_provenance_about_other_digests_fails(tmp_path: Path) -> None:
    directory, data = write_report(tmp_path)
    data["tags"][0]["digest"] = "sha256:" + "0" * 64  # release.json says otherwise now
    checks = {c.what: c for c in vr.check_files(directory, data)}
    assert not checks["provenance"].ok
    assert checks["provenance"].detail == "its subjects are not the pushed digests"


# -- the report itself -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "cannot read it: No such file or directory"),
        ("{", "not JSON: "),
        ('{"format": "rpbuild-sizes/1"}', "not a release report rpbuild wrote"),
        ('{"format": "rpbuild-release/1", "tags": {}}', "tags: missing or not a list"),
        ('{"format": "rpbuild-release/1", "tags": []}', "images: missing or not a list"),
    ],
    ids=["missing", "not-json", "other-format", "tags", "images"],
)
def test_a_report_that_is_not_one_is_refused_naming_the_file(
    tmp_path: Path, text: str | None, message: str
) -> None:
    if text is not None:
        (tmp_path / "release.json").write_text(text)
    with pytest.raises(RpbuildError) as info:
        vr.load_report(tmp_path)
    assert info.value.message.startswith(f"{tmp_path / 'release.json'}: {message}")


def test_a_report_without_attestations_fails_its_file_check(tmp_path: Path) -> None:
    (check,) = vr.check_files(tmp_path, report())
    assert (check.subject, check.ok) == ("release.json", False)
    assert check.line() == "FAIL  files      release.json: the report records no SBOM or provenance"


# -- against the registry, skopeo mocked -------------------------------------------------


class Skopeo:
    """The registry as skopeo sees it: what `inspect --raw` serves, what `copy` accepts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, served: dict[str, str]) -> None:
        self.served = served
        self.refused: dict[str, str] = {}  # reference: skopeo's fatal message
        self.copies: list[list[str]] = []
        monkeypatch.setattr(registry, "raw_manifest", self.raw_manifest)
        monkeypatch.setattr(registry, "run_skopeo", self.run_skopeo)

    def raw_manifest(self, ref: str, **_: object) -> str:
        if ref not in self.served:
            raise registry.RegistryError(f"{ref}: manifest unknown")
        return self.served[ref]

    def run_skopeo(self, args: list[str], **_: object) -> process.Result:
        self.copies.append(args)
        ref = args[-2].removeprefix("docker://")
        if ref in self.refused:
            stderr = f'time="x" level=fatal msg="{self.refused[ref]}"\n'
            return process.Result(["skopeo", *args], 1, "", stderr)
        return process.Result(["skopeo", *args], 0, "", "")


def published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Skopeo]:
    """The sample report, and a registry serving manifests whose digests it records."""
    data = report()
    served: dict[str, str] = {}
    for entry in [*data["tags"], *data["images"]]:
        ref = entry["reference"]
        served[ref] = json.dumps({"ref": ref})
        digest = "sha256:" + hashlib.sha256(served[ref].encode()).hexdigest()
        entry["digest" if "digest" in entry else "manifest_digest"] = digest
    # the tags of one list share its digest: serve the first one's manifest for both
    served[data["tags"][1]["reference"]] = served[data["tags"][0]["reference"]]
    data["tags"][1]["digest"] = data["tags"][0]["digest"]
    directory, _ = write_report(tmp_path, data)
    return directory, Skopeo(monkeypatch, served)


def test_every_tag_and_image_is_checked_by_digest_and_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, skopeo = published(tmp_path, monkeypatch)
    key = tmp_path / "k.asc"
    key.write_text("key")
    options = vr.VerifyOptions(gpg_public_key=key, registries_d=Path("/rd"), tls_verify=False)
    checks = vr.verify_release(directory, options)
    registry_checks = [(c.subject, c.what, c.ok) for c in checks if c.what != "sbom"]
    assert all(c.ok for c in checks), [c.line() for c in checks if not c.ok]
    repo = "registry.example/rp"
    assert [c for c in registry_checks if c[1] in ("digest", "signature")] == [
        (f"{repo}:{tag}", what, True)
        for tag in ("1.0.0-minimal", "1.0.0", "1.0.0-minimal-amd64", "1.0.0-minimal-arm64")
        for what in ("digest", "signature")
    ]
    first = skopeo.copies[0]
    policy = first[first.index("--policy") + 1]
    assert first[first.index("--policy") :] == [
        "--policy", policy, "--registries.d", "/rd", "copy", "--quiet",
        "--src-tls-verify=false", "--all", f"docker://{repo}:1.0.0-minimal",
        f"dir:{Path(policy).parent / 'copy'}",
    ]  # fmt: skip
    assert "--all" not in skopeo.copies[2]  # a single image, not a list
    assert not Path(policy).exists()  # the temporary policy is gone


def test_a_wrong_digest_and_a_refused_signature_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, skopeo = published(tmp_path, monkeypatch)
    repo = "registry.example/rp"
    skopeo.served[f"{repo}:1.0.0-minimal-arm64"] = "{}"
    skopeo.refused[f"{repo}:1.0.0-minimal-amd64"] = "Source image rejected: no signature"
    del skopeo.served[f"{repo}:1.0.0"]
    own = tmp_path / "policy.json"
    own.write_text("{}")
    checks = vr.verify_release(directory, vr.VerifyOptions(policy=own))
    failed = {(c.subject, c.what): c.detail for c in checks if not c.ok}
    empty = "sha256:" + hashlib.sha256(b"{}").hexdigest()
    assert failed == {
        (f"{repo}:1.0.0", "digest"): f"{repo}:1.0.0: manifest unknown",
        (f"{repo}:1.0.0-minimal-amd64", "signature"): "Source image rejected: no signature",
        (f"{repo}:1.0.0-minimal-arm64", "digest"): (
            f"the registry serves {empty}, the report says "
            + next(i["manifest_digest"] for i in vr.load_report(directory)["images"]
                   if i["system"] == "aarch64-linux")
        ),
    }  # fmt: skip
    ok = [c for c in checks if c.ok and c.what == "signature"]
    assert ok and all(c.detail == f"policy {own}" for c in ok)


def test_a_signed_release_needs_a_key_and_an_unpushed_one_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, _ = published(tmp_path, monkeypatch)
    data = vr.load_report(directory)
    data["signing"] = {"method": "gpg", "key": "ABCD"}
    (directory / "release.json").write_text(json.dumps(data))
    with pytest.raises(RpbuildError, match=r"the release is signed \(gpg, ABCD\): give the"):
        vr.verify_release(directory, vr.VerifyOptions())
    with pytest.raises(RpbuildError, match=r"/nope\.asc: no such file$"):
        vr.verify_release(directory, vr.VerifyOptions(gpg_public_key=tmp_path / "nope.asc"))
    data["tags"], data["signing"] = [], None
    for image in data["images"]:
        image["reference"] = None
    (directory / "release.json").write_text(json.dumps(data))
    checks = vr.verify_release(directory, vr.VerifyOptions())
    assert checks[-1].line() == f"FAIL  digest     {directory}: the release pushed nothing"
