"""rpbuild.fast_start: which command a command line names (only that one is built).
tests/test_cli_help.py compares the pruned app's help and errors with the whole app's."""

from __future__ import annotations

import pytest

from rpbuild import cli, fast_start


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        ([], None),
        (["--help"], None),
        (["image", "--profile", "x"], "image"),
        (["-v", "--project", "/p", "sizes"], "sizes"),
        (["--project", "image", "render"], "render"),  # --project's value is not the command
        (["--", "image"], "image"),
        (["--"], None),
    ],
)
def test_the_command_word_skips_root_options(argv: list[str], word: str | None) -> None:
    assert fast_start.command_word(argv) == word


def test_every_command_has_the_name_typer_gives_it() -> None:
    names = {fast_start.name_of(info) for info in cli.app.registered_commands}
    assert {"image", "sizes", "up", "test", "down", "verify-release", "compose"} <= names
