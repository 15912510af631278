"""The provenance statement, the report's supply-chain checks and the signing arguments:
pure functions over hand-made reports (the real tools are in tests/integration)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rpbuild import provenance, signing
from rpbuild import verify_release as vr

NAR = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # SHA-256 of nothing
LIST = "sha256:" + "a" * 64
AMD64 = "sha256:" + "b" * 64
ARM64 = "sha256:" + "c" * 64


def report() -> dict[str, Any]:
    repo = "registry.example/rp"
    return {
        "format": "rpbuild-release/1",
        "version": "1.0.0",
        "snapshot": False,
        "repository": repo,
        "git": {"commit": "d" * 40, "clean": True, "changes": []},
        "rpbuild_version": "0.1.0",
        "nix_version": "2.8.0",
        "inputs": {
            "nixpkgs": {
                "rev": "e" * 40,
                "nar_hash": NAR,
                "source": "NixOS/nixpkgs",
                "last_modified": 1,
                "override": None,
            },
        },
        "profiles": ["minimal"],
        "systems": ["x86_64-linux", "aarch64-linux"],
        "images": [
            {
                "profile": "minimal",
                "system": "x86_64-linux",
                "architecture": "amd64",
                "image_id": "sha256:" + "1" * 64,
                "manifest_digest": AMD64,
                "reference": f"{repo}:1.0.0-minimal-amd64",
            },
            {
                "profile": "minimal",
                "system": "aarch64-linux",
                "architecture": "arm64",
                "image_id": "sha256:" + "2" * 64,
                "manifest_digest": ARM64,
                "reference": f"{repo}:1.0.0-minimal-arm64",
            },
        ],
        "tags": [
            {
                "reference": f"{repo}:1.0.0-minimal",
                "digest": LIST,
                "profile": "minimal",
                "kind": "list",
                "platforms": ["linux/amd64", "linux/arm64"],
            },
            {
                "reference": f"{repo}:1.0.0",
                "digest": LIST,
                "profile": "minimal",
                "kind": "list",
                "platforms": ["linux/amd64", "linux/arm64"],
            },
        ],
    }


def sbom_text(image_id: str) -> str:
    return json.dumps(
        {
            "metadata": {
                "component": {"properties": [{"name": "rpbuild:image_id", "value": image_id}]}
            }
        }
    )


def write_report(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    data = report()
    boms = {(i["profile"], i["system"]): sbom_text(i["image_id"]) for i in data["images"]}
    files = provenance.finish(
        data, boms, invocation=["rpbuild", "release"], started="s", finished="f", signing=None
    )
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "release.json").write_text(json.dumps(data))
    return tmp_path, data


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


def test_an_intact_report_passes_its_file_checks(tmp_path: Path) -> None:
    directory, data = write_report(tmp_path)
    checks = vr.check_files(directory, data)
    assert [c.what for c in checks] == ["sbom", "sbom", "provenance"]
    assert all(c.ok for c in checks), [c.line() for c in checks]
    summary = "\n".join(provenance.summary_lines(data))
    assert "[provenance.intoto.json](provenance.intoto.json)" in summary
    assert "[sbom-minimal-aarch64-linux.cdx.json](sbom-minimal-aarch64-linux.cdx.json)" in summary


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


def test_signing_arguments() -> None:
    gpg = signing.Signing(gpg_key="ABCD", registries_d=Path("/etc/rd"))
    assert gpg.copy_args() == ["--sign-by", "ABCD"]
    assert gpg.global_args() == ["--registries.d", "/etc/rd"]
    assert gpg.as_dict() == {"method": "gpg", "key": "ABCD", "registries_d": "/etc/rd"}
    sig = signing.Signing(sigstore_key=Path("k.private"), passphrase_file=Path("pw"))
    assert sig.copy_args() == [
        "--sign-by-sigstore-private-key", "k.private", "--sign-passphrase-file", "pw",
    ]  # fmt: skip
    assert sig.global_args() == [] and sig.method == "sigstore"


def test_policy_requires_the_key_for_the_repository_and_rejects_the_rest(tmp_path: Path) -> None:
    key = tmp_path / "k.asc"
    policy = signing.policy("reg.example/rp", gpg_public_key=key, sigstore_public_key=None)
    assert policy["default"] == [{"type": "reject"}]
    assert policy["transports"]["docker"] == {
        "reg.example/rp": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key)}]
    }
    sig = signing.policy("reg.example/rp", gpg_public_key=None, sigstore_public_key=key)
    assert sig["transports"]["docker"]["reg.example/rp"] == [
        {"type": "sigstoreSigned", "keyPath": str(key)}
    ]


def test_signing_is_refused_up_front_without_a_push_or_with_two_kinds(tmp_path: Path) -> None:
    both = signing.Signing(gpg_key="ABCD", sigstore_key=tmp_path / "k")
    with pytest.raises(signing.SigningRefused, match="choose one kind"):
        signing.check(both, "reg.example/rp")
    with pytest.raises(signing.SigningRefused, match="needs --push"):
        signing.check(signing.Signing(gpg_key="ABCD"), None)
    signing.check(None, None)  # nothing asked, nothing checked


def test_a_gpg_signature_without_a_lookaside_for_the_registry_is_warned_about(
    tmp_path: Path,
) -> None:
    regd = tmp_path / "registries.d"
    regd.mkdir()
    sign = signing.Signing(gpg_key="ABCD", registries_d=regd)
    warning = signing.lookaside_warning(sign, "ghcr.io/user/rp")
    assert warning is not None and "names ghcr.io" in warning
    (regd / "default.yaml").write_text("# default-docker:\n#  lookaside: file:///x\n")
    assert signing.lookaside_warning(sign, "ghcr.io/user/rp") is not None
    (regd / "ghcr.yaml").write_text("docker:\n  ghcr.io/user/rp:\n    lookaside: https://x\n")
    assert signing.lookaside_warning(sign, "ghcr.io/user/rp") is None
    sigstore = signing.Signing(sigstore_key=tmp_path / "k", registries_d=tmp_path / "none")
    assert signing.lookaside_warning(sigstore, "ghcr.io/user/rp") is None
