"""The provenance statement and the report's SBOM/provenance section: pure functions over
hand-made reports (the real tools are in tests/integration/test_signing.py)."""

from __future__ import annotations

from pathlib import Path

from rpbuild.release import provenance
from tests.unit.release.sample import report, write_report


def test_subjects_are_every_pushed_tag_and_image_once() -> None:
    names = {(s["name"], s["digest"]["sha256"]) for s in provenance.subjects(report())}
    assert names == {
        ("registry.example/rp:1.0.0-minimal", "a" * 64),
        ("registry.example/rp:1.0.0", "a" * 64),
        ("registry.example/rp:1.0.0-minimal-amd64", "b" * 64),
        ("registry.example/rp:1.0.0-minimal-arm64", "c" * 64),
    }


def test_without_a_push_the_subjects_are_the_image_ids() -> None:
    data = report()
    data["tags"] = []
    for image in data["images"]:
        image["reference"] = image["manifest_digest"] = None
    digests = {s["digest"]["sha256"] for s in provenance.subjects(data)}
    assert digests == {"1" * 64, "2" * 64}


def test_statement_records_inputs_builder_and_invocation() -> None:
    doc = provenance.statement(
        report(), invocation=["rpbuild", "release", "--version", "1.0.0"],
        started="t0", finished="t1", byproducts={"sbom-x.cdx.json": "f" * 64},
    )  # fmt: skip
    assert doc["_type"] == provenance.STATEMENT_TYPE
    assert doc["predicateType"] == provenance.PREDICATE_TYPE
    definition = doc["predicate"]["buildDefinition"]
    deps = {d["name"]: d for d in definition["resolvedDependencies"]}
    assert deps["nixpkgs"]["digest"] == {
        "gitCommit": "e" * 40,
        "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    }
    assert deps["nixpkgs"]["uri"] == "NixOS/nixpkgs"
    assert deps["project"]["digest"] == {"gitCommit": "d" * 40}
    assert definition["externalParameters"]["invocation"][-1] == "1.0.0"
    run = doc["predicate"]["runDetails"]
    assert run["builder"]["version"] == {"rpbuild": "0.1.0", "nix": "2.8.0"}
    assert run["byproducts"] == [{"name": "sbom-x.cdx.json", "digest": {"sha256": "f" * 64}}]


def test_the_summary_links_the_sboms_and_the_provenance(tmp_path: Path) -> None:
    _, data = write_report(tmp_path)
    summary = "\n".join(provenance.summary_lines(data))
    assert "[provenance.intoto.json](provenance.intoto.json)" in summary
    assert "[sbom-minimal-aarch64-linux.cdx.json](sbom-minimal-aarch64-linux.cdx.json)" in summary
