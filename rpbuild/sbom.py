"""`rpbuild sbom`: a CycloneDX 1.6 document of everything an image holds.

An image holds exactly the closure of its contents (the profile's packages and the
entrypoint): one `nix path-info -r` names every store path in it with its NAR hash and
references, so the SBOM lists what is in the image, not what a scanner guesses from
its files. What built it and is not in it (compilers, build-time inputs) is not listed.
Names, versions and licences of the profile's packages come from the derivations (one
`nix eval`, cached like the profiles' contents); the other paths are named from their
store names, as nix's DrvName splits them.

cyclonedx-python-lib is imported only when a document is made: the fast paths of the
CLI do not pay for it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rpbuild import __version__, lockfile, nix, registry
from rpbuild.build import BuildOptions, profile_error
from rpbuild.errors import RpbuildError
from rpbuild.measure import Measured, cached_eval, measuring
from rpbuild.notify import Notify, quiet
from rpbuild.project import Project
from rpbuild.sizes import split_name
from rpbuild.state import load_state
from rpbuild.units import store_name

if TYPE_CHECKING:
    from cyclonedx.model.bom import Bom

SPEC_VERSION = "1.6"
#: The file name `release` gives a profile's SBOM in the report.
FILE_NAME = "sbom-{profile}-{system}.cdx.json"
PROPERTY_PREFIX = "nix:"
_NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"
_SHA256_BYTES = 32


def file_name(profile: str, system: str) -> str:
    return FILE_NAME.format(profile=profile, system=system)


# -- nix hashes ---------------------------------------------------------------------


def _nix32_decode(text: str) -> bytes | None:
    """nix's own base-32 (no e, o, t, u; least significant digit last)."""
    size = len(text) * 5 // 8
    out = bytearray(size)
    for n, char in enumerate(reversed(text)):
        digit = _NIX32.find(char)
        if digit < 0:
            return None
        bit = n * 5
        i, j = divmod(bit, 8)
        out[i] |= (digit << j) & 0xFF
        carry = digit >> (8 - j)
        if i + 1 < size:
            out[i + 1] |= carry
        elif carry:
            return None
    return bytes(out)


def sha256_hex(nix_hash: str | None) -> str | None:
    """The hex SHA-256 of a hash as nix prints it: `sha256:<nix32|base16|base64>` (older
    nix) or SRI `sha256-<base64>` (newer nix, flake.lock); None for another algorithm."""
    if not nix_hash:
        return None
    for prefix in ("sha256:", "sha256-"):
        if nix_hash.startswith(prefix):
            body = nix_hash[len(prefix) :]
            break
    else:
        return None
    raw: bytes | None
    if len(body) == 64:
        try:
            raw = bytes.fromhex(body)
        except ValueError:
            raw = None
    elif len(body) == 52:
        raw = _nix32_decode(body)
    else:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != _SHA256_BYTES:
        return None
    return raw.hex()


# -- what goes in -------------------------------------------------------------------


@dataclass(frozen=True)
class License:
    spdx: str | None
    name: str | None


@dataclass(frozen=True)
class PackageMeta:
    """What the derivation says of a package (`rpbuildMeta` in the flake)."""

    pname: str | None = None
    version: str | None = None
    licenses: tuple[License, ...] = ()
    homepage: str | None = None
    description: str | None = None

    @staticmethod
    def from_json(data: Any) -> PackageMeta:
        if not isinstance(data, dict):
            return PackageMeta()

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) and value else None

        licenses = tuple(
            License(
                spdx=lic.get("spdx") if isinstance(lic.get("spdx"), str) else None,
                name=lic.get("name") if isinstance(lic.get("name"), str) else None,
            )
            for lic in data.get("licenses") or []
            if isinstance(lic, dict)
        )
        return PackageMeta(
            pname=text("pname"),
            version=text("version"),
            licenses=licenses,
            homepage=text("homepage"),
            description=text("description"),
        )


@dataclass(frozen=True)
class ImageClosure:
    """One profile's image: its roots (package name: store path) and their closure."""

    profile: str
    system: str
    roots: Mapping[str, str]
    infos: Mapping[str, nix.PathInfo]  # exactly the closure of the roots
    meta: Mapping[str, PackageMeta]  # by package name, for the roots


