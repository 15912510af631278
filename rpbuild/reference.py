"""Image references (`[DOMAIN/]PATH[:TAG][@DIGEST]`): one grammar for every command.

The grammar is distribution/reference's (what Docker, Podman and skopeo parse), read as
the Docker CLI reads a familiar name (`ParseNormalizedNamed`): the first component is a
registry domain when it is `localhost`, has a '.' or ':', or has a capital letter;
otherwise the image is on the default registry and the path is the whole name.

One rule goes beyond distribution's: a first component that is taken as a domain must be
one. distribution's `Parse` then reads `my_host.com/foo` as a path on the default
registry (a FIXME in its own tests), which a registry push cannot mean; rpbuild refuses
it for `--tag` and `--push` alike. Ports must be 1-65535.

tests/data/reference/ holds distribution's own test vectors, which this module passes.
"""

from __future__ import annotations

import functools
import re

from rpbuild.errors import RpbuildError

DEFAULT_DOMAIN = "docker.io"
_LEGACY_DOMAIN = "index.docker.io"
_OFFICIAL_PREFIX = "library/"
#: distribution's RepositoryNameTotalLengthMax: the path, without the domain.
PATH_MAX = 255
TAG_MAX = 128

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"

_PATTERNS = {
    # Python's \w is Unicode; distribution's (Go RE2) is ASCII: every pattern is ASCII.
    "reference": rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?",
    "anchored_name": rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})",
    "domain": rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::(?P<port>[0-9]+))?",
    "path_component": _PATH_COMPONENT,
    "tag": _TAG,
    "digest": _DIGEST,
    # The common case, a familiar name without host or digest, checked on its own.
    "familiar": rf"({_REMOTE_NAME})(?::({_TAG}))?",
}
_TAG_START = re.compile(r"[A-Za-z0-9_]")
_TAG_CHAR = re.compile(r"[A-Za-z0-9_.-]")


@functools.cache
def _re(name: str) -> re.Pattern[str]:
    """Compiled on first use: every profile load checks names, and the up-to-date
    `rpbuild image` should not pay for the host and digest patterns it never needs."""
    return re.compile(_PATTERNS[name], re.ASCII)


#: Digest algorithms and the length of their hex encoding (go-digest's registered ones
#: that distribution's tests import: sha256 only).
_DIGEST_HEX = {"sha256": 64}


class ReferenceError(RpbuildError):
    """An image reference that Docker, Podman or skopeo would refuse."""


class Reference:
    """A parsed reference; `domain` is None on the default registry (Docker Hub).

    A plain class: a dataclass costs more to define than the up-to-date path may spend.
    """

    __slots__ = ("digest", "domain", "path", "tag")

    def __init__(
        self, domain: str | None, path: str, tag: str | None = None, digest: str | None = None
    ) -> None:
        self.domain, self.path, self.tag, self.digest = domain, path, tag, digest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reference) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"Reference({str(self)!r})"

    def _key(self) -> tuple[str | None, str, str | None, str | None]:
        return (self.domain, self.path, self.tag, self.digest)

    @property
    def name(self) -> str:
        """The repository: domain and path, without tag or digest."""
        return f"{self.domain}/{self.path}" if self.domain is not None else self.path

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return f"{self.name}{tag}{digest}"

    @property
    def canonical_domain(self) -> str:
        """The registry the engine contacts (distribution's `Domain` of the normalised name)."""
        if self.domain is None or self.domain == _LEGACY_DOMAIN:
            return DEFAULT_DOMAIN
        return self.domain

    @property
    def canonical_path(self) -> str:
        """distribution's `Path` of the normalised name (`ubuntu` is `library/ubuntu`)."""
        if self.canonical_domain == DEFAULT_DOMAIN and "/" not in self.path:
            return _OFFICIAL_PREFIX + self.path
        return self.path

    def with_tag(self, tag: str) -> Reference:
        return Reference(self.domain, self.path, check_tag(tag), self.digest)


def parse_grammar(text: str) -> tuple[str, str, str, str]:
    """Exactly distribution/reference's `Parse` (the grammar its reference_test.go tests,
    no normalisation): (domain, path, tag, digest), '' for what is absent; raises
    ValueError with the words of distribution's error."""
    if text == "":
        raise ValueError("repository name must have at least one component")
    m = _re("reference").fullmatch(text)
    if m is None:
        low = text.lower()
        if low != text and _re("reference").fullmatch(low) is not None:
            raise ValueError("repository name must be lowercase")
        raise ValueError("invalid reference format")
    name, tag, digest = m[1], m[2] or "", m[3] or ""
    nm = _re("anchored_name").fullmatch(name)
    domain, path = (nm[1] or "", nm[2]) if nm is not None else ("", name)
    if len(path) > PATH_MAX:
        raise ValueError(f"repository name must not be more than {PATH_MAX} characters")
    if digest:
        _check_digest(digest)
    return domain, path, tag, digest


def _check_digest(digest: str) -> None:
    algorithm, _, encoded = digest.partition(":")
    length = _DIGEST_HEX.get(algorithm)
    if length is None:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    if len(encoded) != length or not re.fullmatch(r"[a-f0-9]+", encoded):
        raise ValueError(f"invalid {algorithm} digest (want {length} lower-case hex digits)")


def _split_domain(text: str) -> tuple[str | None, str]:
    """The Docker CLI's split: is the first component a registry domain?"""
    first, slash, rest = text.partition("/")
    if not slash:
        return None, text
    if first == "localhost" or any(c in first for c in ".:") or first.lower() != first:
        return first, rest
    return None, text


