"""Size reports from hand-built path-info graphs whose sizes are known by construction."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from rpbuild.errors import RpbuildError
from rpbuild.nix import PathInfo
from rpbuild.sizes import (
    FORMAT,
    PackageSize,
    ProfileInput,
    ProfileSize,
    SizeReport,
    SizesError,
    SizesFileError,
    check_budgets,
    compare,
    compute_report,
    from_json,
    human,
    render_diff_terminal,
    render_markdown,
    render_terminal,
    signed_human,
    split_name,
    store_name,
    to_json,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "sizes"
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


def test_store_name() -> None:
    assert store_name(sp("rosenpass-0.2.1")) == "rosenpass-0.2.1"
    assert store_name("/nix/store/short-name") == "short-name"


# --- human sizes --------------------------------------------------------------------------------


# Left: narSize from `nix path-info --json` of files added with `nix-store --add` on this
# machine (Nix 2.8.0); middle: what `nix path-info -Sh` printed for them; right: ours.
@pytest.mark.parametrize(
    ("n", "nix_printed", "expected"),
    [
        (112, "112.0", "112 B"),
        (120, "120.0", "120 B"),
        (616, "616.0", "616 B"),
        (1024, "1024.0", "1024 B"),  # nix only steps up above 1024
        (1136, "1.1K", "1.1 KiB"),
        (1152, "1.1K", "1.1 KiB"),
        (1280, "1.2K", "1.2 KiB"),  # 1.25: ties round to even
        (1648, "1.6K", "1.6 KiB"),
        (1792, "1.8K", "1.8 KiB"),  # 1.75: ties round to even
        (2160, "2.1K", "2.1 KiB"),
        (10112, "9.9K", "9.9 KiB"),
        (123568, "120.7K", "120.7 KiB"),
        (1048576, "1024.0K", "1024.0 KiB"),
        (1048584, "1.0M", "1.0 MiB"),
        (1048688, "1.0M", "1.0 MiB"),
        (100000112, "95.4M", "95.4 MiB"),
        (1073741824, "1024.0M", "1024.0 MiB"),
    ],
)
def test_human_matches_nix_path_info(n: int, nix_printed: str, expected: str) -> None:
    assert human(n) == expected
    assert float(expected.split()[0]) == float(nix_printed.rstrip("KM"))


def test_human_large_and_signed() -> None:
    assert human(0) == "0 B"
    assert human(5 * 1024**4) == "5.0 TiB"
    assert human(-1536) == "-1.5 KiB"
    assert signed_human(123392) == "+120.5 KiB"
    assert signed_human(-2 * MiB - 1) == "-2.0 MiB"
    assert signed_human(0) == "0 B"


# --- JSON ---------------------------------------------------------------------------------------


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


def test_json_round_trip() -> None:
    report = sample_report()
    data = to_json(report)
    assert data["format"] == FORMAT
    assert list(data) == ["format", "system", "nix_version", "profiles"]
    assert from_json(json.loads(json.dumps(data))) == report


def test_json_matches_golden_file() -> None:
    # Guards the file format: a change here must come with a new FORMAT.
    text = json.dumps(to_json(sample_report()), indent=2) + "\n"
    assert text == (DATA / "report-v1.json").read_text(encoding="utf-8")
    assert from_json(json.loads(text)) == sample_report()


def _set(path: Sequence[str | int], value: object) -> Callable[[dict[str, Any]], object]:
    def mutate(data: dict[str, Any]) -> object:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return data

    return mutate


_DELETE = object()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda data: [data], "report: expected an object, got [{"),
        (_set(["format"], _DELETE), "no 'format' key"),
        (_set(["format"], "rpbuild-sizes/2"), "unsupported format 'rpbuild-sizes/2'"),
        (_set(["profiles"], _DELETE), "missing key 'profiles'"),
        (_set(["profiles"], {}), "profiles: expected a list, got {}"),
        (_set(["system"], None), "system: expected a string, got None"),
        (
            _set(["profiles", 0, "packages", 1, "nar_size"], "12"),
            "profiles[0].packages[1].nar_size: expected a non-negative integer, got '12'",
        ),
        (_set(["profiles", 0, "closure_size"], -1), "profiles[0].closure_size: expected a non"),
        (_set(["profiles", 0, "budget"], True), "profiles[0].budget: expected a non-negative"),
        (_set(["profiles", 1, "parent_delta"], 1.5), "profiles[1].parent_delta: expected an int"),
        (_set(["profiles", 0, "packages", 0, "version"], 2), "packages[0].version: expected a s"),
        (_set(["profiles", 1, "added_packages"], [1]), "profiles[1].added_packages[0]: expected"),
        (_set(["profiles", 0, "packages", 0], "x" * 100), "expected an object, got 'xxxx"),
        (_set(["profiles", 1, "name"], "minimal"), "duplicate profile 'minimal'"),
        (_set(["profiles", 0, "packages", 1, "name"], "rosenpass"), "duplicate package 'rosen"),
        (_set(["profiles", 0, "packages", 1], {}), "packages[1]: missing key 'name'"),
    ],
)
def test_from_json_rejects_malformed(
    mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    data = mutate(json.loads(json.dumps(to_json(sample_report()))))
    with pytest.raises(SizesFileError) as info:
        from_json(data)
    assert isinstance(info.value, RpbuildError)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 160


# --- budgets ------------------------------------------------------------------------------------


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

    md = render_markdown(new, diff)
    assert "- **minimal**: 40.0 MiB → 45.0 MiB (+5.0 MiB)" in md
    assert "  - `iproute2`: 6.5.0 → 6.6.0, +120.5 KiB" in md
    # Exactly 1 MiB is "1024.0 KiB", as nix path-info -Sh prints "1024.0K" for it.
    assert "  - `rosenpass`: 0.2.0 → 0.2.1, -1024.0 KiB" in md
    assert "  - `new-tool`: new (1), +3.0 MiB" in md
    assert "  - `old-tool`: removed (1), -1024.0 KiB" in md
    assert "| *shared by several packages* | | | | 0 B |" not in md  # only with something shared
    assert "  - `bash`: 5.2 → 5.2-p15, 0 B" in md
    assert "- **fresh**: new profile, 20 B" in md
    assert "- **gone**: removed (was 10 B)" in md

    out = _terminal(lambda c: render_diff_terminal(diff, c))
    assert "6.5.0 → 6.6.0" in out
    assert "+120.5 KiB" in out
    assert "vanished" in out
    assert "fresh: new profile, 20 B" in out


def test_compare_identical_reports_is_quiet() -> None:
    report = sample_report()
    diff = compare(report, report)
    assert all(not p.changed and p.packages == () for p in diff.profiles)
    assert "- **minimal**: unchanged, 35.4 MiB" in render_markdown(report, diff)


def test_compare_added_size_change_only() -> None:
    old = SizeReport("x", (profile("p", [pkg("a", 10, closure=100)], closure_size=100),))
    new = SizeReport("x", (profile("p", [pkg("a", 4, closure=100)], closure_size=100),))
    (change,) = compare(old, new).profiles[0].packages
    assert (change.kind, change.closure_delta, change.added_delta) == ("shrank", 0, -6)
    assert "`a`: 0 B (added -6 B)" in render_markdown(new, compare(old, new))


# --- rendering ----------------------------------------------------------------------------------


def test_markdown_tables() -> None:
    md = render_markdown(sample_report())
    assert md.startswith("## Image sizes\n")
    assert "System `x86_64-linux`, Nix 2.8.0." in md
    assert "### minimal" in md
    assert "| Package | Version | Own | Closure | Added | Share |" in md
    # minimal: rosenpass 3 MiB + libsodium 400 KiB alone, glibc 30 MiB shared with iproute2.
    assert "| `rosenpass` | 0.2.1 | 3.0 MiB | 33.4 MiB | 3.4 MiB | 9.6 % |" in md
    assert "| `iproute2` | 6.5.0 | 2.0 MiB | 32.0 MiB | 2.0 MiB | 5.7 % |" in md
    assert "| *shared by several packages* | | | | 30.0 MiB | 84.8 % |" in md
    assert "Closure **35.4 MiB**, loaded image 12.0 MiB, budget 40.0 MiB (4.6 MiB left)." in md
    assert "budget 40.0 MiB (**over by 3.4 MiB**). Extends `minimal`: +8.0 MiB; adds " in md
    assert "### Changes" not in md
    # Rows are sorted by added size, largest first.
    debug = md[md.index("### debug") :]
    assert debug.index("| `coreutils-full` |") < debug.index("| `rosenpass` |")


def test_markdown_escapes_pipes() -> None:
    report = SizeReport("x", (profile("a|b", [pkg("c|d", 5)]),))
    md = render_markdown(report)
    assert "### a\\|b" in md
    assert "| `c\\|d` |" in md


def _terminal(draw: Callable[[Console], None], width: int = 140) -> str:
    out = io.StringIO()
    draw(Console(file=out, width=width, color_system=None, force_terminal=False))
    return out.getvalue()


def test_narrow_terminals_keep_names_sizes_and_bars() -> None:
    report = sample_report()
    for width in (80, 100):
        out = _terminal(lambda c: render_terminal(report, c), width=width)
        assert max(len(line) for line in out.splitlines()) <= width
        assert "…" not in out, out
        assert "coreutils-full" in out and "█" in out
        assert ("version" in out) is False


def test_terminal_rendering() -> None:
    report = sample_report()
    out = _terminal(lambda c: render_terminal(report, c))
    assert "minimal" in out
    assert "debug (extends minimal)" in out
    # The shared glibc is the largest part and gets the full bar; rosenpass a fraction of it.
    assert "█" * 24 in out
    rosenpass_line = next(line for line in out.splitlines() if "rosenpass" in line)
    assert rosenpass_line.endswith("│ ██▊                      │")  # 3.4 / 30.0 of 24 cells
    assert "closure 35.4 MiB · loaded image 12.0 MiB · budget 40.0 MiB: ok, 4.6 MiB left" in out
    assert "budget 40.0 MiB: OVER by 3.4 MiB · vs minimal: +8.0 MiB, adds coreutils-full" in out
    assert "total" in out


def test_terminal_rendering_with_diff() -> None:
    old = sample_report()
    new = replace(old, profiles=old.profiles[:1])
    out = _terminal(lambda c: render_terminal(new, c, compare(old, new)))
    assert "debug: removed (was 43.4 MiB)" in out
    assert "minimal: 35.4 MiB → 35.4 MiB (0 B) unchanged" in out


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
    for i, pkg in enumerate(prof.packages):
        assert pkg.added_size <= pkg.closure_size <= prof.closure_size
        assert pkg.closure_size == size(_closure(infos, [pkg.path]))
        # The definition itself: the closure minus the closure of all the other roots.
        others = _closure(infos, roots[:i] + roots[i + 1 :])
        assert pkg.added_size == prof.closure_size - size(others)


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
    import itertools

    from rpbuild.profiles import load_profiles
    from rpbuild.sizes import loaded_image_sizes

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
