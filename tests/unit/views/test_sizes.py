"""rpbuild.views.sizes: Markdown for release notes and terminal tables, from hand-built reports."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace

from rich.console import Console

from rpbuild.sizes import SizeReport, compare
from rpbuild.views.sizes import (
    render_diff_terminal,
    render_markdown,
    render_terminal,
    signed_human,
)
from tests.unit.sizes_samples import MiB, changed_reports, pkg, profile, sample_report


def test_signed_human() -> None:
    assert signed_human(123392) == "+120.5 KiB"
    assert signed_human(-2 * MiB - 1) == "-2.0 MiB"
    assert signed_human(0) == "0 B"


def test_compare_rendered() -> None:
    old, new = changed_reports()
    diff = compare(old, new)
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


def test_identical_reports_render_unchanged() -> None:
    report = sample_report()
    assert "- **minimal**: unchanged, 35.4 MiB" in render_markdown(report, compare(report, report))


def test_added_size_change_only_rendered() -> None:
    old = SizeReport("x", (profile("p", [pkg("a", 10, closure=100)], closure_size=100),))
    new = SizeReport("x", (profile("p", [pkg("a", 4, closure=100)], closure_size=100),))
    assert "`a`: 0 B (added -6 B)" in render_markdown(new, compare(old, new))


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