def parse(text: str, where: str = "image reference") -> Reference:
    """A reference as Docker reads a familiar name; errors are one line naming `where`."""
    if text == "":
        raise ReferenceError(f"{where}: empty")
    if "://" in text:
        raise ReferenceError(f"{where} {text}: give it without a scheme (no https://)")
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        raise ReferenceError(f"{where} {text}: 64 hexadecimal digits are an image ID, not a name")
    domain, remainder = _split_domain(text)
    remote = remainder.split("@", 1)[0].split(":", 1)[0]
    if remote.lower() != remote:
        raise ReferenceError(
            f"{where} {text}: the repository '{remote}' must be lower case (only a "
            "registry host, the part before the first '/' with a '.' or ':', may have capitals)"
        )
    if domain is None and "@" not in text:
        simple = _re("familiar").fullmatch(text)
        if simple is not None and len(Reference(None, simple[1]).canonical_path) <= PATH_MAX:
            return Reference(None, simple[1], simple[2])  # what the full grammar says, sooner
    if domain is not None:
        _check_domain(domain, text, where)
    ref = Reference(domain, remainder)
    canonical = _canonical_remainder(ref)
    try:
        _, path, tag, digest = parse_grammar(f"{ref.canonical_domain}/{canonical}")
    except ValueError as exc:
        raise ReferenceError(f"{where} {text}: {_explain(remainder, str(exc))}") from None
    if canonical != remainder:  # the familiar name, as given: `ubuntu`, not `library/ubuntu`
        path = path.removeprefix(_OFFICIAL_PREFIX)
    return Reference(domain, path, tag or None, digest or None)


def _canonical_remainder(ref: Reference) -> str:
    """What follows the domain in the canonical form (`ubuntu` is `library/ubuntu`)."""
    remote = ref.path.split("@", 1)[0].split(":", 1)[0]
    if ref.canonical_domain == DEFAULT_DOMAIN and "/" not in remote:
        return _OFFICIAL_PREFIX + ref.path
    return ref.path


def _check_domain(domain: str, text: str, where: str) -> None:
    m = _re("domain").fullmatch(domain)
    if m is None:
        raise ReferenceError(
            f"{where} {text}: '{domain}' is taken as a registry host (it has a '.' or ':', "
            "or capitals) but is not one (DNS labels or [IPv6], optionally :PORT)"
        )
    port = m["port"]
    if port is not None and not 1 <= int(port) <= 65535:
        raise ReferenceError(f"{where} {text}: port {port} is not a TCP port (1-65535)")


def _explain(remainder: str, reason: str) -> str:
    """distribution's "invalid reference format", said more precisely where it can be."""
    if reason != "invalid reference format":
        return reason
    name, at, digest = remainder.partition("@")
    if at and not _re("digest").fullmatch(digest):
        return f"'{digest}' is not a digest (ALGORITHM:HEX, e.g. sha256: and 64 hex digits)"
    path, colon, tag = name.partition(":") if "/" not in name else _rsplit_tag(name)
    if not path:
        return "no repository name ([HOST[:PORT]/]NAME[:TAG])"
    for component in path.split("/"):
        if not component:
            return "an empty path component ('//', or '/' at an end)"
        if not _re("path_component").fullmatch(component):
            return (
                f"'{component}' is not a repository name component (lower-case letters and "
                "digits, separated by '.', '_', '__' or '-')"
            )
    if colon:
        problem = tag_problem(tag)
        if problem:
            return f"tag {tag!r}: {problem}"
    return "not a valid image reference ([HOST[:PORT]/]NAME[:TAG][@DIGEST])"


def _rsplit_tag(name: str) -> tuple[str, str, str]:
    head, slash, last = name.rpartition("/")
    base, colon, tag = last.partition(":")
    return f"{head}{slash}{base}", colon, tag


def tag_problem(tag: str) -> str | None:
    """What is wrong with a tag, in words, or None when it is valid."""
    if not tag:
        return "must not be empty"
    if not _TAG_START.match(tag):
        return "a tag starts with a letter, a digit or '_'"
    bad = next((c for c in tag if not _TAG_CHAR.match(c)), None)
    if bad is not None:
        return f"{bad!r} is not allowed in a tag (letters, digits, '_', '.', '-')"
    if len(tag) > TAG_MAX:
        return f"longer than {TAG_MAX} characters"
    return None


def check_tag(tag: str, where: str = "tag") -> str:
    problem = tag_problem(tag)
    if problem is not None:
        raise ReferenceError(f"{where} {tag!r}: {problem}")
    assert _re("tag").fullmatch(tag)
    return tag


def image_tag(text: str, default_tag: str, where: str = "--tag") -> Reference:
    """A reference to tag a built image with: no digest; the default tag when it has none."""
    ref = parse(text, where)
    if ref.digest is not None:
        raise ReferenceError(f"{where} {text}: an image is tagged by name, not by digest")
    return ref if ref.tag is not None else ref.with_tag(default_tag)


def repository(text: str, where: str = "--push") -> Reference:
    """A repository to push to: no tag or digest (the tags come from the release)."""
    if "@" in text or ":" in text.rsplit("/", 1)[-1]:
        raise ReferenceError(f"{where} {text}: give the repository without a tag or digest")
    ref = parse(text, where)
    if ref.tag is not None or ref.digest is not None:  # pragma: no cover - caught above
        raise ReferenceError(f"{where} {text}: give the repository without a tag or digest")
    return ref
