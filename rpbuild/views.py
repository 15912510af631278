"""Rich renderings shared by the commands; no domain logic here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rpbuild.profiles import Profile

if TYPE_CHECKING:
    from rpbuild.build import ImageResult


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


class BuildProgress:
    """Messages and nix's log for one command; the live view when stderr is a terminal."""

    def __init__(self, console: Console, *, quiet: bool, verbose: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.verbose = verbose
        self._view: Any = None

    def __enter__(self) -> BuildProgress:
        from rpbuild import progress

        self._view = progress.make_view(self.console, quiet=self.quiet, verbose=self.verbose)
        self._view.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._view.__exit__(*exc)

    def notify(self, message: str) -> None:
        if self.quiet and not message.startswith("warning:"):
            return
        self._view.message(message)

    def on_log(self, line: str) -> None:
        self._view.feed(line)


def build_progress(console: Console, *, quiet: bool, verbose: bool) -> BuildProgress:
    return BuildProgress(console, quiet=quiet, verbose=verbose)


def human_bytes(n: int) -> str:
    from rpbuild.sizes import human

    return human(n)


def image_result(console: Console, result: ImageResult) -> None:
    status = "up to date" if result.up_to_date else "built and loaded"
    console.print(Text(f"{result.reference}: {status}", style="bold"))
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="dim", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("image id", result.image_id)
    table.add_row("size", human_bytes(result.size))
    table.add_row("system", result.system)
    table.add_row("engine", result.engine)
    table.add_row("time", f"{result.seconds:.2f} s")
    if result.out_path:
        table.add_row("store path", result.out_path)
    console.print(table)
