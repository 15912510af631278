"""The sizes file: what `rpbuild sizes --json` writes and what is read back.

`--compare` and `release --previous` read reports written by earlier runs (or
earlier rpbuild versions), so reading is strict and names the bad key in one line,
while writing keeps keys in a fixed order for stable diffs. This is a file format
next to the model in `rpbuild.sizes`, not a view: the release reads it as input.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rpbuild.fsutil import load_json
from rpbuild.sizes import PackageSize, ProfileSize, SizeReport, SizesError, ensure_unique

FORMAT = "rpbuild-sizes/1"
"""Value of the `format` key of a sizes file; bump it when the meaning of a key changes."""


class SizesFileError(SizesError):
    """A sizes file is malformed; the one-line message names the bad key, the caller the file."""


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
        ensure_unique((p.name for p in profiles), "profile")
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
        ensure_unique((p.name for p in packages), "package", f" in profile '{name}'")
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
