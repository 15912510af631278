"""rpbuild.registry's parsing and documents: skopeo's messages, hints, manifest lists,
docker-archives and image streams.

Pushing to a real registry is tested in tests/integration/test_release.py."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from rpbuild import process, registry


@pytest.mark.parametrize(
    ("stderr", "message"),
    [
        ("", ""),
        (
            'time="2024-01-01T00:00:00Z" level=fatal msg="Error parsing image name '
            '\\"docker://h/x:1\\": pinging container registry h: dial tcp: no such host"\n',
            "pinging container registry h: dial tcp: no such host",
        ),
        ("plain failure\n\n", "plain failure"),
    ],
)
def test_skopeo_message_drops_the_log_decoration(stderr: str, message: str) -> None:
    assert registry.skopeo_message(stderr) == message


def test_failure_hints_only_for_registries_that_cannot_be_asked() -> None:
    assert registry.failure_hint("http: server gave HTTP response to HTTPS client")
    assert registry.failure_hint("no space left on device") is None


def test_a_manifest_list_describes_each_pushed_manifest_exactly() -> None:
    manifest = json.dumps({"mediaType": "application/vnd.docker.distribution.manifest.v2+json"})
    entry = registry.ListEntry(manifest, {"architecture": "arm64", "os": "linux"})
    doc = json.loads(registry.manifest_list([entry]))
    assert doc["mediaType"] == registry.MANIFEST_LIST and doc["schemaVersion"] == 2
    [described] = doc["manifests"]
    assert described["digest"] == "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
    assert described["size"] == len(manifest.encode())
    assert described["platform"] == {"architecture": "arm64", "os": "linux"}


# -- archives, streams and what skopeo's failures mean (from the release tests) ----


def _archive(path: Path, config: dict[str, Any]) -> bytes:
    config_bytes = json.dumps(config).encode()
    name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = json.dumps([{"Config": name, "RepoTags": ["rosenpass:minimal"], "Layers": []}])
    with tarfile.open(path, "w") as tar:
        for member, data in ((name, config_bytes), ("manifest.json", manifest.encode())):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return config_bytes


def test_read_archive_gives_docker_image_id_and_platform(tmp_path: Path) -> None:
    config = {"architecture": "arm64", "os": "linux", "config": {"Labels": {"a": "b"}}}
    config_bytes = _archive(tmp_path / "image.tar", config)
    image = registry.read_archive(tmp_path / "image.tar")
    assert image.image_id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    assert image.platform == {"architecture": "arm64", "os": "linux"}
    assert image.labels == {"a": "b"}
    assert image.repo_tags == ("rosenpass:minimal",)


def test_stream_image_reads_the_stream_and_writes_no_layer(tmp_path: Path) -> None:
    """Verifying a rebuild reads the stream script's output through tar (real tar, a
    real script): the same image as the archive, and nothing left in scratch."""
    config = {"architecture": "amd64", "os": "linux", "config": {"Labels": {"x": "y"}}}
    _archive(tmp_path / "image.tar", config)
    with tarfile.open(tmp_path / "image.tar", "a") as tar:  # a layer tar never extracted
        data = b"\0" * 4096
        info = tarfile.TarInfo("0123/layer.tar")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    script = tmp_path / "stream"
    script.write_text(f"#!/bin/sh\nexec cat {tmp_path / 'image.tar'}\n")
    script.chmod(0o755)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    streamed = registry.stream_image(script, scratch)
    assert streamed.image_id == registry.read_archive(tmp_path / "image.tar").image_id
    assert streamed.labels == {"x": "y"}
    assert list(scratch.iterdir()) == []
    script.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    with pytest.raises(registry.ArchiveStreamError):
        registry.stream_image(script, scratch)
    assert list(scratch.iterdir()) == []


def test_read_archive_refuses_garbage(tmp_path: Path) -> None:
    (tmp_path / "x.tar").write_bytes(b"not a tar")
    with pytest.raises(registry.ArchiveError, match="not a readable docker-archive"):
        registry.read_archive(tmp_path / "x.tar")


@pytest.mark.parametrize("config", [b"{not json", b"[1, 2]"])
def test_read_archive_refuses_a_bad_image_config(tmp_path: Path, config: bytes) -> None:
    """The config was parsed outside the error handling: a traceback."""
    archive = tmp_path / "x.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in (
            ("manifest.json", json.dumps([{"Config": "c.json", "RepoTags": ["a:b"]}]).encode()),
            ("c.json", config),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(registry.ArchiveError, match=r"x\.tar: "):
        registry.read_archive(archive)


def test_manifest_list_describes_each_manifest_by_its_exact_bytes() -> None:
    raw = '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}'
    entries = [
        registry.ListEntry(manifest=raw, platform={"architecture": "amd64", "os": "linux"}),
        registry.ListEntry(manifest=raw + " ", platform={"architecture": "arm64", "os": "linux"}),
    ]
    doc = json.loads(registry.manifest_list(entries))
    assert doc["mediaType"] == registry.MANIFEST_LIST
    first, second = doc["manifests"]
    assert first["digest"] == "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
    assert first["size"] == len(raw)
    assert first["mediaType"].endswith("manifest.v2+json")
    assert second["platform"]["architecture"] == "arm64"
    assert second["digest"] != first["digest"]


def test_skopeo_message_of_a_fatal_line_keeps_the_inner_quotes() -> None:
    stderr = (
        'time="2024-01-01T00:00:00Z" level=fatal msg="initializing source '
        'docker://r/x:1: reading manifest 1 in r/x: manifest unknown: \\"x\\""\n'
    )
    assert registry.skopeo_message(stderr) == (
        'initializing source docker://r/x:1: reading manifest 1 in r/x: manifest unknown: "x"'
    )
    assert registry.skopeo_message("plain failure\n") == "plain failure"
    assert registry.skopeo_message("") == ""


# -- what skopeo's failures mean ---------------------------------------------------------


def _skopeo_fails(monkeypatch: pytest.MonkeyPatch, message: str) -> None:
    """skopeo as installed, failing with this message as skopeo 1.9 prints it."""
    escaped = message.replace('"', '\\"')
    line = f'time="2024-01-01T00:00:00Z" level=fatal msg="{escaped}"\n'
    monkeypatch.setattr(process, "which", lambda _: "/usr/bin/skopeo")
    monkeypatch.setattr(process, "run", lambda argv, **_: process.Result(argv, 1, "", line))


PARSE = 'Error parsing image name "docker://r.example/x:1": '


@pytest.mark.parametrize(
    "message",
    [
        "reading manifest 1 in r.example/x: manifest unknown: manifest unknown",
        "reading manifest 1 in r.example/x: name unknown: repository name not known",
        "reading manifest 1 in r.example/x: StatusCode: 404, <html>",
    ],
)
def test_a_tag_the_registry_does_not_have_is_free(
    monkeypatch: pytest.MonkeyPatch, message: str
) -> None:
    _skopeo_fails(monkeypatch, PARSE + message)
    assert registry.exists("r.example/x:1") is False


@pytest.mark.parametrize(
    ("message", "hint"),
    [
        (
            'pinging container registry nonexistent.invalid: Get "http://nonexistent.invalid/v2/":'
            " dial tcp: lookup nonexistent.invalid on 10.0.0.53:53: no such host",
            "host name in --push does not resolve",
        ),
        (
            'pinging container registry 127.0.0.1:1: Get "http://127.0.0.1:1/v2/": '
            "dial tcp 127.0.0.1:1: connect: connection refused",
            "is the registry running",
        ),
        (
            'pinging container registry r.example: Get "https://r.example/v2/": '
            "x509: certificate signed by unknown authority",
            "TLS certificate is not trusted",
        ),
        (
            'pinging container registry r.example: Get "https://r.example/v2/": '
            "http: server gave HTTP response to HTTPS client",
            "use --no-tls-verify",
        ),
        (
            "reading manifest 1 in r.example/x: unauthorized: authentication required",
            "skopeo login",
        ),
        (
            "reading manifest 1 in r.example/x: denied: requested access to the resource is denied",
            "skopeo login",
        ),
        (
            # "not found" from something in front of the registry is no answer about the tag
            'pinging container registry r.example: Get "https://r.example/v2/": 404 not found',
            "is the registry running",
        ),
    ],
    ids=["dns", "refused", "x509", "plain-http", "unauthorized", "denied", "proxy-404"],
)
def test_a_registry_that_cannot_be_asked_is_an_error_with_a_fitting_hint(
    monkeypatch: pytest.MonkeyPatch, message: str, hint: str
) -> None:
    """ "no such host" once matched "no such" and counted as "tag not there yet"."""
    _skopeo_fails(monkeypatch, PARSE + message)
    with pytest.raises(registry.RegistryError) as info:
        registry.exists("r.example/x:1")
    assert info.value.message == f"cannot ask the registry for r.example/x:1: {message}"
    assert info.value.hint is not None and hint in info.value.hint


def test_no_registry_hint_for_a_failure_that_is_not_about_the_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ "is the registry running" was given for an invalid reference, too."""
    _skopeo_fails(monkeypatch, PARSE + "invalid reference format")
    with pytest.raises(registry.RegistryError) as info:
        registry.raw_manifest("r.example/x:1")
    assert info.value.message.endswith("failed: invalid reference format")
    assert info.value.hint is None
