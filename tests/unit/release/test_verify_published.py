"""verify-release's checks of a published release: the report's own files, and the registry
through skopeo (mocked here: argument building and output parsing only; the real registry
and skopeo are in tests/integration/test_signing.py)."""

from __future__ import annotations

from pathlib import Path

from rpbuild.release import verify_published as vr
from tests.unit.release.sample import sbom_text, write_report


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
