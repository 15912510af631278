"""Signed releases against real parts: a throwaway GPG key, Debian's docker-registry, a
lookaside signature directory (file:// in registries.d), and skopeo with a policy.json
that requires the signature: it accepts the released tags and refuses an unsigned image
and a signed image under a tag it was not signed for. The sigstore variant needs a
skopeo that makes sigstore signatures (1.10+, e.g. Debian 13's 1.18)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rpbuild import sbom
from rpbuild.release import signing
from tests.conftest import STANDIN_OVERRIDES, RunCli, commit_all, git
from tests.integration.test_release import REGISTRY_BIN, Registry, _serve

pytestmark = [
    pytest.mark.nix,
    pytest.mark.docker,
    pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed"),
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed"),
    pytest.mark.skipif(shutil.which("gpg") is None, reason="gnupg is not installed"),
    pytest.mark.skipif(not Path(REGISTRY_BIN).exists(), reason="docker-registry is not installed"),
]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with _serve(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@dataclass(frozen=True)
class GpgKey:
    home: Path
    fingerprint: str
    public: Path  # armoured public key, what users put in policy.json

    @property
    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.home)}


@pytest.fixture(scope="module")
def gpg_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgKey]:
    """A throwaway signing key without passphrase, in a keyring of its own."""
    root = tmp_path_factory.mktemp("gpg")
    home = root / "home"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    gpg = ["gpg", "--batch", "--quiet"]
    subprocess.run(
        [*gpg, "--passphrase", "", "--quick-gen-key", "rpbuild test <test@rpbuild.invalid>",
         "ed25519", "sign", "never"],
        env=env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    listing = subprocess.run(
        [*gpg, "--with-colons", "--list-secret-keys"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    fingerprint = next(
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
    )
    public = root / "signing-key.asc"
    public.write_bytes(
        subprocess.run(
            [*gpg, "--armor", "--export", fingerprint], env=env, check=True, capture_output=True
        ).stdout
    )
    try:
        yield GpgKey(home, fingerprint, public)
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False, capture_output=True)


@pytest.fixture
def repo(project: Path, rpbuild: RunCli) -> Path:
    (project / ".gitignore").write_text(".rpbuild/\n")
    assert rpbuild("--project", str(project), "render").returncode == 0
    git(project, "init", "-q")
    commit_all(project, "signing test project")
    return project


def registries_d(root: Path, host: str, entry: str) -> Path:
    directory = root / "registries.d"
    directory.mkdir()
    (directory / "rpbuild-test.yaml").write_text(f"docker:\n  {host}:\n{entry}")
    return directory


def lookaside(root: Path, host: str) -> tuple[Path, Path]:
    """registries.d whose signature store for the test registry is a local directory."""
    sigs = root / "signatures"
    sigs.mkdir()
    entry = f"    lookaside: file://{sigs}\n    lookaside-staging: file://{sigs}\n"
    return registries_d(root, host, entry), sigs


def release(rpbuild: RunCli, root: Path, env: dict[str, str], *args: str) -> Any:
    return rpbuild(
        "--project", str(root), "release", *args, "--no-tls-verify",
        *STANDIN_OVERRIDES, "--allow-override-input", env=env,
    )  # fmt: skip


def policy_file(root: Path, repository: str, requirement: dict[str, Any]) -> Path:
    path = root / "policy.json"
    path.write_text(
        json.dumps(
            {
                "default": [{"type": "reject"}],
                "transports": {
                    "docker": {repository: [requirement]},
                    "dir": {"": [{"type": "insecureAcceptAnything"}]},
                },
            }
        )
    )
    return path


def pull(
    policy: Path, regd: Path, ref: str, dest: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    """What a user's skopeo (or podman) does: copy out of the registry, under the policy."""
    shutil.rmtree(dest, ignore_errors=True)
    return subprocess.run(
        ["skopeo", "--policy", str(policy), "--registries.d", str(regd), "copy", "--quiet",
         "--src-tls-verify=false", *extra, f"docker://{ref}", f"dir:{dest}"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def skopeo_copy(regd: Path, source: str, dest: str) -> None:
    subprocess.run(
        ["skopeo", "--registries.d", str(regd), "copy", "--quiet", "--src-tls-verify=false",
         "--dest-tls-verify=false", f"docker://{source}", f"docker://{dest}"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip


def check_attestations(report_dir: Path) -> dict[str, Any]:
    """The report's SBOMs are schema-valid and name their images; the provenance's
    subjects are exactly the digests pushed."""
    report: dict[str, Any] = json.loads((report_dir / "release.json").read_text())
    for image in report["images"]:
        path = report_dir / f"sbom-{image['profile']}-{image['system']}.cdx.json"
        text = path.read_text()
        assert sbom.validation_errors(text) is None, path
        doc = json.loads(text)
        props = {p["name"]: p["value"] for p in doc["metadata"]["component"]["properties"]}
        assert props["rpbuild:image_id"] == image["image_id"]
        # The components are the image's closure as nix reports it: the profile's
        # contents (the sizes report's packages, entrypoint included) through path-info -r.
        sizes = json.loads((report_dir / f"sizes-{image['system']}.json").read_text())
        profile = next(p for p in sizes["profiles"] if p["name"] == image["profile"])
        roots = [pkg["path"] for pkg in profile["packages"]]
        assert any(r.endswith("-rpbuild-entrypoint") for r in roots)
        closure = subprocess.run(
            ["nix", "--extra-experimental-features", "nix-command", "path-info", "-r", *roots],
            check=True, capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        assert sorted(c["bom-ref"] for c in doc["components"]) == sorted(closure)
    statement = json.loads((report_dir / "provenance.intoto.json").read_text())
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    subjects = {(s["name"], "sha256:" + s["digest"]["sha256"]) for s in statement["subject"]}
    pushed = {(t["reference"], t["digest"]) for t in report["tags"]} | {
        (i["reference"], i["manifest_digest"]) for i in report["images"]
    }
    assert subjects == pushed
    predicate = statement["predicate"]
    deps = {d["name"]: d for d in predicate["buildDefinition"]["resolvedDependencies"]}
    for name in ("nixpkgs", "rosenpass"):
        assert deps[name]["digest"]["gitCommit"] == report["inputs"][name]["rev"]
        assert deps[name]["annotations"]["narHash"] == report["inputs"][name]["nar_hash"]
        assert deps[name]["digest"]["sha256"] == sbom.sha256_hex(report["inputs"][name]["nar_hash"])
    assert deps["project"]["digest"]["gitCommit"] == report["git"]["commit"]
    builder = predicate["runDetails"]["builder"]["version"]
    assert builder == {"rpbuild": report["rpbuild_version"], "nix": report["nix_version"]}
    invocation = predicate["buildDefinition"]["externalParameters"]["invocation"]
    assert invocation[:2] == ["rpbuild", "--project"] and "release" in invocation
    summary = (report_dir / "SUMMARY.md").read_text()
    assert "(provenance.intoto.json)" in summary
    assert "(sbom-minimal-x86_64-linux.cdx.json)" in summary
    return report


def accepts_the_release_refuses_a_retag(
    policy: Path, regd: Path, report: dict[str, Any], push: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """A policy that requires the signature accepts every released tag (the list with
    every image in it: a pull checks them under the list's tag) and every image, and
    refuses a copy re-tagged by someone without the key: same bytes and digest, but the
    signature names another tag. Returns that refusal."""
    out = tmp_path / "pulled"
    for tag in report["tags"]:
        accepted = pull(policy, regd, tag["reference"], out, "--all")
        assert accepted.returncode == 0, accepted.stderr
    for image in report["images"]:
        accepted = pull(policy, regd, image["reference"], out)
        assert accepted.returncode == 0, accepted.stderr
    amd64 = next(i for i in report["images"] if i["system"] == "x86_64-linux")
    skopeo_copy(regd, amd64["reference"], f"{push}:latest")
    refused = pull(policy, regd, f"{push}:latest", out)
    assert refused.returncode != 0, "a re-tagged image was accepted"
    return refused


def test_a_gpg_signed_release_is_accepted_and_an_unsigned_or_retagged_image_refused(
    repo: Path, rpbuild: RunCli, registry: Registry, gpg_key: GpgKey, tmp_path: Path
) -> None:
    push = f"{registry.host}/signed/rosenpass"
    regd, sigs = lookaside(tmp_path, registry.host)
    reports = tmp_path / "reports"
    done = release(
        rpbuild, repo, gpg_key.env, "2.0.0", "--profile", "minimal",
        "--system", "x86_64-linux", "--system", "aarch64-linux", "--push", push,
        "--sign-by", gpg_key.fingerprint, "--registries-d", str(regd),
        "--report", str(reports / "2.0.0"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = check_attestations(reports / "2.0.0")
    assert report["signing"]["method"] == "gpg"
    assert report["signing"]["key"] == gpg_key.fingerprint
    assert any(sigs.rglob("signature-*")), "no signature in the lookaside store"

    # rpbuild's own check: digests, signatures (through a policy it writes from the
    # public key), SBOMs and provenance.
    verified = rpbuild(
        "verify-release", str(reports / "2.0.0"), "--key", str(gpg_key.public),
        "--registries-d", str(regd), "--no-tls-verify",
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    lines = verified.stdout.splitlines()
    assert sum("signature" in line for line in lines) == 4, verified.stdout  # 2 tags, 2 images
    assert all(line.startswith("ok") for line in lines), verified.stdout

    # A user's policy that requires the key: every pushed tag is accepted, the list with
    # every image in it (a pull checks them under the list's tag).
    policy = policy_file(
        tmp_path, push, {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(gpg_key.public)}
    )
    refused = accepts_the_release_refuses_a_retag(policy, regd, report, push, tmp_path)
    assert "not accepted" in refused.stderr or "rejected" in refused.stderr, refused.stderr

    # An unsigned release into the same repository: refused by the policy and by
    # verify-release, which names the tag and the signature.
    unsigned = release(
        rpbuild, repo, {}, "2.0.1", "--profile", "debug", "--push", push,
        "--report", str(reports / "2.0.1"),
    )  # fmt: skip
    assert unsigned.returncode == 0, unsigned.stderr
    assert json.loads((reports / "2.0.1" / "release.json").read_text())["signing"] is None
    refused = pull(policy, regd, f"{push}:2.0.1-debug", tmp_path / "pulled")
    assert refused.returncode != 0
    assert "signature" in refused.stderr.lower(), refused.stderr
    failed = rpbuild(
        "verify-release", str(reports / "2.0.1"), "--key", str(gpg_key.public),
        "--registries-d", str(regd), "--no-tls-verify",
    )  # fmt: skip
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("rpbuild: error:")]
    assert len(errors) == 1 and f"{push}:2.0.1-debug: signature:" in errors[0], failed.stderr

    # A signed release needs the key to be verified; the report's files must be intact.
    keyless = rpbuild("verify-release", str(reports / "2.0.0"), "--no-tls-verify")
    assert keyless.returncode != 0
    assert "--key" in keyless.stderr and "Traceback" not in keyless.stderr
    tampered = tmp_path / "tampered"
    shutil.copytree(reports / "2.0.0", tampered)
    sbom_file = tampered / "sbom-minimal-x86_64-linux.cdx.json"
    sbom_file.write_text(sbom_file.read_text().replace("glibc", "glibc-evil"))
    bad = rpbuild(
        "verify-release", str(tampered), "--key", str(gpg_key.public),
        "--registries-d", str(regd), "--no-tls-verify",
    )  # fmt: skip
    assert bad.returncode == 1
    assert "sbom-minimal-x86_64-linux.cdx.json: sbom: changed since the release" in bad.stderr


def test_signing_with_a_key_that_is_not_there_is_refused_before_any_build(
    repo: Path, rpbuild: RunCli, registry: Registry, gpg_key: GpgKey, tmp_path: Path
) -> None:
    push = f"{registry.host}/nokey/rosenpass"
    done = release(
        rpbuild, repo, gpg_key.env, "1.0.0", "--profile", "minimal",
        "--push", push, "--sign-by", "0123456789ABCDEF0123456789ABCDEF01234567",
        "--report", str(tmp_path / "r"),
    )  # fmt: skip
    assert done.returncode == 2  # an input error (README: exit codes)
    errors = [line for line in done.stderr.splitlines() if line.startswith("rpbuild: error:")]
    assert len(errors) == 1 and "no such secret key" in errors[0], done.stderr
    assert "nokey/rosenpass" not in registry.catalog()
    assert not (tmp_path / "r").exists()


def _sigstore_key(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A sigstore key pair made by skopeo, its passphrase file; skips (naming why) where
    this skopeo cannot make or use one."""
    help_text = subprocess.run(["skopeo", "--help"], capture_output=True, text=True).stdout
    if "generate-sigstore-key" not in help_text:
        pytest.skip(
            f"skopeo {signing.skopeo_version()} has no generate-sigstore-key (skopeo 1.11+)"
        )
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("rpbuild test passphrase\n")
    subprocess.run(
        ["skopeo", "generate-sigstore-key", "--output-prefix", str(tmp_path / "key"),
         "--passphrase-file", str(passphrase)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    private = tmp_path / "key.private"
    reason = signing.probe(signing.Signing(sigstore_key=private, passphrase_file=passphrase))
    if reason is not None:
        pytest.skip(f"skopeo {signing.skopeo_version()} cannot make sigstore signatures: {reason}")
    return private, tmp_path / "key.pub", passphrase


def test_a_sigstore_signed_release_is_accepted_and_an_unsigned_image_refused(
    repo: Path, rpbuild: RunCli, registry: Registry, tmp_path: Path
) -> None:
    private, public, passphrase = _sigstore_key(tmp_path)
    push = f"{registry.host}/sigstore/rosenpass"
    regd = registries_d(tmp_path, registry.host, "    use-sigstore-attachments: true\n")
    reports = tmp_path / "reports"
    done = release(
        rpbuild, repo, {}, "3.0.0", "--profile", "minimal", "--push", push,
        "--system", "x86_64-linux", "--system", "aarch64-linux",
        "--sign-by-sigstore-private-key", str(private), "--sign-passphrase-file", str(passphrase),
        "--registries-d", str(regd), "--report", str(reports / "3.0.0"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = check_attestations(reports / "3.0.0")
    assert report["signing"]["method"] == "sigstore"
    verified = rpbuild(
        "verify-release", str(reports / "3.0.0"), "--sigstore-key", str(public),
        "--registries-d", str(regd), "--no-tls-verify",
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    policy = policy_file(tmp_path, push, {"type": "sigstoreSigned", "keyPath": str(public)})
    accepts_the_release_refuses_a_retag(policy, regd, report, push, tmp_path)
    unsigned = release(
        rpbuild, repo, {}, "3.0.1", "--profile", "debug", "--push", push,
        "--report", str(reports / "3.0.1"),
    )  # fmt: skip
    assert unsigned.returncode == 0, unsigned.stderr
    refused = pull(policy, regd, f"{push}:3.0.1-debug", tmp_path / "pulled")
    assert refused.returncode != 0, "an unsigned image was accepted"


def test_a_sigstore_key_this_skopeo_cannot_sign_with_is_refused_in_one_line(
    repo: Path, rpbuild: RunCli, registry: Registry, tmp_path: Path
) -> None:
    """Not a key (and, on Debian 12, no sigstore signing at all): refused before any
    build, naming the option, the key and skopeo's reason."""
    key = tmp_path / "key.private"
    key.write_text("not a sigstore key\n")
    push = f"{registry.host}/unusable/rosenpass"
    done = release(
        rpbuild, repo, {}, "1.0.0", "--profile", "minimal", "--push", push,
        "--sign-by-sigstore-private-key", str(key), "--report", str(tmp_path / "r"),
    )  # fmt: skip
    assert done.returncode == 2  # an input error (README: exit codes)
    errors = [line for line in done.stderr.splitlines() if line.startswith("rpbuild: error:")]
    assert len(errors) == 1, done.stderr
    assert f"--sign-by-sigstore-private-key {key}: skopeo" in errors[0]
    assert "cannot sign with it" in errors[0]
    assert "building" not in done.stderr
    assert "unusable/rosenpass" not in registry.catalog()
    assert not (tmp_path / "r").exists()
