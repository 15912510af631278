"""rpbuild.sizes_json: the sizes file round-trips, matches its golden copy, refuses the malformed."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from rpbuild.errors import RpbuildError
from rpbuild.sizes_json import FORMAT, SizesFileError, from_json, to_json
from tests.unit.sizes_samples import sample_report

DATA = Path(__file__).resolve().parent.parent / "data" / "sizes"


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
