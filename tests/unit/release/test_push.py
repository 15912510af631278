"""Which pushes a release makes, in which order, under which tags: the registry calls are
recorded here (pushing to a real registry is in tests/integration/test_release.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from rpbuild import registry
from rpbuild.errors import Interrupted, RpbuildError
from rpbuild.release import model, push

REPO = "r.example/rp"
ARCHES = {"x86_64-linux": "amd64", "aarch64-linux": "arm64"}


def image(profile: str, system: str) -> model.BuiltImage:
    config = {"architecture": ARCHES[system], "os": "linux"}
    archive = registry.ArchiveImage(
        path=Path(f"/scratch/{profile}-{system}.tar"),
        image_id="sha256:" + "1" * 64,
        config=config,
        repo_tags=(),
    )
    return model.BuiltImage(
        profile=profile, system=system, out_path="/nix/store/x", fingerprint="f", archive=archive
    )


def manifest(ref: str) -> str:
    return json.dumps({"mediaType": "application/vnd.oci.image.manifest.v1+json", "ref": ref})


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class FakeRegistry:
    """The registry calls push_release makes, answered as a registry would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.retag_digest: str | None = None  # what a retag answers; None: the source's
        self.digests: dict[str, str] = {}
        monkeypatch.setattr(registry, "push_archive", self.push_archive)
        monkeypatch.setattr(registry, "raw_manifest", self.raw_manifest)
        monkeypatch.setattr(registry, "push_list", self.push_list)
        monkeypatch.setattr(registry, "retag", self.retag)

    def push_archive(self, path: Path, ref: str, **_: object) -> str:
        self.calls.append(("push_archive", path.name, ref))
        self.digests[ref] = digest_of(manifest(ref))
        return self.digests[ref]

    def raw_manifest(self, ref: str, **_: object) -> str:
        self.calls.append(("raw_manifest", ref))
        return manifest(ref)

    def push_list(self, entries: list[registry.ListEntry], ref: str, **_: object) -> str:
        self.calls.append(("push_list", ref, *(e.platform["architecture"] for e in entries)))
        self.digests[ref] = "sha256:" + "a" * 64
        return self.digests[ref]

    def retag(self, source: str, dest: str, **_: object) -> str:
        self.calls.append(("retag", source, dest))
        return self.retag_digest or self.digests[source]


def options(*, snapshot: bool = False) -> model.ReleaseOptions:
    return model.ReleaseOptions(version="1.0", push=REPO, snapshot=snapshot)


def test_one_system_pushes_each_image_and_tags_minimal_with_the_bare_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeRegistry(monkeypatch)
    images = [image("minimal", "x86_64-linux"), image("debug", "x86_64-linux")]
    notes: list[str] = []
    pushed = push.push_release(images, options(), notes.append)
    assert fake.calls == [
        ("push_archive", "minimal-x86_64-linux.tar", f"{REPO}:1.0-minimal"),
        ("retag", f"{REPO}:1.0-minimal", f"{REPO}:1.0"),
        ("push_archive", "debug-x86_64-linux.tar", f"{REPO}:1.0-debug"),
    ]
    assert [(t.reference, t.kind, t.platforms) for t in pushed] == [
        (f"{REPO}:1.0-minimal", "image", ("linux/amd64",)),
        (f"{REPO}:1.0", "image", ("linux/amd64",)),
        (f"{REPO}:1.0-debug", "image", ("linux/amd64",)),
    ]
    assert pushed[0].digest == pushed[1].digest == images[0].manifest_digest
    assert images[0].reference == f"{REPO}:1.0-minimal"
    assert notes == [
        f"pushing {REPO}:1.0-minimal",
        f"tagging {REPO}:1.0",
        f"pushing {REPO}:1.0-debug",
    ]


def test_several_systems_push_each_architecture_then_a_manifest_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeRegistry(monkeypatch)
    images = [image("debug", "x86_64-linux"), image("debug", "aarch64-linux")]
    pushed = push.push_release(images, options(snapshot=True), lambda _: None)
    assert fake.calls == [
        ("push_archive", "debug-x86_64-linux.tar", f"{REPO}:1.0-debug-amd64-SNAPSHOT"),
        ("raw_manifest", f"{REPO}:1.0-debug-amd64-SNAPSHOT"),
        ("push_archive", "debug-aarch64-linux.tar", f"{REPO}:1.0-debug-arm64-SNAPSHOT"),
        ("raw_manifest", f"{REPO}:1.0-debug-arm64-SNAPSHOT"),
        ("push_list", f"{REPO}:1.0-debug-SNAPSHOT", "amd64", "arm64"),
    ]
    (tag,) = pushed
    assert (tag.kind, tag.platforms) == ("list", ("linux/amd64", "linux/arm64"))
    assert [i.reference for i in images] == [
        f"{REPO}:1.0-debug-amd64-SNAPSHOT",
        f"{REPO}:1.0-debug-arm64-SNAPSHOT",
    ]


def test_a_registry_serving_another_manifest_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeRegistry(monkeypatch)
    monkeypatch.setattr(registry, "raw_manifest", lambda ref, **_: manifest("something else"))
    images = [image("debug", "x86_64-linux"), image("debug", "aarch64-linux")]
    with pytest.raises(registry.RegistryError) as info:
        push.push_release(images, options(), lambda _: None)
    assert info.value.message == (
        f"{REPO}:1.0-debug-amd64: the registry serves a manifest other than the one pushed"
    )
    assert info.value.hint is not None
    assert info.value.hint.startswith(f"the registry may already hold {REPO}:1.0-debug-amd64:")


def test_a_retag_to_another_digest_fails_naming_every_tag_touched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeRegistry(monkeypatch)
    fake.retag_digest = "sha256:" + "0" * 64
    with pytest.raises(registry.RegistryError) as info:
        push.push_release([image("minimal", "x86_64-linux")], options(), lambda _: None)
    assert info.value.message.startswith(f"{REPO}:1.0: tagged as sha256:{'0' * 64}, expected ")
    assert info.value.hint == (
        f"the registry may already hold {REPO}:1.0-minimal, {REPO}:1.0: delete those tags "
        "there, or release under another version"
    )


def test_a_failed_push_names_its_own_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    """skopeo may have written part of the image before it failed."""

    def fail(*_: object, **__: object) -> str:
        raise RpbuildError("no", hint="skopeo login")

    monkeypatch.setattr(registry, "push_archive", fail)
    with pytest.raises(RpbuildError) as info:
        push.push_release([image("debug", "x86_64-linux")], options(), lambda _: None)
    assert info.value.hint == (
        f"the registry may already hold {REPO}:1.0-debug: delete those tags there, or release "
        "under another version; skopeo login"
    )


def test_an_interrupted_push_names_the_tags_it_may_have_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeRegistry(monkeypatch)

    def interrupt(*_: object, **__: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(registry, "retag", interrupt)
    with pytest.raises(Interrupted) as info:
        push.push_release([image("minimal", "x86_64-linux")], options(), lambda _: None)
    assert info.value.message == (
        f"interrupted while pushing; the registry may already hold {REPO}:1.0-minimal, "
        f"{REPO}:1.0: delete those tags there, or release under another version"
    )
