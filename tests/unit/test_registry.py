"""rpbuild.registry's parsing and documents: skopeo's messages, hints, manifest lists.

Pushing to a real registry is tested in tests/integration/test_release.py."""

from __future__ import annotations

import hashlib
import json

import pytest

from rpbuild import registry


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
