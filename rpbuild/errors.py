"""Domain errors. The CLI turns them into one line on stderr and an exit code.

The exit code is part of each error class, so every command exits alike for the same
kind of failure (the README's table lists them):

- 1 ``CHECK_FAILED``: a check the user asked for failed (render --check, a size budget,
  the tunnel test, a verification, a release's preconditions);
- 2 ``USAGE``: the command line or the input is wrong (as click's usage errors);
- 3 ``RUNTIME``: a tool failed or is missing at run time (nix, the engine, skopeo, git,
  the network);
- 130 ``INTERRUPTED``: Ctrl-C, SIGTERM or SIGHUP.
"""

from __future__ import annotations

import re
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1
    USAGE = 2
    RUNTIME = 3
    INTERRUPTED = 130


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """text with control and format characters escaped, so that a file name, option or
    output line quoted in a message cannot break it into two or rewrite the terminal.

    Terminal colour codes (nix's) are dropped; a single trailing newline too.
    """
    text = _ANSI.sub("", text).removesuffix("\n")
    if text.isprintable():
        return text
    return "".join(
        c
        if c.isprintable()
        else _ESCAPES.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        for c in text
    )


class RpbuildError(Exception):
    """An error a user can cause or fix; printed as one line, never a traceback."""

    exit_code: int = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    # The CLI prints message and hint as one line each, whatever they quote.
    @property
    def message(self) -> str:
        return self._message

    @message.setter
    def message(self, value: str) -> None:
        self._message = one_line(value)

    @property
    def hint(self) -> str | None:
        return self._hint

    @hint.setter
    def hint(self, value: str | None) -> None:
        self._hint = None if value is None else one_line(value)

    def __str__(self) -> str:
        return self.message


class ProfileError(RpbuildError):
    """A profile file is malformed, unknown or inconsistent."""


class ProjectError(RpbuildError):
    """The project directory is missing something rpbuild needs (flake.lock, profiles/)."""


class RenderError(RpbuildError):
    """The templates could not be rendered."""


class CheckFailed(RpbuildError):
    """A check the user asked for failed (render --check, sizes --check)."""

    exit_code = ExitCode.CHECK_FAILED


class CommandError(RpbuildError):
    """An external command failed; carries the tail of its stderr.

    A failure at run time by default; a subclass whose cause is the user's input
    (a profile attribute nixpkgs lacks, a stale lock) says so with its own code.
    """

    exit_code = ExitCode.RUNTIME

    def __init__(
        self,
        message: str,
        *,
        argv: list[str] | None = None,
        returncode: int | None = None,
        stderr_tail: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.argv = argv or []
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class ToolMissing(RpbuildError):
    """nix, docker or podman is not installed or not running."""

    exit_code = ExitCode.RUNTIME


class NixError(CommandError):
    """nix failed: evaluation, fetch or build."""


class EngineError(CommandError):
    """The container engine failed."""


class Interrupted(RpbuildError):
    """The user pressed Ctrl-C; everything was left as it was."""

    exit_code = ExitCode.INTERRUPTED