@dataclass(frozen=True)
class ImageMeta:
    """The BOM's root component: the image itself and what it was made from."""

    name: str  # the image's repository name, e.g. rosenpass
    tag: str
    image_id: str  # sha256:HEX of the config
    fingerprint: str | None
    inputs: Mapping[str, Mapping[str, Any]]  # flake input: pin (rev, nar_hash, ...)
    nix_version: str


def closure_of(roots: Sequence[str], infos: Mapping[str, nix.PathInfo]) -> dict[str, nix.PathInfo]:
    """The paths reachable from roots through the references path-info reported."""
    seen: dict[str, nix.PathInfo] = {}
    stack = list(roots)
    while stack:
        path = stack.pop()
        if path in seen:
            continue
        info = infos.get(path)
        if info is None:
            raise RpbuildError(f"nix path-info reported nothing for {path}")
        seen[path] = info
        stack.extend(ref for ref in info.references if ref not in seen)
    return dict(sorted(seen.items()))


# -- the document -------------------------------------------------------------------


def make_bom(image: ImageMeta, closure: ImageClosure) -> Bom:
    """The CycloneDX BOM: the image as the root component, one component per store
    path, and a dependency edge for every reference between them."""
    from cyclonedx.exception.model import InvalidUriException
    from cyclonedx.model import (
        ExternalReference,
        ExternalReferenceType,
        HashAlgorithm,
        HashType,
        Property,
        XsUri,
    )
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.license import DisjunctiveLicense
    from cyclonedx.spdx import is_supported_id
    from packageurl import PackageURL

    by_path = {path: name for name, path in closure.roots.items()}
    image_hex = image.image_id.removeprefix("sha256:")
    props = [
        Property(name="rpbuild:profile", value=closure.profile),
        Property(name="rpbuild:system", value=closure.system),
        Property(name="rpbuild:image_id", value=image.image_id),
        Property(name="rpbuild:nix_version", value=image.nix_version),
    ]
    if image.fingerprint:
        props.append(Property(name="rpbuild:fingerprint", value=image.fingerprint))
    for name, pin in sorted(image.inputs.items()):
        for key in ("rev", "nar_hash", "source", "override"):
            if pin.get(key):
                props.append(Property(name=f"rpbuild:input:{name}:{key}", value=str(pin[key])))
    root = Component(
        name=image.name,
        version=image.tag,
        type=ComponentType.CONTAINER,
        bom_ref=f"image:{image.image_id}",
        description=f"rpbuild profile {closure.profile} for {closure.system}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=image_hex)],
        properties=props,
    )
    bom = Bom(serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"rpbuild:{image.image_id}"))
    bom.metadata.component = root
    bom.metadata.tools.components.add(
        Component(name="rpbuild", version=__version__, type=ComponentType.APPLICATION)
    )
    bom.metadata.tools.components.add(
        Component(name="nix", version=image.nix_version, type=ComponentType.APPLICATION)
    )
    components: dict[str, Component] = {}
    for path, info in closure.infos.items():
        package = by_path.get(path)
        meta = closure.meta.get(package, PackageMeta()) if package else PackageMeta()
        parsed_name, parsed_version = split_name(store_name(path))
        name = meta.pname or parsed_name
        version = meta.version or parsed_version
        hashes = []
        hex_digest = sha256_hex(info.nar_hash)
        if hex_digest is not None:
            hashes.append(HashType(alg=HashAlgorithm.SHA_256, content=hex_digest))
        licenses = [
            DisjunctiveLicense(id=lic.spdx)
            if lic.spdx and is_supported_id(lic.spdx)
            else DisjunctiveLicense(name=lic.spdx or lic.name or "unknown")
            for lic in meta.licenses
        ]
        properties = [Property(name=f"{PROPERTY_PREFIX}store_path", value=path)]
        if info.nar_hash:
            properties.append(Property(name=f"{PROPERTY_PREFIX}nar_hash", value=info.nar_hash))
        properties.append(Property(name=f"{PROPERTY_PREFIX}nar_size", value=str(info.nar_size)))
        if package:
            properties.append(Property(name="rpbuild:package", value=package))
        refs = []
        if meta.homepage:
            with contextlib.suppress(InvalidUriException):  # a homepage that is no URI
                refs.append(
                    ExternalReference(type=ExternalReferenceType.WEBSITE, url=XsUri(meta.homepage))
                )
        components[path] = Component(
            name=name,
            version=version,
            type=ComponentType.APPLICATION if package else ComponentType.LIBRARY,
            bom_ref=path,
            description=meta.description,
            purl=PackageURL(type="nix", name=name, version=version),
            hashes=hashes,
            licenses=licenses,
            properties=properties,
            external_references=refs,
        )
    bom.components.update(components.values())
    bom.register_dependency(root, [components[p] for p in sorted(closure.roots.values())])
    for path, info in closure.infos.items():
        deps = [components[r] for r in info.references if r != path and r in components]
        bom.register_dependency(components[path], deps)
    return bom


