"""`rpbuild profiles` and `profiles show`: the packages as tables, the settings as lines."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rpbuild.units import human

if TYPE_CHECKING:
    from rich.console import Console

    from rpbuild.profiles import Profile


def profiles_table(console: Console, profiles: Sequence[Profile]) -> None:
    """One table per profile, like the package table of the original project."""
    for profile in profiles:
        _packages(console, profile)
        console.print()


def _packages(console: Console, profile: Profile) -> None:
    from rich.table import Table
    from rich.text import Text

    extends = f", extends {profile.extends}" if profile.extends else ""
    table = Table(
        title=f"[bold]{profile.name}[/bold]{extends}: {profile.image.reference}",
        caption=Text(profile.description) if profile.description else None,
        title_justify="left",
        show_lines=False,
    )
    table.add_column("package", style="bold", no_wrap=True)
    table.add_column("description")
    table.add_column("reason")
    table.add_column("required", justify="center")
    table.add_column("from", no_wrap=True)
    for pkg in profile.packages:
        attr = pkg.attr_path if pkg.attr_path == pkg.name else f"{pkg.name} ({pkg.attr_path})"
        where = f"{pkg.source}#{attr}" if pkg.source != "nixpkgs" else attr
        table.add_row(
            Text(where),
            Text(pkg.description),
            Text(pkg.reason),
            "yes" if pkg.required else "no",
            pkg.origin,
        )
    _print_uncut(console, table)


def _print_uncut(console: Console, renderable: Any) -> None:
    """Print; when not writing to a terminal, as wide as the content, never cut to 80 columns.

    Piped output has no width to fit, and a value cut off with an ellipsis is lost to
    whoever reads it (a script, a file, a pager that scrolls sideways).
    """
    if console.is_terminal:
        console.print(renderable)
        return
    width = console.width
    console.width = sys.maxsize
    try:
        console.print(renderable)
    finally:
        console.width = width


def profile_detail(console: Console, profile: Profile) -> None:
    """The packages, then one line per image setting, each value whole.

    Plain lines, not a table: a table cuts long values (labels, env) to the width.
    Sizes as `rpbuild sizes` shows them; `--json` has the exact bytes.
    """
    from rich.text import Text

    _packages(console, profile)
    img = profile.image
    rows = [
        ("file", str(profile.path)),
        ("chain", " -> ".join(profile.chain)),
        ("image", img.reference),
        ("entrypoint", " ".join(img.entrypoint) or "-"),
        ("cmd", " ".join(img.cmd) or "-"),
        ("created", img.created),
        ("max layers", str(img.max_layers)),
        *(("env", f"{key}={value}") for key, value in sorted(img.env.items())),
        *(("label", f"{key}={value}") for key, value in sorted(img.labels.items())),
        ("budget", "-" if profile.budget is None else human(profile.budget)),
    ]
    for key, value in rows:
        line = Text.assemble((f"{key:<12}", "bold"), value)
        console.print(line, soft_wrap=True)
