"""Closure-size reports for profile images: the model and its math.

Everything here is pure: the caller runs `nix path-info --json -r -S` once over every
package of every profile and passes the result in, so reports can be computed, compared
and checked against budgets without nix (and tested with hand-built graphs). The file
format is `rpbuild.sizes_json`; the terminal and Markdown renderings are
`rpbuild.views.sizes`.

Sizes are NAR sizes in bytes, as nix reports them; an image's *closure size* is the sum of
the NAR sizes of every path reachable from its packages, i.e. what `nix path-info -S` would
report for a path whose references are exactly those packages.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from rpbuild.errors import RpbuildError
from rpbuild.units import human, store_name

if TYPE_CHECKING:
    from rpbuild.nix import PathInfo
    from rpbuild.state import ImageRecord

__all__ = [
    "BudgetViolation",
    "PackageChange",
    "PackageSize",
    "ProfileDiff",
    "ProfileInput",
    "ProfileSize",
    "ReportDiff",
    "SizeReport",
    "SizesError",
    "by_added_size",
    "check_budgets",
    "compare",
    "compute_report",
    "ensure_unique",
    "loaded_image_sizes",
    "select_profiles",
    "split_name",
]


class SizesError(RpbuildError):
    """The path-info data and the profiles do not add up to a report."""


# ---------------------------------------------------------------------------------------------
# Store path names


_VERSION_START = re.compile(r"-(?=[0-9])")


def split_name(name: str) -> tuple[str, str | None]:
    """Split a store name into pname and version at the first '-' followed by a digit.

    This is how nix's DrvName tells "coreutils-full-9.3" into ("coreutils-full", "9.3"),
    which lets a report say "iproute2: 6.5.0 → 6.6.0". Output suffixes stay in the version
    ("openssl-3.0.12-bin" gives "3.0.12-bin"); a name without a version gives None.
    """
    match = _VERSION_START.search(name)
    if match is None:
        return name, None
    return name[: match.start()], name[match.end() :]


# ---------------------------------------------------------------------------------------------
# Report data model


@dataclass(frozen=True)
class ProfileInput:
    """What compute_report needs of one profile; packages are its roots, in profile order."""

    name: str
    packages: Sequence[tuple[str, str]]  # (package name, store path)
    extends: str | None = None
    budget: int | None = None  # bytes of closure
    image_size: int | None = (
        None  # bytes of the loaded image (docker image inspect .Size), when rpbuild loaded it
    )


@dataclass(frozen=True)
class PackageSize:
    """One root of a profile; added_size is what removing it from the profile would save."""

    name: str
    path: str
    pname: str
    version: str | None
    nar_size: int
    closure_size: int
    added_size: int


@dataclass(frozen=True)
class ProfileSize:
    """One profile's image: totals, its packages, and how it differs from its parent."""

    name: str
    extends: str | None
    closure_size: int
    image_size: int | None
    budget: int | None
    packages: tuple[PackageSize, ...]
    parent_delta: int | None  # None when it extends nothing, or a profile not in the report
    added_packages: tuple[str, ...]
    removed_packages: tuple[str, ...]

    @property
    def shared_size(self) -> int:
        """Bytes no single package accounts for: dependencies shared by several packages."""
        return self.closure_size - sum(p.added_size for p in self.packages)

    @property
    def over_budget(self) -> int | None:
        """Bytes over the budget (negative: headroom), or None without a budget."""
        return None if self.budget is None else self.closure_size - self.budget


@dataclass(frozen=True)
class SizeReport:
    """Sizes of every profile built for one system; what `rpbuild sizes --json` writes."""

    system: str
    profiles: tuple[ProfileSize, ...]
    nix_version: str | None = None

    def profile(self, name: str) -> ProfileSize | None:
        """Look a profile up by name."""
        return next((p for p in self.profiles if p.name == name), None)


# ---------------------------------------------------------------------------------------------
# Computing