def to_json(bom: Bom) -> str:
    from cyclonedx.output.json import JsonV1Dot6

    return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"


def validation_errors(text: str) -> str | None:
    """The first schema violation of a CycloneDX 1.6 JSON document, or None.

    Needs cyclonedx-python-lib's `json-validation` extra (jsonschema); the schemas ship
    with the library, so no network is needed."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    return None if error is None else str(error)


# -- from a project -----------------------------------------------------------------


def _metadata(m: Measured, options: BuildOptions) -> dict[str, dict[str, PackageMeta]]:
    """pname, version and licences of every profile's packages: one `nix eval`, kept
    next to the contents' cache under the same key."""
    project = m.prepared.project
    evaluated = cached_eval(
        project.state_dir / f"meta-{options.system}.json",
        m.cache_key,
        f"{m.flake_ref}#rpbuildMeta.{options.system}",
        m.prepared,
        options,
    )
    if not isinstance(evaluated, dict):
        raise RpbuildError(f"{project.flake_path}: rpbuildMeta is not an attribute set")
    return {
        str(profile): {str(k): PackageMeta.from_json(v) for k, v in packages.items()}
        for profile, packages in evaluated.items()
        if isinstance(packages, dict)
    }


def closures(m: Measured, options: BuildOptions, names: Sequence[str]) -> list[ImageClosure]:
    """Each named profile's image closure, from what `measuring` read."""
    metadata = _metadata(m, options)
    out = []
    for name in names:
        if name not in metadata:
            raise RpbuildError(
                f"{m.prepared.project.flake_path}: no rpbuildMeta for profile '{name}' "
                "(run `rpbuild render`)"
            )
        roots = m.contents[name]
        out.append(
            ImageClosure(
                profile=name,
                system=options.system,
                roots=roots,
                infos=closure_of(sorted(roots.values()), m.infos),
                meta=metadata[name],
            )
        )
    return out


def _image_id(
    m: Measured, profile: str, options: BuildOptions, on_log: Notify | None
) -> tuple[str, str]:
    """The image's ID: what `rpbuild image` recorded for this very build, else streamed
    once into a temporary archive (outside the store) and read."""
    installable = f"{m.flake_ref}#packages.{options.system}.{profile}"
    try:
        out = nix.build([installable], options.nix, on_log=on_log)[0].out
    except nix.ProfileEvalError as exc:
        raise profile_error(m.prepared.profiles, exc) from None
    state, _ = load_state(m.prepared.project.state_dir / "state.json")
    for rec in state.images.values():
        if (rec.profile, rec.system, rec.out_path) == (profile, options.system, out) and (
            rec.fingerprint == m.fingerprints[profile]
        ):
            image_id = rec.image_id
            return out, image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"
    with tempfile.TemporaryDirectory(prefix="rpbuild-sbom-") as tmp:
        archive = registry.write_archive(Path(out), Path(tmp) / "image.tar")
        return out, registry.read_archive(archive).image_id


def generate(
    project: Project,
    profile: str,
    options: BuildOptions,
    *,
    notify: Notify = quiet,
    on_log: Notify | None = None,
) -> str:
    """The SBOM of one profile's image as CycloneDX JSON; builds what is missing."""
    with measuring(project, [profile], options, notify=notify, on_log=on_log) as m:
        closure = closures(m, options, [profile])[0]
        notify(f"reading the image ID of {profile} for {options.system}")
        _, image_id = _image_id(m, profile, options, on_log)
        image = image_meta(m, profile, options, image_id)
    return to_json(make_bom(image, closure))


def image_meta(m: Measured, profile: str, options: BuildOptions, image_id: str) -> ImageMeta:
    spec = m.prepared.profiles[profile].image
    return ImageMeta(
        name=spec.name,
        tag=spec.tag,
        image_id=image_id,
        fingerprint=m.fingerprints.get(profile),
        inputs=lockfile.pinned_inputs(m.prepared.lock_bytes, options.nix.overrides),
        nix_version=str(nix.nix_version()),
    )
