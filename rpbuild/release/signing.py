"""Signed pushes, the way the containers tools (skopeo, podman, CRI-O) verify them.

Two kinds, both made by skopeo while it pushes:
- GPG "simple signing" (`skopeo copy --sign-by FINGERPRINT`, every skopeo): the
  signature goes to the lookaside store that registries.d names for the registry
  (`lookaside-staging`, or `lookaside`); readers find it through their own registries.d.
- sigstore signatures with a private key (`--sign-by-sigstore-private-key`), stored in
  the registry itself next to the image when registries.d says
  `use-sigstore-attachments: true` for it. skopeo has the option since 1.9, but Debian
  12's build fails every such signature ("sigstore disabled"); keys are made by
  `skopeo generate-sigstore-key` (1.11+) or cosign.
Whether this skopeo can sign with the key is found out before anything is built, by
signing a one-blob image between two temporary directories.
A signature names the tag it was made for, so every tag is signed on its own, and a
manifest list's images are signed again under the list's tag (a pull of the list
checks them under that name).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpbuild import process
from rpbuild.errors import ExitCode, RpbuildError, ToolMissing
from rpbuild.registry import skopeo_message

SIGSTORE_FLAG = "--sign-by-sigstore-private-key"
PASSPHRASE_FLAG = "--sign-passphrase-file"  # noqa: S105 - an option name
#: The identity the signing probe signs for; it never leaves a temporary directory.
PROBE_IDENTITY = "rpbuild.invalid/signing-probe:latest"


class SigningRefused(RpbuildError):
    """Signing was asked for and cannot be done; nothing was built or pushed.

    What was asked cannot be done as given (no such key, no passphrase, no --push, a
    skopeo that cannot sign that way): an input error, like a usage error.
    """

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Signing:
    """How a release signs what it pushes (one of gpg_key, sigstore_key)."""

    gpg_key: str | None = None  # fingerprint or key ID in the GnuPG keyring (GNUPGHOME)
    sigstore_key: Path | None = None  # a sigstore private key (skopeo generate-sigstore-key)
    passphrase_file: Path | None = None
    registries_d: Path | None = None  # skopeo --registries.d (default: the system's)

    @property
    def method(self) -> str:
        return "gpg" if self.gpg_key else "sigstore"

    @property
    def key(self) -> str:
        return self.gpg_key or str(self.sigstore_key)

    def global_args(self) -> list[str]:
        return ["--registries.d", str(self.registries_d)] if self.registries_d else []

    def copy_args(self) -> list[str]:
        args = (
            ["--sign-by", self.gpg_key] if self.gpg_key else [SIGSTORE_FLAG, str(self.sigstore_key)]
        )
        if self.passphrase_file is not None:
            args += [PASSPHRASE_FLAG, str(self.passphrase_file)]
        return args

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "key": self.key,
            "registries_d": str(self.registries_d) if self.registries_d else None,
        }


def skopeo_version() -> str:
    result = process.run(["skopeo", "--version"], what="skopeo --version", check=False)
    words = result.stdout.split()
    return words[-1] if words else "(unknown version)"


def check(signing: Signing | None, push: str | None) -> None:
    """Before anything is built: the key can be used and this skopeo can sign with it."""
    if signing is None:
        return
    if signing.gpg_key and signing.sigstore_key:
        raise SigningRefused(
            f"--sign-by and {SIGSTORE_FLAG}: choose one kind of signature per release"
        )
    if push is None:
        raise SigningRefused("signing needs --push: the signatures are made while pushing")
    if process.which("skopeo") is None:
        raise ToolMissing(
            "skopeo is not installed; signing needs it", hint="apt-get install skopeo"
        )
    if signing.registries_d is not None and not signing.registries_d.is_dir():
        raise SigningRefused(f"--registries-d {signing.registries_d}: not a directory")
    if signing.passphrase_file is not None:
        _readable(signing.passphrase_file, PASSPHRASE_FLAG)
    if signing.sigstore_key is not None:
        _readable(signing.sigstore_key, SIGSTORE_FLAG)
    if signing.gpg_key:
        _check_gpg_key(signing.gpg_key)
    reason = probe(signing)
    if reason is not None:
        option = "--sign-by" if signing.gpg_key else SIGSTORE_FLAG
        hint = None
        if signing.sigstore_key is not None and ("disabled" in reason or "unknown flag" in reason):
            hint = (
                "Debian 12's skopeo 1.9 is built without sigstore signing; use a skopeo that "
                "has it (`skopeo generate-sigstore-key` is a sign of one), or --sign-by with "
                "a GPG key"
            )
        raise SigningRefused(
            f"{option} {signing.key}: skopeo {skopeo_version()} cannot sign with it: {reason}",
            hint=hint,
        )


def probe(signing: Signing) -> str | None:
    """Sign a one-blob image from one temporary `dir:` into another, as the push will
    sign: proves the key, its passphrase and that this skopeo makes this kind of
    signature, before anything is built. None when it signed, else skopeo's reason."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    digest = hashlib.sha256(config).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": f"sha256:{digest}",
            "size": len(config),
        },
        "layers": [],
    }
    with tempfile.TemporaryDirectory(prefix="rpbuild-sign-probe-") as tmp:
        source = Path(tmp) / "image"
        source.mkdir()
        (source / "version").write_text("Directory Transport Version: 1.1\n", encoding="utf-8")
        (source / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        (source / digest).write_bytes(config)
        argv = ["skopeo", "copy", "--quiet", "--sign-identity", PROBE_IDENTITY]
        argv += [*signing.copy_args(), f"dir:{source}", f"dir:{Path(tmp) / 'signed'}"]
        result = process.run(argv, what="skopeo copy (signing probe)", check=False)
    if result.returncode == 0:
        return None
    return skopeo_message(result.stderr) or f"skopeo exited with {result.returncode}"


#: Where containers/image looks for registries.d when none is given (system, then user).
DEFAULT_REGISTRIES_D = (
    Path("/etc/containers/registries.d"),
    Path.home() / ".config" / "containers" / "registries.d",
)


def lookaside_warning(signing: Signing | None, push: str | None) -> str | None:
    """A GPG signature goes where registries.d says for the registry; with no entry
    for it (and no default-docker), skopeo writes it to a local default directory
    that no user of the images reads. Said before the build, not found out after."""
    if signing is None or not signing.gpg_key or push is None:
        return None
    host = push.split("/", 1)[0]
    dirs = (signing.registries_d,) if signing.registries_d else DEFAULT_REGISTRIES_D
    for directory in dirs:
        for path in sorted(directory.glob("*.y*ml")) if directory.is_dir() else []:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError:
                continue
            # Comments do not count: Debian's default.yaml shows its examples commented out.
            live = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
            if host in live or "default-docker" in live:
                return None
    where = ", ".join(str(d) for d in dirs)
    return (
        f"warning: no registries.d file in {where} names {host} (or default-docker): skopeo "
        "writes the GPG signatures to its local default lookaside directory, where users of "
        "the images will not find them; configure `lookaside` for the registry (see README)"
    )


def _readable(path: Path, option: str) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise SigningRefused(f"{option} {path}: cannot read it: {exc.strerror}") from None


def _check_gpg_key(key: str) -> None:
    if process.which("gpg") is None:
        raise ToolMissing("gpg is not installed; --sign-by needs it", hint="apt-get install gnupg")
    result = process.run(
        ["gpg", "--batch", "--with-colons", "--list-secret-keys", "--", key],
        what="gpg --list-secret-keys",
        check=False,
    )
    if result.returncode != 0 or not any(
        line.startswith("sec:") for line in result.stdout.splitlines()
    ):
        raise SigningRefused(
            f"--sign-by {key}: no such secret key in the GnuPG keyring "
            "(see `gpg --list-secret-keys`; GNUPGHOME chooses the keyring)"
        )


def policy(
    repository: str, *, gpg_public_key: Path | None, sigstore_public_key: Path | None
) -> dict[str, Any]:
    """A containers-policy.json that accepts from repository only images signed by the
    key (each signature for the very tag it is pulled by) and rejects everything else."""
    if gpg_public_key is not None:
        requirement: dict[str, Any] = {
            "type": "signedBy",
            "keyType": "GPGKeys",
            "keyPath": str(gpg_public_key.resolve()),
        }
    elif sigstore_public_key is not None:
        requirement = {"type": "sigstoreSigned", "keyPath": str(sigstore_public_key.resolve())}
    else:
        raise RpbuildError("a policy needs a public key")
    accept = [{"type": "insecureAcceptAnything"}]
    return {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {repository: [requirement]},
            "oci": {"": accept},
            "dir": {"": accept},
        },
    }


def verify_args(policy_path: Path, registries_d: Path | None) -> list[str]:
    """skopeo's global options for a copy that the policy must allow."""
    args = ["--policy", str(policy_path)]
    if registries_d is not None:
        args += ["--registries.d", str(registries_d)]
    return args
