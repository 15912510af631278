"""A state record of the wrong shape (its size a string) is a warning in `rpbuild sizes`,
not a TypeError in the table: real nix with the stand-ins (no engine needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import STANDIN_OVERRIDES, RunCli

pytestmark = [pytest.mark.nix]


def test_sizes_warns_about_a_record_whose_size_is_a_string(rpbuild: RunCli, project: Path) -> None:
    state = project / ".rpbuild" / "state.json"
    state.parent.mkdir()
    record = {
        "profile": "minimal",
        "system": "x86_64-linux",
        "engine": "docker",
        "reference": "rosenpass:minimal",
        "fingerprint": "0" * 64,
        "image_id": "sha256:" + "1" * 64,
        "out_path": "/nix/store/" + "a" * 32 + "-stream-rosenpass",
        "size": "12 MB",
        "built_at": "2024-01-01T00:00:00Z",
    }
    text = json.dumps({"format": "rpbuild-state/1", "images": {"k": record}})
    state.write_text(text)
    run = rpbuild("sizes", "--profile", "minimal", *STANDIN_OVERRIDES, cwd=project)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "state.json: unreadable state file (TypeError); loaded sizes not shown" in run.stderr
    assert "minimal" in run.stdout
    assert state.read_text() == text  # sizes never rewrites the state
