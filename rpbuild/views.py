"""Rich renderings shared by the commands; no domain logic here."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rpbuild.profiles import Profile


def profiles_table(console: Console, profiles: Sequence[Profile]) -> None:
    """One table per profile, like the package table of the original project."""
    for profile in profiles:
        _packages(console, profile)
        console.print()


def _packages(console: Console, profile: Profile) -> None:
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
    console.print(table)


def profile_detail(console: Console, profile: Profile) -> None:
    _packages(console, profile)
    img = profile.image
    settings = Table(show_header=False, box=None, pad_edge=False)
    settings.add_column(style="bold")
    settings.add_column()
    settings.add_row("file", Text(str(profile.path)))
    settings.add_row("chain", " -> ".join(profile.chain))
    settings.add_row("image", img.reference)
    settings.add_row("entrypoint", Text(" ".join(img.entrypoint) or "-"))
    settings.add_row("cmd", Text(" ".join(img.cmd) or "-"))
    settings.add_row("created", img.created)
    settings.add_row("max layers", str(img.max_layers))
    for key, value in sorted(img.env.items()):
        settings.add_row("env", Text(f"{key}={value}"))
    for key, value in sorted(img.labels.items()):
        settings.add_row("label", Text(f"{key}={value}"))
    settings.add_row("budget", "-" if profile.budget is None else f"{profile.budget} bytes")
    console.print(settings)