class _Closures:
    """Memoised closures over one path-info mapping: profiles share packages, walk them once."""

    def __init__(self, infos: Mapping[str, PathInfo]) -> None:
        self._infos = infos
        self._cache: dict[str, frozenset[str]] = {}

    def of(self, root: str) -> frozenset[str]:
        cached = self._cache.get(root)
        if cached is not None:
            return cached
        seen = {root}
        stack = [root]
        while stack:
            info = self._info(stack.pop(), root)
            for ref in info.references:  # a self-reference is already in `seen`
                if ref not in seen:
                    seen.add(ref)
                    stack.append(ref)
        closure = frozenset(seen)
        self._cache[root] = closure
        return closure

    def size(self, paths: Iterable[str]) -> int:
        return sum(self._infos[p].nar_size for p in paths)

    def _info(self, path: str, root: str) -> PathInfo:
        info = self._infos.get(path)
        if info is None:
            raise SizesError(
                f"nix path-info reported nothing for {path} (in the closure of {root})"
            )
        return info


def compute_report(
    system: str,
    infos: Mapping[str, PathInfo],
    profiles: Sequence[ProfileInput],
    *,
    nix_version: str | None = None,
) -> SizeReport:
    """Compute every profile's sizes from one path-info mapping holding their union closure.

    A package's added size follows nix-tree: the bytes reachable from it and from no other
    package of the profile, i.e. what leaving it out would save. So a dependency shared by
    two packages is added by neither, and a package that another one depends on adds 0.
    """
    ensure_unique((p.name for p in profiles), "profile")
    closures = _Closures(infos)
    computed = {p.name: _compute_profile(p, closures) for p in profiles}
    result: list[ProfileSize] = []
    for prof in profiles:
        size = computed[prof.name]
        parent = computed.get(prof.extends) if prof.extends is not None else None
        if parent is not None:
            names = {p.name for p in size.packages}
            parent_names = {p.name for p in parent.packages}
            size = replace(
                size,
                parent_delta=size.closure_size - parent.closure_size,
                added_packages=tuple(p.name for p in size.packages if p.name not in parent_names),
                removed_packages=tuple(p.name for p in parent.packages if p.name not in names),
            )
        result.append(size)
    return SizeReport(system=system, profiles=tuple(result), nix_version=nix_version)


def select_profiles(report: SizeReport, names: Sequence[str]) -> SizeReport:
    """The report of the named profiles only (their parents were measured for the deltas)."""
    return replace(report, profiles=tuple(p for p in report.profiles if p.name in names))


# Engines in the order their record is preferred when one profile is loaded into both.
ENGINE_PREFERENCE = ("docker", "podman")


def loaded_image_sizes(
    records: Iterable[ImageRecord],
    references: Mapping[str, str],
    system: str,
    fingerprints: Mapping[str, str],
) -> dict[str, int]:
    """The loaded image size per profile, from loads of exactly this definition.

    One profile can have several such records (docker and podman, several --tag
    references), and their sizes differ (each engine counts its own way). The one
    shown must not depend on the order of the state file: the record for the
    profile's own reference (`references`: profile -> name:tag) wins, then docker over
    podman, then the first reference and engine by name.
    """
    best: dict[str, tuple[tuple[bool, int, str, str], int]] = {}
    for rec in records:
        own = references.get(rec.profile)
        if own is None or rec.system != system:
            continue
        if rec.fingerprint != fingerprints.get(rec.profile):
            continue
        engine_rank = (
            ENGINE_PREFERENCE.index(rec.engine)
            if rec.engine in ENGINE_PREFERENCE
            else len(ENGINE_PREFERENCE)
        )
        rank = (rec.reference != own, engine_rank, rec.reference, rec.engine)
        if rec.profile not in best or rank < best[rec.profile][0]:
            best[rec.profile] = (rank, rec.size)
    return {name: size for name, (_, size) in sorted(best.items())}


