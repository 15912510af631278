"""The nix output samples under tests/data/nix against the nix installed here, live.

The samples for nix 2.19+ are derived by hand from one recorded from nix 2.8; these tests
record the same output again from the installed nix and check that the recorded sample
still has its shape, and that the parser reads the live output and every derived sample
to the same sizes. (nix 2.26 is not installed here: its output is not recorded live.)
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from rpbuild import nix
from tests.integration.test_nix_real import FLAKE, OPTS, raw_nix, write_flake

pytestmark = [pytest.mark.nix]

DATA = Path(__file__).resolve().parents[1] / "data" / "nix"


def _entries(data: Any) -> list[dict[str, Any]]:
    return data if isinstance(data, list) else list(data.values())


def _shape(entry: dict[str, Any]) -> dict[str, str]:
    return {key: type(value).__name__ for key, value in entry.items()}


def test_path_info_live_has_the_recorded_shape_and_parses_like_every_sample(
    tmp_path: Path,
) -> None:
    demo = write_flake(tmp_path / "demo", FLAKE.replace("@SALT@", uuid.uuid4().hex))
    [app] = nix.build([f"{demo}#app"], OPTS)
    live = raw_nix("path-info", "--json", "--recursive", "--closure-size", app.out)
    assert live.returncode == 0, live.stderr
    version = nix.parse_nix_version(raw_nix("--version").stdout)
    live_data = json.loads(live.stdout)
    recorded = json.loads((DATA / "path-info-pre219.json").read_text())
    if version < nix.V_FLAKE_UPDATE_INPUTS:  # 2.19: the JSON layout changed
        # The recorded sample is this nix's output: same layout, keys and value types.
        assert isinstance(live_data, list) and isinstance(recorded, list)
        assert {json.dumps(_shape(e), sort_keys=True) for e in live_data} == {
            json.dumps(_shape(e), sort_keys=True) for e in recorded
        }
    parsed = nix.parse_path_info(live.stdout)
    assert set(parsed) == {app.out, *parsed[app.out].references}
    assert parsed[app.out].closure_size == sum(p.nar_size for p in parsed.values())
    # Every sample, recorded or derived, parses to the same sizes and references.
    samples = {
        name: nix.parse_path_info((DATA / name).read_text())
        for name in ("path-info-pre219.json", "path-info-219.json", "path-info-v2.json")
    }
    first = samples["path-info-pre219.json"]
    for name, infos in samples.items():
        assert infos == first, name
