"""The one callback type through which domain code reports what it is doing.

Domain modules never print: they take a `Notify` (a progress message for a person,
or a raw log line to feed a view) and the CLI decides where it goes: a live view,
plain stderr, or nowhere with `-q`.
"""

from __future__ import annotations

from collections.abc import Callable

# object, not None: a callback's result is ignored, so any callable taking a line will do.
Notify = Callable[[str], object]


def quiet(_: str) -> None:
    """The default `Notify`: the caller asked for nothing."""