def _compute_profile(prof: ProfileInput, closures: _Closures) -> ProfileSize:
    ensure_unique((name for name, _ in prof.packages), "package", f" in profile '{prof.name}'")
    roots = [closures.of(path) for _, path in prof.packages]
    # How many roots reach each path: a path reached by one root only is added by that root.
    # Counting roots, not distinct paths, makes a package listed twice add nothing, as it should.
    reached_by: Counter[str] = Counter()
    for closure in roots:
        reached_by.update(closure)
    packages = []
    for (name, path), closure in zip(prof.packages, roots, strict=True):
        pname, version = split_name(store_name(path))
        packages.append(
            PackageSize(
                name=name,
                path=path,
                pname=pname,
                version=version,
                nar_size=closures.size([path]),
                closure_size=closures.size(closure),
                added_size=closures.size(p for p in closure if reached_by[p] == 1),
            )
        )
    return ProfileSize(
        name=prof.name,
        extends=prof.extends,
        closure_size=closures.size(reached_by),
        image_size=prof.image_size,
        budget=prof.budget,
        packages=tuple(packages),
        parent_delta=None,
        added_packages=(),
        removed_packages=(),
    )


def ensure_unique(names: Iterable[str], what: str, context: str = "") -> None:
    """Profiles and packages are matched by name (deltas, diffs): a repeated one is an error."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SizesError(f"duplicate {what} '{name}'{context}")
        seen.add(name)


# ---------------------------------------------------------------------------------------------
# Budgets


@dataclass(frozen=True)
class BudgetViolation:
    """A profile whose closure outgrew its budget, with the packages most worth looking at."""

    profile: str
    budget: int
    actual: int
    largest: tuple[tuple[str, int], ...]  # up to three (package, added size), largest first

    @property
    def over(self) -> int:
        """Bytes over the budget."""
        return self.actual - self.budget

    def message(self) -> str:
        """One line for the terminal or a CI log."""
        text = (
            f"profile '{self.profile}' is {human(self.over)} over its budget: "
            f"{human(self.actual)} > {human(self.budget)}"
        )
        if self.largest:
            names = ", ".join(f"{name} {human(size)}" for name, size in self.largest)
            text += f" (largest added: {names})"
        return text


def check_budgets(report: SizeReport) -> list[BudgetViolation]:
    """The profiles over their budget, in report order; packages adding nothing are not listed."""
    violations = []
    for prof in report.profiles:
        if prof.budget is None or prof.closure_size <= prof.budget:
            continue
        largest = tuple(
            (p.name, p.added_size) for p in by_added_size(prof.packages) if p.added_size > 0
        )[:3]
        violations.append(BudgetViolation(prof.name, prof.budget, prof.closure_size, largest))
    return violations


def by_added_size(packages: Iterable[PackageSize]) -> list[PackageSize]:
    """The order budgets and renderings list packages in: what leaving one out saves first."""
    return sorted(packages, key=lambda p: (-p.added_size, -p.closure_size, p.name))


# ---------------------------------------------------------------------------------------------
# Comparing


ChangeKind = Literal["appeared", "vanished", "grew", "shrank", "changed"]


@dataclass(frozen=True)
class PackageChange:
    """How one package of a profile changed; sizes are None on the side it is missing from.

    kind is "grew"/"shrank" by closure size, or by added size when the closure stayed
    put, and "changed" when only the version or pname moved.
    """

    name: str
    kind: ChangeKind
    pname_before: str | None
    pname_after: str | None
    version_before: str | None
    version_after: str | None
    closure_before: int | None
    closure_after: int | None
    added_before: int | None
    added_after: int | None

    @property
    def closure_delta(self) -> int:
        """Change of the package's closure size; appearing counts as growing from 0."""
        return (self.closure_after or 0) - (self.closure_before or 0)

    @property
    def added_delta(self) -> int:
        """Change of what the package alone brings into the image."""
        return (self.added_after or 0) - (self.added_before or 0)

    @property
    def version_change(self) -> tuple[str | None, str | None] | None:
        """(old, new) version when the same pname changed version, like nix diff-closures."""
        if self.kind in ("appeared", "vanished") or self.pname_before != self.pname_after:
            return None
        if self.version_before == self.version_after:
            return None
        return self.version_before, self.version_after


