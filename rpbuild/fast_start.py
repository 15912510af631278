"""Starting and ending in milliseconds: what `rpbuild --help`, a typo and the repeat
runs of `image` and `sizes` skip (bench/ measures them against their floors)."""

from __future__ import annotations

import inspect
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer
    from typer.models import CommandInfo


def exit_now() -> None:
    """End a repeat run or a help that succeeded without the interpreter's teardown.

    Tearing down the ~150 modules a typer CLI loads costs about 10 ms of CPU, a tenth
    of an up-to-date `image` or `sizes` (bench/). Only read-only paths take it (the
    repeat runs, the help): everything they wrote is flushed or closed, they leave no
    temporary files, no threads and no atexit work behind.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def command_word(argv: list[str]) -> str | None:
    """The command argv names (the first word after the root options), if any."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--project":
            i += 2
            continue
        if arg == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if not arg.startswith("-"):
            return arg
        i += 1
    return None


def _no_parameters() -> None:
    """Stands in for a command in the root help, which shows names and summaries only."""


def name_of(info: CommandInfo) -> str:
    """A command's name as typer derives it (the function's name, `_` as `-`)."""
    if info.name:
        return str(info.name)
    return str(getattr(info.callback, "__name__", "")).lower().replace("_", "-")


def keep_only_what_runs(app: typer.Typer, argv: list[str]) -> None:
    """Typer turns every command's signature into click parameters before it parses a
    word (inspect.signature and type hints for each: about 10 ms, a fifth of `import
    typer`). Only the command argv names is built; for the root help or a mistyped
    command, the others keep their name and help but lose their parameters, which
    that output does not show. tests/test_cli_help.py compares the outputs."""
    from typer.models import CommandInfo

    word = command_word(argv)
    named = [info for info in app.registered_commands if word is not None and word == name_of(info)]
    if named:
        app.registered_commands[:] = named
        app.registered_groups[:] = []
        return
    if word is not None and any(g.name == word for g in app.registered_groups):
        app.registered_commands[:] = []
        app.registered_groups[:] = [g for g in app.registered_groups if g.name == word]
        return
    app.registered_commands[:] = [
        CommandInfo(
            name=name_of(info),
            help=info.help if info.help is not None else inspect.getdoc(info.callback),
            short_help=info.short_help,
            epilog=info.epilog,
            hidden=info.hidden,
            deprecated=info.deprecated,
            rich_help_panel=info.rich_help_panel,
            callback=_no_parameters,
        )
        for info in app.registered_commands
    ]
