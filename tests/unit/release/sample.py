"""A hand-made release report of one profile on two systems, pushed as a manifest list,
and its SBOMs and provenance written next to it: what the provenance, verify-published
and signing tests read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rpbuild.release import provenance

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


def write_report(tmp_path: Path, data: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """The report (default: report()) finished by provenance, with its files, in tmp_path."""
    data = report() if data is None else data
    boms = {(i["profile"], i["system"]): sbom_text(i["image_id"]) for i in data["images"]}
    files = provenance.finish(
        data, boms, invocation=["rpbuild", "release"], started="s", finished="f", signing=None
    )
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "release.json").write_text(json.dumps(data))
    return tmp_path, data
