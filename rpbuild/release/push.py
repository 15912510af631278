"""Pushing a release's images with skopeo: one image per profile, or each architecture's
image and a manifest list of them; every further tag points at the same digest. A push
stopped half-way names the tags it may have touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rpbuild import registry
from rpbuild.errors import Interrupted, RpbuildError
from rpbuild.notify import Notify
from rpbuild.release.model import BuiltImage, PushedTag, ReleaseOptions
from rpbuild.release.tags import arch_tag, tags_for


def _platform(image: BuiltImage) -> str:
    plat = image.archive.platform
    text = f"{plat['os']}/{plat['architecture']}"
    return text + (f"/{plat['variant']}" if plat.get("variant") else "")


def push_release(
    images: Sequence[BuiltImage], options: ReleaseOptions, notify: Notify
) -> list[PushedTag]:
    """Push every image and tag; a push stopped half-way says which tags it touched."""
    attempted: list[str] = []

    def push_note(message: str, ref: str) -> None:
        attempted.append(ref)
        notify(message)

    try:
        return _push_all(images, options, push_note)
    except (KeyboardInterrupt, RpbuildError) as exc:
        if not attempted:
            raise
        touched = ", ".join(attempted)
        note = (
            f"the registry may already hold {touched}: delete those tags there, or release "
            "under another version"
        )
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(f"interrupted while pushing; {note}") from None
        exc.hint = f"{note}; {exc.hint}" if exc.hint else note
        raise


def _push_all(
    images: Sequence[BuiltImage], options: ReleaseOptions, push_note: Callable[[str, str], None]
) -> list[PushedTag]:
    assert options.push is not None
    repo, tls, sign = options.push, options.tls_verify, options.sign
    pushed: list[PushedTag] = []
    by_profile: dict[str, list[BuiltImage]] = {}
    for image in images:
        by_profile.setdefault(image.profile, []).append(image)
    for profile, group in by_profile.items():
        tags = tags_for(options.version, profile, snapshot=options.snapshot)
        main = registry.docker_ref(repo, tags[0])
        if len(group) == 1:
            image = group[0]
            push_note(f"pushing {main}", main)
            image.manifest_digest = registry.push_archive(
                image.archive.path, main, tls_verify=tls, sign=sign
            )
            image.reference = main
            digest, kind = image.manifest_digest, "image"
        else:
            entries = []
            for image in group:
                ref = registry.docker_ref(
                    repo,
                    arch_tag(options.version, profile, image.system, snapshot=options.snapshot),
                )
                push_note(f"pushing {ref}", ref)
                image.manifest_digest = registry.push_archive(
                    image.archive.path, ref, tls_verify=tls, sign=sign
                )
                image.reference = ref
                raw = registry.raw_manifest(ref, tls_verify=tls)
                entry = registry.ListEntry(manifest=raw, platform=image.archive.platform)
                if entry.descriptor()["digest"] != image.manifest_digest:
                    raise registry.RegistryError(
                        f"{ref}: the registry serves a manifest other than the one pushed"
                    )
                entries.append(entry)
            push_note(f"pushing the manifest list {main}", main)
            digest = registry.push_list(entries, main, tls_verify=tls, sign=sign)
            kind = "list"
        platforms = tuple(_platform(image) for image in group)
        pushed.append(PushedTag(main, digest, profile, kind, platforms))
        for extra in tags[1:]:
            ref = registry.docker_ref(repo, extra)
            push_note(f"tagging {ref}", ref)
            again = registry.retag(main, ref, tls_verify=tls, sign=sign)
            if again != digest:
                raise registry.RegistryError(f"{ref}: tagged as {again}, expected {digest}")
            pushed.append(PushedTag(ref, digest, profile, kind, platforms))
    return pushed
