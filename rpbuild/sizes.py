"""Closure-size reports for profile images.

Everything here is pure: the caller runs `nix path-info --json -r -S` once over every
package of every profile and passes the result in, so reports can be computed, compared,
checked against budgets and rendered without nix (and tested with hand-built graphs).

Sizes are NAR sizes in bytes, as nix reports them; an image's *closure size* is the sum of
the NAR sizes of every path reachable from its packages, i.e. what `nix path-info -S` would
report for a path whose references are exactly those packages.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rpbuild.errors import RpbuildError
from rpbuild.fsutil import load_json
from rpbuild.units import human, store_name

if TYPE_CHECKING:  # rich is imported by the terminal renderers only (startup time)
    from rich.console import Console
    from rich.text import Text

    from rpbuild.nix import PathInfo
    from rpbuild.state import ImageRecord

FORMAT = "rpbuild-sizes/1"
"""Value of the `format` key of a sizes file; bump it when the meaning of a key changes."""

__all__ = [
    "FORMAT",
    "BudgetViolation",
    "PackageChange",
    "PackageSize",
    "ProfileDiff",
    "ProfileInput",
    "ProfileSize",
    "ReportDiff",
    "SizeReport",
    "SizesError",
    "SizesFileError",
    "check_budgets",
    "compare",
    "compute_report",
    "from_json",
    "human",
    "render_diff_terminal",
    "render_markdown",
    "render_terminal",
    "signed_human",
    "split_name",
    "store_name",
    "to_json",
]


class SizesError(RpbuildError):
    """The path-info data and the profiles do not add up to a report."""


class SizesFileError(SizesError):
    """A sizes file is malformed; the one-line message names the bad key, the caller the file."""


# ---------------------------------------------------------------------------------------------
# Human-readable sizes


def signed_human(n: int) -> str:
    """Format a size delta with an explicit sign, so growth and shrinkage read at a glance."""
    if n > 0:
        return "+" + human(n)
    return human(n)


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
    _unique((p.name for p in profiles), "profile")
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
    _unique((name for name, _ in prof.packages), "package", f" in profile '{prof.name}'")
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


def _unique(names: Iterable[str], what: str, context: str = "") -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SizesError(f"duplicate {what} '{name}'{context}")
        seen.add(name)


# ---------------------------------------------------------------------------------------------
# JSON


def to_json(report: SizeReport) -> dict[str, Any]:
    """The report as JSON-ready data: exact byte counts, keys in a fixed order for stable diffs."""
    return {
        "format": FORMAT,
        "system": report.system,
        "nix_version": report.nix_version,
        "profiles": [
            {
                "name": prof.name,
                "extends": prof.extends,
                "closure_size": prof.closure_size,
                "image_size": prof.image_size,
                "budget": prof.budget,
                "parent_delta": prof.parent_delta,
                "added_packages": list(prof.added_packages),
                "removed_packages": list(prof.removed_packages),
                "packages": [
                    {
                        "name": pkg.name,
                        "path": pkg.path,
                        "pname": pkg.pname,
                        "version": pkg.version,
                        "nar_size": pkg.nar_size,
                        "closure_size": pkg.closure_size,
                        "added_size": pkg.added_size,
                    }
                    for pkg in prof.packages
                ],
            }
            for prof in report.profiles
        ],
    }


def from_json(data: object) -> SizeReport:
    """Read what to_json wrote (e.g. a previous release's file), rejecting anything else.

    Raises SizesFileError with a one-line message naming the offending key, such as
    "profiles[0].packages[2].nar_size: expected a non-negative integer, got '12'".
    Unknown keys are ignored so that later rpbuild versions can add some.
    """
    top = _object(data, "report")
    fmt = top.get("format")
    if fmt is None:
        raise SizesFileError("not an rpbuild sizes report (no 'format' key)")
    if fmt != FORMAT:
        raise SizesFileError(f"unsupported format {_show(fmt)} (expected '{FORMAT}')")
    profiles = tuple(
        _profile_from_json(item, f"profiles[{i}]")
        for i, item in enumerate(_list(_key(top, "profiles", ""), "profiles"))
    )
    try:
        _unique((p.name for p in profiles), "profile")
    except SizesError as err:
        raise SizesFileError(f"profiles: {err}") from None
    return SizeReport(
        system=_str(_key(top, "system", ""), "system"),
        profiles=profiles,
        nix_version=_opt_str(_key(top, "nix_version", ""), "nix_version"),
    )


def load_report_file(path: Path) -> SizeReport:
    """A report written earlier with `rpbuild sizes --json`; errors name the file."""
    try:
        data = load_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SizesFileError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise SizesFileError(f"{path}: not JSON: {exc}") from None
    try:
        return from_json(data)
    except SizesFileError as exc:
        raise SizesFileError(f"{path}: {exc.message}") from None


def load_baseline(path: Path, system: str) -> SizeReport:
    """The --compare report, which must measure the same system as this run.

    Package paths and sizes differ between systems, so a cross-system diff would show
    every package as changed.
    """
    old = load_report_file(path)
    if old.system != system:
        raise SizesFileError(
            f"{path}: a report for {old.system}, this run measures {system} "
            f"(add --system {old.system})"
        )
    return old


def _profile_from_json(data: object, where: str) -> ProfileSize:
    obj = _object(data, where)

    def get(key: str) -> tuple[object, str]:
        return _key(obj, key, where), f"{where}.{key}"

    packages = tuple(
        _package_from_json(item, f"{where}.packages[{i}]")
        for i, item in enumerate(_list(*get("packages")))
    )
    name = _str(*get("name"))
    try:
        _unique((p.name for p in packages), "package", f" in profile '{name}'")
    except SizesError as err:
        raise SizesFileError(f"{where}.packages: {err}") from None
    return ProfileSize(
        name=name,
        extends=_opt_str(*get("extends")),
        closure_size=_size(*get("closure_size")),
        image_size=_opt_size(*get("image_size")),
        budget=_opt_size(*get("budget")),
        packages=packages,
        parent_delta=_opt_int(*get("parent_delta")),
        added_packages=_str_tuple(*get("added_packages")),
        removed_packages=_str_tuple(*get("removed_packages")),
    )


def _package_from_json(data: object, where: str) -> PackageSize:
    obj = _object(data, where)

    def get(key: str) -> tuple[object, str]:
        return _key(obj, key, where), f"{where}.{key}"

    return PackageSize(
        name=_str(*get("name")),
        path=_str(*get("path")),
        pname=_str(*get("pname")),
        version=_opt_str(*get("version")),
        nar_size=_size(*get("nar_size")),
        closure_size=_size(*get("closure_size")),
        added_size=_size(*get("added_size")),
    )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fail(where: str, expected: str, value: object) -> SizesFileError:
    return SizesFileError(f"{where}: expected {expected}, got {_show(value)}")


def _key(obj: Mapping[str, object], key: str, where: str) -> object:
    if key not in obj:
        raise SizesFileError(f"{where + ': ' if where else ''}missing key '{key}'")
    return obj[key]


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _fail(where, "an object", value)
    return value


def _list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise _fail(where, "a list", value)
    return value


def _str(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, "a string", value)
    return value


def _opt_str(value: object, where: str) -> str | None:
    return None if value is None else _str(value, where)


def _str_tuple(value: object, where: str) -> tuple[str, ...]:
    return tuple(_str(item, f"{where}[{i}]") for i, item in enumerate(_list(value, where)))


def _int(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(where, "an integer", value)
    return value


def _opt_int(value: object, where: str) -> int | None:
    return None if value is None else _int(value, where)


def _size(value: object, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(where, "a non-negative integer", value)
    return value


def _opt_size(value: object, where: str) -> int | None:
    return None if value is None else _size(value, where)


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
            (p.name, p.added_size) for p in _by_added_size(prof.packages) if p.added_size > 0
        )[:3]
        violations.append(BudgetViolation(prof.name, prof.budget, prof.closure_size, largest))
    return violations


def _by_added_size(packages: Iterable[PackageSize]) -> list[PackageSize]:
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


def _change_summary(change: PackageChange) -> str:
    """The text after a package's name, e.g. "6.5.0 → 6.6.0, +120.5 KiB"."""
    parts: list[str] = []
    version = change.version_change
    if version is not None:
        parts.append(f"{version[0] or '(no version)'} → {version[1] or '(no version)'}")
    elif change.kind == "appeared":
        parts.append("new" + (f" ({change.version_after})" if change.version_after else ""))
    elif change.kind == "vanished":
        parts.append("removed" + (f" ({change.version_before})" if change.version_before else ""))
    elif change.pname_before != change.pname_after:
        parts.append(f"{change.pname_before} → {change.pname_after}")
    delta = signed_human(change.closure_delta)
    if change.added_delta != change.closure_delta:
        delta += f" (added {signed_human(change.added_delta)})"
    parts.append(delta)
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# Markdown


def render_markdown(report: SizeReport, diff: ReportDiff | None = None) -> str:
    """Tables for release notes: one per profile, then the changes since the last report."""
    intro = f"System `{report.system}`"
    if report.nix_version:
        intro += f", Nix {report.nix_version}"
    intro += (
        ". Sizes are NAR sizes (1 MiB = 1024 KiB). *Added* is what only that package brings"
        " into the image; *share* is that part of the image's closure."
    )
    lines = ["## Image sizes", "", intro, ""]
    for prof in report.profiles:
        lines += [f"### {_md(prof.name)}", "", _md_summary(prof), ""]
        if prof.packages:
            lines += [
                "| Package | Version | Own | Closure | Added | Share |",
                "| --- | --- | ---: | ---: | ---: | ---: |",
            ]
            for pkg in _by_added_size(prof.packages):
                lines.append(
                    f"| `{_md(pkg.name)}` | {_md(pkg.version or '')} | {human(pkg.nar_size)}"
                    f" | {human(pkg.closure_size)} | {human(pkg.added_size)}"
                    f" | {_share(pkg.added_size, prof.closure_size)} |"
                )
            if prof.shared_size:
                lines.append(
                    f"| *shared by several packages* | | | | {human(prof.shared_size)}"
                    f" | {_share(prof.shared_size, prof.closure_size)} |"
                )
            lines.append("")
    if diff is not None:
        lines += _md_diff(diff)
    return "\n".join(lines).rstrip("\n") + "\n"


def _md_summary(prof: ProfileSize) -> str:
    text = f"Closure **{human(prof.closure_size)}**"
    if prof.image_size is not None:
        text += f", loaded image {human(prof.image_size)}"
    over = prof.over_budget
    if prof.budget is not None and over is not None:
        state = f"**over by {human(over)}**" if over > 0 else f"{human(-over)} left"
        text += f", budget {human(prof.budget)} ({state})"
    text += "."
    if prof.extends is not None:
        text += f" Extends `{_md(prof.extends)}`"
        if prof.parent_delta is not None:
            text += f": {signed_human(prof.parent_delta)}"
            if prof.added_packages:
                text += "; adds " + ", ".join(f"`{_md(n)}`" for n in prof.added_packages)
            if prof.removed_packages:
                text += "; removes " + ", ".join(f"`{_md(n)}`" for n in prof.removed_packages)
        text += "."
    return text


def _md_diff(diff: ReportDiff) -> list[str]:
    lines = ["### Changes", ""]
    for prof in diff.profiles:
        name = f"**{_md(prof.name)}**"
        if prof.status == "appeared":
            lines.append(f"- {name}: new profile, {human(prof.closure_after or 0)}")
        elif prof.status == "vanished":
            lines.append(f"- {name}: removed (was {human(prof.closure_before or 0)})")
        elif not prof.changed:
            lines.append(f"- {name}: unchanged, {human(prof.closure_after or 0)}")
        else:
            lines.append(
                f"- {name}: {human(prof.closure_before or 0)} → {human(prof.closure_after or 0)}"
                f" ({signed_human(prof.closure_delta)})"
            )
            lines += [f"  - `{_md(c.name)}`: {_md(_change_summary(c))}" for c in prof.packages]
    lines.append("")
    return lines


def _md(text: str) -> str:
    """Keep a value from breaking out of its table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


# ---------------------------------------------------------------------------------------------
# Terminal


_BAR_WIDTH = 24
_EIGHTHS = " ▏▎▍▌▋▊▉"


def _bar(value: int, scale: int, width: int = _BAR_WIDTH) -> str:
    """A bar in eighths of a cell; anything above zero shows at least a sliver."""
    if value <= 0 or scale <= 0:
        return ""
    eighths = max(1, round(value / scale * width * 8))
    full, rest = divmod(min(eighths, width * 8), 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")


def render_terminal(report: SizeReport, console: Console, diff: ReportDiff | None = None) -> None:
    """A table per profile, packages by added size with bars scaled to the largest one.

    On a narrow terminal the version and own-size columns give way so that names,
    sizes and the bars stay whole.
    """
    from rich.table import Table
    from rich.text import Text

    show_version = console.width >= 110
    show_own = console.width >= 90
    # Roughly what the other columns and borders take; the bars get the rest.
    fixed = 70 + (19 if show_version else 0) + (12 if show_own else 0)
    bar_width = min(_BAR_WIDTH, console.width - fixed)
    show_bar = bar_width >= 6

    def cells(
        name: Text, version: str, own: str, rest: list[Text | str], bar: str, style: str
    ) -> list[Text | str]:
        return [
            name,
            *([Text(version)] if show_version else []),
            *([own] if show_own else []),
            *rest,
            *([Text(bar, style=style)] if show_bar else []),
        ]

    for prof in report.profiles:
        title = prof.name if prof.extends is None else f"{prof.name} (extends {prof.extends})"
        table = Table(title=Text(title, style="bold"), title_justify="left")
        table.add_column("package", no_wrap=True)
        if show_version:
            table.add_column("version", no_wrap=True)
        for heading in ("own", "closure", "added", "share"):
            if heading != "own" or show_own:
                table.add_column(heading, justify="right", no_wrap=True)
        if show_bar:
            table.add_column("added size", no_wrap=True)
        ordered = _by_added_size(prof.packages)
        scale = max([p.added_size for p in ordered] + [prof.shared_size, 1])
        for pkg in ordered:
            added = Text(human(pkg.added_size), style="bold" if pkg.added_size else "dim")
            rest: list[Text | str] = [
                human(pkg.closure_size),
                added,
                _share(pkg.added_size, prof.closure_size),
            ]
            bar = _bar(pkg.added_size, scale, bar_width)
            table.add_row(
                *cells(Text(pkg.name), pkg.version or "", human(pkg.nar_size), rest, bar, "cyan")
            )
        if prof.shared_size:
            rest = ["", human(prof.shared_size), _share(prof.shared_size, prof.closure_size)]
            bar = _bar(prof.shared_size, scale, bar_width)
            table.add_row(
                *cells(Text("(shared by several)", style="italic"), "", "", rest, bar, "dim")
            )
        table.add_section()
        total: list[Text | str] = [
            "",
            Text(human(prof.closure_size), style="bold"),
            "100.0 %" if prof.closure_size else "–",
        ]
        table.add_row(*cells(Text("total", style="bold"), "", "", total, "", ""))
        console.print(table)
        console.print(_terminal_summary(prof))
        console.print()
    if diff is not None:
        render_diff_terminal(diff, console)


def _terminal_summary(prof: ProfileSize) -> Text:
    from rich.text import Text

    text = Text("closure ")
    text.append(human(prof.closure_size), style="bold")
    if prof.image_size is not None:
        text.append(f" · loaded image {human(prof.image_size)}")
    over = prof.over_budget
    if prof.budget is None or over is None:
        text.append(" · no budget", style="dim")
    elif over > 0:
        text.append(f" · budget {human(prof.budget)}: ")
        text.append(f"OVER by {human(over)}", style="bold red")
    else:
        text.append(f" · budget {human(prof.budget)}: ")
        text.append(f"ok, {human(-over)} left", style="green")
    if prof.extends is not None:
        if prof.parent_delta is None:
            text.append(f" · extends {prof.extends} (not in this report)", style="dim")
        else:
            text.append(f" · vs {prof.extends}: ")
            text.append(signed_human(prof.parent_delta), style=_delta_style(prof.parent_delta))
            if prof.added_packages:
                text.append(", adds " + ", ".join(prof.added_packages))
            if prof.removed_packages:
                text.append(", removes " + ", ".join(prof.removed_packages))
    return text


def _delta_style(delta: int) -> str:
    return "red" if delta > 0 else "green" if delta < 0 else ""


def render_diff_terminal(diff: ReportDiff, console: Console) -> None:
    """Per profile, the closure change and a table of the packages that changed."""
    from rich.table import Table
    from rich.text import Text

    for prof in diff.profiles:
        head = Text(prof.name, style="bold")
        if prof.status == "appeared":
            head.append(f": new profile, {human(prof.closure_after or 0)}")
        elif prof.status == "vanished":
            head.append(f": removed (was {human(prof.closure_before or 0)})")
        else:
            head.append(f": {human(prof.closure_before or 0)} → {human(prof.closure_after or 0)} (")
            head.append(signed_human(prof.closure_delta), style=_delta_style(prof.closure_delta))
            head.append(")")
            if not prof.changed:
                head.append(" unchanged", style="dim")
        if not prof.packages:
            console.print(head)
            continue
        table = Table(title=head, title_justify="left")
        table.add_column("package")
        table.add_column("change")
        table.add_column("closure before", justify="right")
        table.add_column("closure after", justify="right")
        table.add_column("Δ closure", justify="right")
        table.add_column("Δ added", justify="right")
        for change in prof.packages:
            version = change.version_change
            if version is not None:
                what = f"{version[0] or '?'} → {version[1] or '?'}"
            elif change.kind == "changed":
                what = f"{change.pname_before} → {change.pname_after}"
            else:
                what = change.kind
            table.add_row(
                Text(change.name),
                Text(what),
                "" if change.closure_before is None else human(change.closure_before),
                "" if change.closure_after is None else human(change.closure_after),
                Text(signed_human(change.closure_delta), style=_delta_style(change.closure_delta)),
                Text(signed_human(change.added_delta), style=_delta_style(change.added_delta)),
            )
        console.print(table)
