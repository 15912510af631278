"""Size reports built by hand, shared by the tests of rpbuild.sizes, its file format
(rpbuild.sizes_json) and its renderings (rpbuild.views.sizes)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from rpbuild.nix import PathInfo
from rpbuild.sizes import PackageSize, ProfileInput, ProfileSize, SizeReport, compute_report

KiB = 1024
MiB = 1024 * 1024


def sp(name: str) -> str:
    """A store path with a fake but well-formed 32-character hash."""
    return f"/nix/store/{hashlib.sha256(name.encode()).hexdigest()[:32]}-{name}"


def graph(nodes: Mapping[str, tuple[int, Sequence[str]]]) -> dict[str, PathInfo]:
    """{name: (nar size, referenced names)} as path-info keyed by store path."""
    return {
        sp(name): PathInfo(sp(name), size, None, tuple(sorted(sp(r) for r in refs)))
        for name, (size, refs) in nodes.items()
    }


def sample_report() -> SizeReport:
    infos = graph(
        {
            "rosenpass-0.2.1": (3 * MiB, ["glibc-2.38", "libsodium-1.0.19"]),
            "libsodium-1.0.19": (400 * KiB, ["glibc-2.38"]),
            "glibc-2.38": (30 * MiB, []),
            "iproute2-6.5.0": (2 * MiB, ["glibc-2.38"]),
            "coreutils-full-9.3": (8 * MiB, ["glibc-2.38"]),
        }
    )
    return compute_report(
        "x86_64-linux",
        infos,
        [
            ProfileInput(
                "minimal",
                [("rosenpass", sp("rosenpass-0.2.1")), ("iproute2", sp("iproute2-6.5.0"))],
                budget=40 * MiB,
                image_size=12 * MiB,
            ),
            ProfileInput(
                "debug",
                [
                    ("rosenpass", sp("rosenpass-0.2.1")),
                    ("iproute2", sp("iproute2-6.5.0")),
                    ("coreutils-full", sp("coreutils-full-9.3")),
                ],
                extends="minimal",
                budget=40 * MiB,
            ),
        ],
        nix_version="2.8.0",
    )


def pkg(
    name: str, added: int, closure: int | None = None, version: str | None = "1"
) -> PackageSize:
    closure = added if closure is None else closure
    return PackageSize(name, sp(f"{name}-{version}"), name, version, added, closure, added)


def profile(name: str, packages: Sequence[PackageSize], **kw: Any) -> ProfileSize:
    fields: dict[str, Any] = {
        "extends": None,
        "closure_size": sum(p.added_size for p in packages),
        "image_size": None,
        "budget": None,
        "parent_delta": None,
        "added_packages": (),
        "removed_packages": (),
    }
    fields.update(kw)
    return ProfileSize(name=name, packages=tuple(packages), **fields)


def changed_reports() -> tuple[SizeReport, SizeReport]:
    """Two releases' reports: versions moved, packages came and went, a profile too."""
    old = SizeReport(
        "x86_64-linux",
        (
            profile(
                "minimal",
                [
                    pkg("rosenpass", 5 * MiB, version="0.2.0"),
                    pkg("iproute2", 2 * MiB, version="6.5.0"),
                    pkg("coreutils", 8 * MiB, version="9.3"),
                    pkg("old-tool", MiB),
                    pkg("bash", 1 * MiB, version="5.2"),
                ],
                closure_size=40 * MiB,
            ),
            profile("gone", [pkg("x", 10)]),
        ),
    )
    new = SizeReport(
        "x86_64-linux",
        (
            profile(
                "minimal",
                [
                    pkg("rosenpass", 4 * MiB, version="0.2.1"),
                    pkg("iproute2", 2 * MiB + 123392, version="6.6.0"),
                    pkg("coreutils", 8 * MiB, version="9.3"),
                    pkg("new-tool", 3 * MiB),
                    pkg("bash", 1 * MiB, version="5.2-p15"),
                ],
                closure_size=45 * MiB,
            ),
            profile("fresh", [pkg("y", 20)]),
        ),
    )
    return old, new
