"""rpbuild.errors: the exit code of each error class (the README's table) and the one
line every message is printed as. tests/test_cli_conventions.py runs the commands."""

from __future__ import annotations

import pytest

from rpbuild.errors import (
    CheckFailed,
    CommandError,
    EngineError,
    ExitCode,
    Interrupted,
    NixError,
    ProfileError,
    ProjectError,
    RenderError,
    RpbuildError,
    ToolMissing,
    one_line,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (RpbuildError, ExitCode.USAGE),  # input the user gave: as click's usage errors
        (ProfileError, ExitCode.USAGE),
        (ProjectError, ExitCode.USAGE),
        (RenderError, ExitCode.USAGE),
        (CheckFailed, ExitCode.CHECK_FAILED),
        (CommandError, ExitCode.RUNTIME),
        (NixError, ExitCode.RUNTIME),
        (EngineError, ExitCode.RUNTIME),
        (ToolMissing, ExitCode.RUNTIME),
        (Interrupted, ExitCode.INTERRUPTED),
    ],
)
def test_each_error_class_has_its_exit_code(error: type[RpbuildError], code: ExitCode) -> None:
    assert error("x").exit_code == code


def test_message_and_hint_are_one_line_each() -> None:
    exc = RpbuildError("profiles/a\nb.toml: bad", hint="try\tthis")
    assert exc.message == "profiles/a\\nb.toml: bad"
    assert exc.hint == "try\\tthis"
    assert str(exc) == exc.message


def test_a_command_error_keeps_its_stderr_tail_as_it_was() -> None:
    exc = NixError("nix build failed", argv=["nix", "build"], returncode=1, stderr_tail="a\nb\n")
    assert exc.stderr_tail == "a\nb\n" and exc.argv == ["nix", "build"] and exc.returncode == 1


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("plain", "plain"),
        ("ends with a newline\n", "ends with a newline"),
        ("two\nlines", "two\\nlines"),
        ("\x1b[31;1mred\x1b[0m", "red"),  # nix's colours dropped
        ("bell\x07", "bell\\x07"),
        ("rtl\u202eevil", "rtl\\u202eevil"),  # a format character cannot reorder the line
    ],
)
def test_one_line_escapes_what_would_break_or_rewrite_the_line(text: str, line: str) -> None:
    assert one_line(text) == line
