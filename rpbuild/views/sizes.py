"""Size reports drawn for people: Markdown for release notes, rich tables for a terminal.

The numbers come from `rpbuild.sizes`; nothing here computes a size. rich is imported
inside the terminal renderers only: `sizes --json`, `--markdown` and the release's
Markdown do not pay its import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rpbuild.sizes import (
    PackageChange,
    ProfileSize,
    ReportDiff,
    SizeReport,
    by_added_size,
)
from rpbuild.units import human

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


def signed_human(n: int) -> str:
    """Format a size delta with an explicit sign, so growth and shrinkage read at a glance."""
    if n > 0:
        return "+" + human(n)
    return human(n)


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
            for pkg in by_added_size(prof.packages):
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
        ordered = by_added_size(prof.packages)
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
