"""rpbuild.reference against distribution/reference's own test vectors, and rpbuild's one
stricter rule (a first component taken as a registry host must be one)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rpbuild import reference as refs

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "data" / "reference" / "distribution-vectors.json").read_text()
)

# distribution's error values, as the words rpbuild's parse_grammar uses for them.
ERRORS = {
    "ErrNameEmpty": "at least one component",
    "ErrReferenceInvalidFormat": "invalid reference format",
    "ErrNameContainsUppercase": "must be lowercase",
    "ErrNameTooLong": "more than 255 characters",
    "ErrDigestInvalidLength": "invalid sha256 digest",
    "ErrDigestUnsupported": "unsupported digest algorithm",
}


@pytest.mark.parametrize("case", VECTORS["parse"], ids=lambda c: c["input"][:60] or "empty")
def test_parse_grammar_matches_distribution(case: dict[str, str]) -> None:
    if "err" in case:
        with pytest.raises(ValueError, match=ERRORS[case["err"]]):
            refs.parse_grammar(case["input"])
        return
    domain, path, tag, digest = refs.parse_grammar(case["input"])
    name = f"{domain}/{path}" if domain else path
    assert (name, domain, tag, digest) == (
        case["repository"],
        case.get("domain", ""),
        case.get("tag", ""),
        case.get("digest", ""),
    )


@pytest.mark.parametrize("text", VECTORS["normalized_valid"])
def test_docker_accepts_what_distribution_accepts(text: str) -> None:
    assert str(refs.parse(text)) == text


@pytest.mark.parametrize("text", VECTORS["normalized_invalid"], ids=lambda t: t[:60])
def test_docker_refuses_what_distribution_refuses(text: str) -> None:
    with pytest.raises(refs.ReferenceError) as info:
        refs.parse(text, "--tag")
    assert info.value.message.startswith("--tag ")
    assert "\n" not in info.value.message


@pytest.mark.parametrize("case", VECTORS["normalized_split"], ids=lambda c: c["input"])
def test_domain_and_path_as_docker_splits_them(case: dict[str, str]) -> None:
    ref = refs.parse(case["input"])
    assert (ref.canonical_domain, ref.canonical_path) == (case["domain"], case["path"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("my_host.com/foo", "'my_host.com' is taken as a registry host"),
        ("registry-.io/x", "'registry-.io' is taken as a registry host"),
        ("localhost:99999/x", "port 99999 is not a TCP port"),
        ("me/BAD:x", "the repository 'me/BAD' must be lower case"),
        ("me/img:-x", "tag '-x': a tag starts with a letter"),
        ("me/img:a/b", "not a repository name component"),
        ("me//img", "an empty path component"),
        ("https://ghcr.io/me/img", "without a scheme"),
    ],
)
def test_what_push_would_refuse_tag_refuses_too(text: str, message: str) -> None:
    with pytest.raises(refs.ReferenceError, match=message):
        refs.image_tag(text, "minimal", "--tag")
    if ":" not in text.rsplit("/", 1)[-1]:  # a tag in --push is refused for that alone
        with pytest.raises(refs.ReferenceError, match=message):
            refs.repository(text, "--push")


def test_image_tag_adds_the_default_tag_and_refuses_digests() -> None:
    assert str(refs.image_tag("me/img", "minimal")) == "me/img:minimal"
    assert str(refs.image_tag("host:5000/img:x", "t")) == "host:5000/img:x"
    with pytest.raises(refs.ReferenceError, match="not by digest"):
        refs.image_tag("me/img@sha256:" + "a" * 64, "t")


def test_repository_refuses_tag_and_digest() -> None:
    assert str(refs.repository("ghcr.io/user/rosenpass")) == "ghcr.io/user/rosenpass"
    with pytest.raises(refs.ReferenceError, match="without a tag or digest"):
        refs.repository("ghcr.io/user/rosenpass:1")


@pytest.mark.parametrize(
    ("tag", "problem"),
    [
        ("", "must not be empty"),
        (".x", "starts with a letter"),
        ("1.0/0", "'/' is not allowed"),
        ("x" * 129, "longer than 128"),
    ],
)
def test_tag_problems_are_named(tag: str, problem: str) -> None:
    assert problem in (refs.tag_problem(tag) or "")
    assert refs.tag_problem("1.0.0-minimal") is None


@pytest.mark.parametrize(
    "repo",
    [
        "127.0.0.1:5000/rpbuild/rosenpass",
        "ghcr.io/user/rosenpass",
        "rosenpass",
        "localhost/a__b/c---d",
        "Registry.Example.org:65535/user/rosenpass",  # a host may have capitals
        "UPPER/rosenpass",  # capitals make it a host, as for Docker (a push then finds no UPPER)
    ],
)
def test_repositories_accepted(repo: str) -> None:
    assert str(refs.repository(repo, "--push")) == repo


@pytest.mark.parametrize(
    ("repo", "why"),
    [
        ("ghcr.io/user/rosenpass:1.0", "without a tag or digest"),
        ("ghcr.io/user/rosenpass@sha256:abc", "without a tag or digest"),
        ("https://ghcr.io/user/rosenpass", "without a scheme"),
        ("ghcr.io/User/Rosenpass", "'User/Rosenpass' must be lower case"),
        ("127.0.0.1:99999/x", "port 99999 is not a TCP port (1-65535)"),
        ("127.0.0.1:0/x", "port 0 is not a TCP port"),
        ("ghcr.io//x", "an empty path component"),
        ("ghcr.io/user/rose passe", "'rose passe' is not a repository name component"),
        ("-bad.io/x", "'-bad.io' is taken as a registry host"),
        ("ghcr.io/" + "a" * 256, "more than 255 characters"),
    ],
)
def test_repositories_refused_with_reason(repo: str, why: str) -> None:
    with pytest.raises(refs.ReferenceError) as info:
        refs.repository(repo, "--push")
    assert info.value.message.startswith(f"--push {repo}: ")
    assert why in info.value.message


def test_tags_are_checked() -> None:
    assert refs.check_tag("1.0.0-minimal") == "1.0.0-minimal"
    with pytest.raises(refs.ReferenceError, match="'/' is not allowed"):
        refs.check_tag("1.0/0")
    with pytest.raises(refs.ReferenceError, match="longer than 128"):
        refs.check_tag("x" * 129)
