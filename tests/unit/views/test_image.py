"""rpbuild.views.image: `rpbuild image`'s result as plain lines, without rich."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from rpbuild.memo import ImageResult
from rpbuild.views.image import image_result


def _result(**kw: object) -> ImageResult:
    fields: dict[str, object] = {
        "profile": "minimal",
        "system": "x86_64-linux",
        "engine": "docker",
        "reference": "rosenpass:minimal",
        "image_id": "sha256:" + "a" * 64,
        "size": 14810620,
        "seconds": 0.0712,
        "up_to_date": True,
        "fingerprint": "f" * 64,
        "out_path": "/nix/store/" + "b" * 32 + "-docker-image-rosenpass.tar",
        "rendered": False,
    }
    fields.update(kw)
    return ImageResult(**fields)  # type: ignore[arg-type]


def _lines(result: ImageResult) -> list[str]:
    out = io.StringIO()
    image_result(out, result)
    return out.getvalue().splitlines()


def test_up_to_date_lines() -> None:
    assert _lines(_result()) == [
        "rosenpass:minimal: up to date",
        "  image id   sha256:" + "a" * 64,
        "  size       14.1 MiB",
        "  system     x86_64-linux",
        "  engine     docker",
        "  time       0.07 s",
        "  store path /nix/store/" + "b" * 32 + "-docker-image-rosenpass.tar",
    ]


def test_built_without_a_store_path() -> None:
    lines = _lines(_result(up_to_date=False, out_path="", seconds=12.345))
    assert lines[0] == "rosenpass:minimal: built and loaded"
    assert "  time       12.35 s" in lines
    assert not any("store path" in line for line in lines)


@pytest.mark.parametrize(
    "module",
    [
        "rpbuild.views",
        "rpbuild.views.image",
        "rpbuild.views.progress",
        "rpbuild.views.sizes",
        "rpbuild.sizes_json",
    ],
)
def test_repeat_run_modules_import_no_rich(module: str) -> None:
    """The up-to-date `image` and the repeat `sizes --json` must not pay rich's import
    (bench/); the terminal renderers import it when they draw."""
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('rich')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
