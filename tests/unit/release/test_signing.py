"""Signing's arguments, policies and up-front refusals (skopeo and gpg mocked here: argument
building and output parsing only; signing with the real tools is in
tests/integration/test_signing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpbuild.release import signing


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
