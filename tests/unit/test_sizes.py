"""rpbuild.sizes: closures, added sizes, budgets and comparisons on hand-built graphs."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpbuild.nix import PathInfo
from rpbuild.sizes import (
    PackageSize,
    ProfileInput,
    ProfileSize,
    SizeReport,
    SizesError,
    check_budgets,
    compare,
    compute_report,
    loaded_image_sizes,
    split_name,
)
from tests.unit.sizes_samples import (
    KiB,
    MiB,
    changed_reports,
    graph,
    pkg,
    profile,
    sample_report,
    sp,
)


def one_profile(
    nodes: Mapping[str, tuple[int, Sequence[str]]], roots: Sequence[str], **kw: Any
) -> ProfileSize:
    report = compute_report(
        "x86_64-linux", graph(nodes), [ProfileInput("p", [(r, sp(r)) for r in roots], **kw)]
    )
    return report.profiles[0]


def by_name(prof: ProfileSize) -> dict[str, PackageSize]:
    return {p.name: p for p in prof.packages}


# --- closures and added sizes ---------------------------------------------------------------


def test_chain() -> None:
    prof = one_profile({"a-1.0": (100, ["b-2"]), "b-2": (20, ["c"]), "c": (3, [])}, ["a-1.0"])
    (pkg,) = prof.packages
    assert (pkg.nar_size, pkg.closure_size, pkg.added_size) == (100, 123, 123)
    assert (pkg.pname, pkg.version, pkg.path) == ("a", "1.0", sp("a-1.0"))
    assert prof.closure_size == 123
    assert prof.shared_size == 0


def test_diamond_shared_dependency_is_added_by_neither() -> None:
    prof = one_profile(
        {"a": (10, ["c"]), "b": (20, ["c"]), "c": (1000, [])},
        ["a", "b"],
    )
    pkgs = by_name(prof)
    assert (pkgs["a"].closure_size, pkgs["a"].added_size) == (1010, 10)
    assert (pkgs["b"].closure_size, pkgs["b"].added_size) == (1020, 20)
    assert prof.closure_size == 1030
    assert prof.shared_size == 1000


def test_root_that_another_root_depends_on_adds_nothing() -> None:
    # nix-tree: "the cost of having that store path on top of all other paths". b brings a
    # (and c) anyway, so dropping a saves nothing; b alone brings b and d.
    prof = one_profile(
        {"a": (10, ["c"]), "b": (20, ["a", "d"]), "c": (300, []), "d": (4000, [])},
        ["a", "b"],
    )
    pkgs = by_name(prof)
    assert (pkgs["a"].closure_size, pkgs["a"].added_size) == (310, 0)
    assert (pkgs["b"].closure_size, pkgs["b"].added_size) == (4330, 4020)
    assert prof.closure_size == 4330


def test_self_reference_counts_once() -> None:
    prof = one_profile({"a": (10, ["a", "b"]), "b": (5, ["b"])}, ["a"])
    (pkg,) = prof.packages
    assert (pkg.closure_size, pkg.added_size, prof.closure_size) == (15, 15, 15)


def test_profile_closure_is_the_union_closure_sum() -> None:
    nodes = {
        "a": (1, ["c", "d"]),
        "b": (2, ["d", "e"]),
        "c": (40, []),
        "d": (300, ["e"]),
        "e": (5000, []),
        "unused": (70000, []),
    }
    prof = one_profile(nodes, ["a", "b"])
    assert prof.closure_size == 1 + 2 + 40 + 300 + 5000
    # The same as the closure size of a path whose references are exactly the roots, minus
    # that path itself: what `nix path-info -S` reports for the image's contents.
    image = one_profile({**nodes, "image": (7, ["a", "b"])}, ["image"])
    assert image.closure_size - 7 == prof.closure_size


def test_package_listed_twice_adds_nothing() -> None:
    infos = graph({"a": (10, [])})
    report = compute_report("x", infos, [ProfileInput("p", [("a", sp("a")), ("alias", sp("a"))])])
    assert [p.added_size for p in report.profiles[0].packages] == [0, 0]
    assert report.profiles[0].closure_size == 10


def test_empty_profile() -> None:
    prof = one_profile({}, [])
    assert (prof.closure_size, prof.packages, prof.shared_size) == (0, (), 0)


def test_missing_path_info_is_an_error() -> None:
    with pytest.raises(SizesError, match=r"reported nothing for .*-c "):
        one_profile({"a": (10, ["b"]), "b": (1, ["c"])}, ["a"])


def test_duplicate_names_are_errors() -> None:
    infos = graph({"a": (1, [])})
    with pytest.raises(SizesError, match="duplicate package"):
        compute_report("x", infos, [ProfileInput("p", [("a", sp("a")), ("a", sp("a"))])])
    with pytest.raises(SizesError, match="duplicate profile 'p'"):
        compute_report("x", infos, [ProfileInput("p", []), ProfileInput("p", [])])


def test_parent_delta() -> None:
    infos = graph({"a": (100, []), "b": (20, []), "c": (3000, ["a"])})
    report = compute_report(
        "x86_64-linux",
        infos,
        [
            ProfileInput("base", [("a", sp("a")), ("b", sp("b"))]),
            ProfileInput("full", [("a", sp("a")), ("c", sp("c"))], extends="base"),
            ProfileInput("orphan", [("a", sp("a"))], extends="elsewhere"),
        ],
        nix_version="2.8.0",
    )
    base, full, orphan = report.profiles
    assert (base.parent_delta, base.added_packages, base.removed_packages) == (None, (), ())
    assert full.parent_delta == 3100 - 120
    assert (full.added_packages, full.removed_packages) == (("c",), ("b",))
    assert (orphan.extends, orphan.parent_delta) == ("elsewhere", None)
    assert report.nix_version == "2.8.0"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rosenpass-0.2.1", ("rosenpass", "0.2.1")),
        ("coreutils-full-9.3", ("coreutils-full", "9.3")),
        ("iproute2-6.5.0", ("iproute2", "6.5.0")),
        ("python3.11-cryptography-41.0.3", ("python3.11-cryptography", "41.0.3")),
        ("openssl-3.0.12-bin", ("openssl", "3.0.12-bin")),
        ("etc", ("etc", None)),
        ("foo-bar-", ("foo-bar-", None)),
    ],
)
def test_split_name(name: str, expected: tuple[str, str | None]) -> None:
    assert split_name(name) == expected


# --- budgets ------------------------------------------------------------------------------------


def test_budget_violation_names_the_three_largest() -> None:
    packages = [
        pkg("iproute2", 2 * MiB),
        pkg("rosenpass", int(60.1 * MiB)),
        pkg("tiny", 300 * KiB),
        pkg("coreutils-full", 8 * MiB),
        pkg("shared-only", 0),
    ]
    over = profile("minimal", packages, closure_size=int(112.3 * MiB), budget=100 * MiB)
    within = profile("debug", packages, closure_size=100 * MiB, budget=100 * MiB)
    unbudgeted = profile("full", packages, closure_size=900 * MiB)
    report = SizeReport("x86_64-linux", (over, within, unbudgeted))
    (violation,) = check_budgets(report)
    assert violation.message() == (
        "profile 'minimal' is 12.3 MiB over its budget: 112.3 MiB > 100.0 MiB "
        "(largest added: rosenpass 60.1 MiB, coreutils-full 8.0 MiB, iproute2 2.0 MiB)"
    )
    assert violation.over == int(112.3 * MiB) - 100 * MiB


def test_budget_violation_without_unique_packages() -> None:
    prof = profile("p", [pkg("a", 0)], closure_size=2048, budget=1024)
    (violation,) = check_budgets(SizeReport("x", (prof,)))
    assert violation.message() == "profile 'p' is 1024 B over its budget: 2.0 KiB > 1024 B"


# --- compare ------------------------------------------------------------------------------------


def test_compare() -> None:
    old, new = changed_reports()
    diff = compare(old, new)
    minimal, fresh, gone = diff.profiles
    assert (minimal.name, minimal.status, minimal.closure_delta) == ("minimal", "both", 5 * MiB)
    assert (fresh.status, fresh.closure_after, fresh.closure_delta) == ("appeared", 20, 20)
    assert (gone.status, gone.closure_before, gone.closure_delta) == ("vanished", 10, -10)

    changes = {c.name: c for c in minimal.packages}
    assert "coreutils" not in changes  # unchanged packages are omitted
    assert {n: c.kind for n, c in changes.items()} == {
        "rosenpass": "shrank",
        "iproute2": "grew",
        "new-tool": "appeared",
        "old-tool": "vanished",
        "bash": "changed",
    }
    assert [c.name for c in minimal.packages] == [
        "new-tool",
        "old-tool",
        "rosenpass",
        "iproute2",
        "bash",
    ]
    iproute2 = changes["iproute2"]
    assert iproute2.version_change == ("6.5.0", "6.6.0")
    assert (iproute2.closure_before, iproute2.closure_after) == (2 * MiB, 2 * MiB + 123392)
    assert (iproute2.closure_delta, iproute2.added_delta) == (123392, 123392)
    assert changes["rosenpass"].closure_delta == -MiB
    assert changes["bash"].version_change == ("5.2", "5.2-p15")
    assert changes["new-tool"].version_change is None
    assert (changes["old-tool"].closure_before, changes["old-tool"].closure_after) == (MiB, None)


def test_compare_identical_reports_is_quiet() -> None:
    report = sample_report()
    diff = compare(report, report)
    assert all(not p.changed and p.packages == () for p in diff.profiles)


def test_compare_added_size_change_only() -> None:
    old = SizeReport("x", (profile("p", [pkg("a", 10, closure=100)], closure_size=100),))
    new = SizeReport("x", (profile("p", [pkg("a", 4, closure=100)], closure_size=100),))
    (change,) = compare(old, new).profiles[0].packages
    assert (change.kind, change.closure_delta, change.added_delta) == ("shrank", 0, -6)


# --- properties ---------------------------------------------------------------------------------


@st.composite
def graphs(draw: st.DrawFn) -> tuple[dict[str, PathInfo], list[str]]:
    """A random DAG (plus self-references) and a random list of roots, repeats allowed."""
    n = draw(st.integers(min_value=1, max_value=12))
    names = [f"p{i}-{i}.0" for i in range(n)]
    nodes: dict[str, tuple[int, list[str]]] = {}
    for i, name in enumerate(names):
        refs = draw(st.lists(st.sampled_from(names[: i + 1]), max_size=4, unique=True))
        nodes[name] = (draw(st.integers(min_value=0, max_value=10**9)), refs)
    roots = draw(st.lists(st.sampled_from(names), max_size=6))
    return graph(nodes), [sp(r) for r in roots]


def _closure(infos: Mapping[str, PathInfo], roots: Sequence[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(infos[path].references)
    return seen


@given(graphs())
def test_added_sizes_are_bounded(case: tuple[dict[str, PathInfo], list[str]]) -> None:
    infos, roots = case
    packages = [(f"pkg{i}", root) for i, root in enumerate(roots)]
    prof = compute_report("x", infos, [ProfileInput("p", packages)]).profiles[0]

    def size(paths: set[str]) -> int:
        return sum(infos[p].nar_size for p in paths)

    assert prof.closure_size == size(_closure(infos, roots))
    assert sum(p.added_size for p in prof.packages) <= prof.closure_size
    for i, package in enumerate(prof.packages):
        assert package.added_size <= package.closure_size <= prof.closure_size
        assert package.closure_size == size(_closure(infos, [package.path]))
        # The definition itself: the closure minus the closure of all the other roots.
        others = _closure(infos, roots[:i] + roots[i + 1 :])
        assert package.added_size == prof.closure_size - size(others)


# --- which loaded image's size a profile shows ---------------------------------


def _record(profile: str, engine: str, reference: str, size: int, **kw: str) -> Any:
    from rpbuild.state import ImageRecord

    fields = {
        "system": "x86_64-linux",
        "fingerprint": f"fp-{profile}",
        "image_id": "sha256:0",
        "out_path": "/nix/store/x",
        "built_at": "2024-01-01T00:00:00Z",
    }
    fields.update(kw)
    return ImageRecord(profile=profile, engine=engine, reference=reference, size=size, **fields)


def test_the_loaded_size_is_chosen_the_same_whatever_the_order_of_the_records() -> None:
    """docker 14810620 vs podman 15019139: once whichever came last in the state file."""
    from rpbuild.profiles import load_profiles

    loaded = load_profiles(Path(__file__).resolve().parents[2] / "profiles")
    profiles = {name: p.image.reference for name, p in loaded.items()}
    fingerprints = {name: f"fp-{name}" for name in profiles}
    records = [
        _record("minimal", "podman", "rosenpass:minimal", 15019139),
        _record("minimal", "docker", "me/rosenpass:mine", 1),
        _record("minimal", "docker", "rosenpass:minimal", 14810620),
        _record("minimal", "docker", "rosenpass:minimal", 9, system="aarch64-linux"),
        _record("minimal", "docker", "rosenpass:minimal", 8, fingerprint="stale"),
        _record("debug", "podman", "me/rosenpass:a", 30),
        _record("debug", "podman", "me/rosenpass:b", 31),
        _record("debug", "docker", "me/rosenpass:c", 32),
        _record("gone", "docker", "rosenpass:gone", 5),
    ]
    for order in itertools.permutations(records[:3]):
        chosen = loaded_image_sizes([*order, *records[3:]], profiles, "x86_64-linux", fingerprints)
        # The profile's own reference first, then docker over podman, then by reference.
        assert chosen == {"debug": 32, "minimal": 14810620}
    podman_only = [r for r in records if r.engine == "podman"]
    chosen = loaded_image_sizes(podman_only, profiles, "x86_64-linux", fingerprints)
    assert chosen == {"debug": 30, "minimal": 15019139}
    assert loaded_image_sizes(records[::-1], profiles, "x86_64-linux", fingerprints) == {
        "debug": 32,
        "minimal": 14810620,
    }
    assert loaded_image_sizes(records, profiles, "aarch64-linux", fingerprints) == {"minimal": 9}
