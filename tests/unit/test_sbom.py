"""The SBOM document: nix hashes as hex, components and edges from a closure, the schema."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess

import pytest

from rpbuild import sbom
from rpbuild.errors import RpbuildError
from rpbuild.nix import PathInfo

S = "/nix/store"
GLIBC = f"{S}/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-glibc-2.38-27"
GREP = f"{S}/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-gnugrep-3.11"
IPROUTE = f"{S}/cccccccccccccccccccccccccccccccc-iproute2-6.6.0"
ENTRY = f"{S}/dddddddddddddddddddddddddddddddd-rpbuild-entrypoint"
UNUSED = f"{S}/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-gcc-13.2.0"


def sri(data: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def info(path: str, *refs: str) -> PathInfo:
    return PathInfo(
        path=path,
        nar_size=1000,
        closure_size=None,
        references=tuple(sorted(refs)),
        nar_hash=sri(path.encode()),
    )


INFOS = {
    GLIBC: info(GLIBC, GLIBC),
    GREP: info(GREP, GLIBC),
    IPROUTE: info(IPROUTE, GLIBC, IPROUTE),
    ENTRY: info(ENTRY),
    UNUSED: info(UNUSED, GLIBC),
}
ROOTS = {"gnugrep": GREP, "iproute2": IPROUTE, "rpbuild-entrypoint": ENTRY}
META = {
    "gnugrep": sbom.PackageMeta.from_json(
        {"pname": "gnugrep", "version": "3.11", "licenses": [{"spdx": "GPL-3.0-or-later"}]}
    ),
    "iproute2": sbom.PackageMeta.from_json(
        {
            "pname": "iproute2",
            "version": "6.6.0",
            "licenses": [{"spdx": "GPL-2.0-only"}, {"spdx": None, "name": "Some Custom"}],
            "homepage": "https://wiki.linuxfoundation.org/networking/iproute2",
            "description": "utilities for TCP/IP networking",
        }
    ),
}
IMAGE = sbom.ImageMeta(
    name="rosenpass",
    tag="minimal",
    image_id="sha256:" + "1" * 64,
    fingerprint="f" * 64,
    inputs={"nixpkgs": {"rev": "abc", "nar_hash": "sha256-xyz", "override": None}},
    nix_version="2.8.0",
)


def document() -> dict[str, object]:
    closure = sbom.ImageClosure(
        profile="minimal",
        system="x86_64-linux",
        roots=ROOTS,
        infos=sbom.closure_of(sorted(ROOTS.values()), INFOS),
        meta=META,
    )
    text = sbom.to_json(sbom.make_bom(IMAGE, closure))
    assert sbom.validation_errors(text) is None
    data: dict[str, object] = json.loads(text)
    return data


def test_sha256_hex_reads_every_form_nix_prints() -> None:
    digest = hashlib.sha256(b"x").digest()
    assert sbom.sha256_hex(f"sha256:{digest.hex()}") == digest.hex()
    assert sbom.sha256_hex("sha256-" + base64.b64encode(digest).decode()) == digest.hex()
    assert sbom.sha256_hex("sha256:" + base64.b64encode(digest).decode()) == digest.hex()
    for bad in (None, "", "sha512-AAAA", "sha256:zz", "sha256:" + "e" * 52, "md5:abc"):
        assert sbom.sha256_hex(bad) is None, bad


@pytest.mark.nix
@pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed")
def test_nix32_decoding_agrees_with_nix_itself() -> None:
    nix = ["nix", "--extra-experimental-features", "nix-command"]
    for data in (b"", b"rosenpass", b"\xff" * 100):
        hex_digest = hashlib.sha256(data).hexdigest()
        nix32 = subprocess.run(
            [*nix, "hash", "to-base32", "--type", "sha256", hex_digest],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert len(nix32) == 52
        assert sbom.sha256_hex(f"sha256:{nix32}") == hex_digest


def test_one_component_per_store_path_of_the_closure_and_nothing_else() -> None:
    doc = document()
    components = doc["components"]
    assert isinstance(components, list)
    assert sorted(c["bom-ref"] for c in components) == sorted([GLIBC, GREP, IPROUTE, ENTRY])
    assert UNUSED not in {c["bom-ref"] for c in components}


def test_names_versions_hashes_and_licences() -> None:
    doc = document()
    comps = {c["bom-ref"]: c for c in doc["components"]}  # type: ignore[attr-defined]
    iproute = comps[IPROUTE]
    assert (iproute["name"], iproute["version"]) == ("iproute2", "6.6.0")
    assert iproute["purl"] == "pkg:nix/iproute2@6.6.0"
    assert iproute["hashes"] == [
        {"alg": "SHA-256", "content": hashlib.sha256(IPROUTE.encode()).hexdigest()}
    ]
    licences = [lic["license"] for lic in iproute["licenses"]]
    assert {"id": "GPL-2.0-only"} in licences
    assert {"name": "Some Custom"} in licences
    props = {p["name"]: p["value"] for p in iproute["properties"]}
    assert props["nix:store_path"] == IPROUTE
    assert props["nix:nar_hash"] == sri(IPROUTE.encode())
    assert iproute["type"] == "application"
    # A dependency without metadata is named from its store path, as nix splits it.
    glibc = comps[GLIBC]
    assert (glibc["name"], glibc["version"], glibc["type"]) == ("glibc", "2.38-27", "library")
    assert "licenses" not in glibc
    entry = comps[ENTRY]
    assert entry["name"] == "rpbuild-entrypoint" and "version" not in entry


def test_root_component_is_the_image_with_its_inputs() -> None:
    doc = document()
    root = doc["metadata"]["component"]  # type: ignore[index]
    assert root["type"] == "container"
    assert root["hashes"] == [{"alg": "SHA-256", "content": "1" * 64}]
    props = {p["name"]: p["value"] for p in root["properties"]}
    assert props["rpbuild:profile"] == "minimal"
    assert props["rpbuild:system"] == "x86_64-linux"
    assert props["rpbuild:image_id"] == IMAGE.image_id
    assert props["rpbuild:input:nixpkgs:rev"] == "abc"
    assert props["rpbuild:input:nixpkgs:nar_hash"] == "sha256-xyz"


def test_dependency_edges_are_the_references_without_self_references() -> None:
    doc = document()
    edges = {d["ref"]: sorted(d.get("dependsOn", [])) for d in doc["dependencies"]}  # type: ignore[attr-defined]
    root_ref = doc["metadata"]["component"]["bom-ref"]  # type: ignore[index]
    assert edges[root_ref] == sorted(ROOTS.values())
    assert edges[GREP] == [GLIBC]
    assert edges[IPROUTE] == [GLIBC]
    assert edges[GLIBC] == []
    assert edges[ENTRY] == []


def test_the_same_image_gives_the_same_serial_number() -> None:
    assert document()["serialNumber"] == document()["serialNumber"]


def test_schema_violations_are_reported() -> None:
    text = json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": "x"})
    assert sbom.validation_errors(text) is not None


def test_metadata_of_another_shape_is_ignored_not_fatal() -> None:
    assert sbom.PackageMeta.from_json(None) == sbom.PackageMeta()
    meta = sbom.PackageMeta.from_json({"pname": 3, "licenses": ["x", {"spdx": 1, "name": "N"}]})
    assert meta.pname is None
    assert meta.licenses == (sbom.License(spdx=None, name="N"),)


def test_a_closure_missing_a_reference_is_an_error() -> None:
    with pytest.raises(RpbuildError, match="reported nothing"):
        sbom.closure_of([GREP], {GREP: INFOS[GREP]})