@dataclass(frozen=True)
class ProfileDiff:
    """One profile between two reports; closure sizes are None where the profile is missing."""

    name: str
    closure_before: int | None
    closure_after: int | None
    image_before: int | None
    image_after: int | None
    packages: tuple[PackageChange, ...]  # changed packages only, largest closure delta first

    @property
    def status(self) -> Literal["appeared", "vanished", "both"]:
        """Whether the profile is new, gone, or in both reports."""
        if self.closure_before is None:
            return "appeared"
        if self.closure_after is None:
            return "vanished"
        return "both"

    @property
    def closure_delta(self) -> int:
        """Change of the image's closure size; a new profile grew from 0."""
        return (self.closure_after or 0) - (self.closure_before or 0)

    @property
    def changed(self) -> bool:
        """Whether there is anything to say about this profile."""
        return self.status != "both" or self.closure_delta != 0 or bool(self.packages)


@dataclass(frozen=True)
class ReportDiff:
    """What changed between two reports, e.g. the previous release and this one."""

    profiles: tuple[ProfileDiff, ...]  # new report's order, then vanished profiles


def compare(old: SizeReport, new: SizeReport) -> ReportDiff:
    """Compare two reports profile by profile and package by package (matched by name)."""
    diffs = []
    for prof in new.profiles:
        before = old.profile(prof.name)
        diffs.append(
            ProfileDiff(
                name=prof.name,
                closure_before=before.closure_size if before else None,
                closure_after=prof.closure_size,
                image_before=before.image_size if before else None,
                image_after=prof.image_size,
                packages=_package_changes(before, prof) if before else (),
            )
        )
    for prof in old.profiles:
        if new.profile(prof.name) is None:
            diffs.append(
                ProfileDiff(
                    name=prof.name,
                    closure_before=prof.closure_size,
                    closure_after=None,
                    image_before=prof.image_size,
                    image_after=None,
                    packages=(),
                )
            )
    return ReportDiff(profiles=tuple(diffs))


def _package_changes(old: ProfileSize, new: ProfileSize) -> tuple[PackageChange, ...]:
    old_by_name = {p.name: p for p in old.packages}
    new_names = {p.name for p in new.packages}
    changes = [_package_change(old_by_name.get(p.name), p) for p in new.packages]
    changes += [_package_change(p, None) for p in old.packages if p.name not in new_names]
    kept = [c for c in changes if c is not None]
    return tuple(sorted(kept, key=lambda c: (-abs(c.closure_delta), -abs(c.added_delta), c.name)))


def _package_change(old: PackageSize | None, new: PackageSize | None) -> PackageChange | None:
    kind: ChangeKind
    if old is None and new is not None:
        kind = "appeared"
    elif new is None and old is not None:
        kind = "vanished"
    elif old is not None and new is not None:
        delta = new.closure_size - old.closure_size or new.added_size - old.added_size
        if delta > 0:
            kind = "grew"
        elif delta < 0:
            kind = "shrank"
        elif (old.pname, old.version) != (new.pname, new.version):
            kind = "changed"
        else:
            return None
    else:  # pragma: no cover - callers pass at least one side
        return None
    some = new if new is not None else old
    assert some is not None
    return PackageChange(
        name=some.name,
        kind=kind,
        pname_before=old.pname if old else None,
        pname_after=new.pname if new else None,
        version_before=old.version if old else None,
        version_after=new.version if new else None,
        closure_before=old.closure_size if old else None,
        closure_after=new.closure_size if new else None,
        added_before=old.added_size if old else None,
        added_after=new.added_size if new else None,
    )
