"""Domain errors. The CLI turns them into one line on stderr and an exit code."""

from __future__ import annotations

import re

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

    exit_code = 2

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
    """A check the user asked for failed (render --check, sizes --check): exit 1."""

    exit_code = 1


class CommandError(RpbuildError):
    """An external command failed; carries the tail of its stderr."""

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

    exit_code = 3


class NixError(CommandError):
    """nix failed: evaluation, fetch or build."""


class EngineError(CommandError):
    """The container engine failed."""


class Interrupted(RpbuildError):
    """The user pressed Ctrl-C; everything was left as it was."""

    exit_code = 130
