"""Signing's arguments, policies and up-front refusals (skopeo and gpg mocked here: argument
building and output parsing only; signing with the real tools is in
tests/integration/test_signing.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpbuild import process
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


# -- argument building and output parsing, skopeo and gpg mocked -----------------------


class Recorder:
    """process.run as skopeo and gpg answer it: each argv recorded, one answer each."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *answers: tuple[int, str, str]) -> None:
        self.argvs: list[list[str]] = []
        self.answers = list(answers)
        self.seen_files: list[str] = []
        monkeypatch.setattr(process, "which", lambda name: f"/usr/bin/{name}")
        monkeypatch.setattr(process, "run", self.run)

    def run(self, argv: list[str], **_: object) -> process.Result:
        self.argvs.append(argv)
        for arg in argv:
            if arg.startswith("dir:") and Path(arg[4:]).is_dir():
                self.seen_files += sorted(p.name for p in Path(arg[4:]).iterdir())
        returncode, stdout, stderr = self.answers.pop(0)
        return process.Result(argv, returncode, stdout, stderr)


def answer(returncode: int = 0, stdout: str = "", stderr: str = "") -> tuple[int, str, str]:
    return returncode, stdout, stderr


@pytest.mark.parametrize(
    ("stdout", "version"),
    [("skopeo version 1.9.3\n", "1.9.3"), ("", "(unknown version)")],
)
def test_skopeo_version_is_the_last_word(
    monkeypatch: pytest.MonkeyPatch, stdout: str, version: str
) -> None:
    calls = Recorder(monkeypatch, answer(stdout=stdout))
    assert signing.skopeo_version() == version
    assert calls.argvs == [["skopeo", "--version"]]


def test_the_probe_signs_a_one_blob_image_between_two_directories(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = Recorder(monkeypatch, answer())
    sign = signing.Signing(sigstore_key=Path("k.private"), passphrase_file=Path("pw"))
    assert signing.probe(sign) is None
    (argv,) = calls.argvs
    assert argv[:5] == ["skopeo", "copy", "--quiet", "--sign-identity", signing.PROBE_IDENTITY]
    assert argv[5:9] == sign.copy_args()
    source, dest = argv[9:]
    assert source.startswith("dir:") and source.endswith("/image")
    assert dest.startswith("dir:") and dest.endswith("/signed")
    assert not Path(source[4:]).exists()  # the temporary directories are gone
    config, manifest, version = calls.seen_files
    assert (manifest, version) == ("manifest.json", "version") and len(config) == 64


@pytest.mark.parametrize(
    ("stderr", "reason"),
    [
        ('time="x" level=fatal msg="signing: sigstore disabled"\n', "signing: sigstore disabled"),
        ("", "skopeo exited with 1"),
    ],
)
def test_a_failed_probe_gives_skopeos_reason(
    monkeypatch: pytest.MonkeyPatch, stderr: str, reason: str
) -> None:
    Recorder(monkeypatch, answer(1, stderr=stderr))
    assert signing.probe(signing.Signing(gpg_key="ABCD")) == reason


def test_a_gpg_key_not_in_the_keyring_is_refused_before_the_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = Recorder(monkeypatch, answer(stdout="pub:u:255:22:ABCD:\n"))
    with pytest.raises(signing.SigningRefused) as info:
        signing.check(signing.Signing(gpg_key="ABCD"), "r.example/rp")
    assert info.value.message.startswith("--sign-by ABCD: no such secret key in the GnuPG keyring")
    assert calls.argvs == [["gpg", "--batch", "--with-colons", "--list-secret-keys", "--", "ABCD"]]


def test_a_skopeo_without_sigstore_is_refused_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = tmp_path / "k.private"
    key.write_text("key")
    Recorder(
        monkeypatch,
        answer(1, stderr='level=fatal msg="creating signer: sigstore disabled"\n'),
        answer(stdout="skopeo version 1.9.3\n"),
    )
    with pytest.raises(signing.SigningRefused) as info:
        signing.check(signing.Signing(sigstore_key=key), "r.example/rp")
    assert info.value.message == (
        f"--sign-by-sigstore-private-key {key}: skopeo 1.9.3 cannot sign with it: "
        "creating signer: sigstore disabled"
    )
    assert info.value.hint is not None and "Debian 12's skopeo 1.9" in info.value.hint


def test_a_key_that_signs_passes_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Recorder(
        monkeypatch,
        answer(stdout="sec:u:255:22:ABCD:\n"),
        answer(),
    )
    signing.check(signing.Signing(gpg_key="ABCD"), "r.example/rp")
    assert [argv[0] for argv in calls.argvs] == ["gpg", "skopeo"]


def test_unreadable_key_files_are_refused_by_option(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = Recorder(monkeypatch)
    sign = signing.Signing(sigstore_key=tmp_path / "k", passphrase_file=tmp_path / "pw")
    with pytest.raises(signing.SigningRefused) as info:
        signing.check(sign, "r.example/rp")
    assert info.value.message == (
        f"--sign-passphrase-file {tmp_path / 'pw'}: cannot read it: No such file or directory"
    )
    assert calls.argvs == []  # refused before skopeo is asked


def test_verify_args_name_the_policy_and_the_registries_d() -> None:
    assert signing.verify_args(Path("p.json"), None) == ["--policy", "p.json"]
    assert signing.verify_args(Path("p.json"), Path("/rd")) == [
        "--policy", "p.json", "--registries.d", "/rd",
    ]  # fmt: skip
