"""rpbuild.views.profiles: `profiles show` whole in a pipe, tables fitted only to a terminal."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from rpbuild.profiles import load_profiles
from rpbuild.views.profiles import profile_detail, profiles_table

PROFILES = Path(__file__).resolve().parents[3] / "profiles"


def _show(*, terminal: bool) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        width=80,
        force_terminal=terminal,
        color_system=None,
        highlight=False,
        soft_wrap=True,
    )
    profile_detail(console, load_profiles(PROFILES)["debug"])
    assert console.width == 80  # restored after a piped table
    return out.getvalue()


def test_piped_output_is_never_cut() -> None:
    text = _show(terminal=False)
    assert "…" not in text
    assert "label       org.opencontainers.image.source=https://github.com/rosenpass/" in text
    assert any(len(line) > 80 for line in text.splitlines())


def test_a_terminal_gets_tables_that_fit_and_whole_settings() -> None:
    text = _show(terminal=True)
    table = [line for line in text.splitlines() if line.startswith(("┏", "│", "└"))]
    assert table and all(len(line) <= 80 for line in table)
    assert "org.opencontainers.image.source=https://github.com/rosenpass/rosenpass" in text
    assert "budget" in text


def test_profiles_table_has_one_table_per_profile_with_every_package() -> None:
    profiles = load_profiles(PROFILES)
    out = io.StringIO()
    console = Console(file=out, width=80, color_system=None, highlight=False)
    profiles_table(console, list(profiles.values()))
    assert console.width == 80
    text = out.getvalue()
    for profile in profiles.values():
        assert profile.name in text and profile.image.reference in text
        for pkg in profile.packages:
            assert pkg.name in text, pkg.name
    assert "debug, extends with-wireguard: rosenpass:debug" in text
    assert "…" not in text  # piped: as wide as the content
