"""Progress of one command: rpbuild's messages and nix's log, drawn for where they go.

`rpbuild.progress` folds nix's internal-json log into `BuildProgress`; the views here
only draw that state: `LiveView` for a terminal, `PlainView` for logs and CI,
`NullView` for --quiet. `ProgressDisplay` gives a command the two callbacks
(`notify`, `on_log`) that the domain code takes.
"""

from __future__ import annotations

import os
import re
import threading
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Protocol, Self

from rpbuild.progress import BuildProgress, Event, Verbosity, strip_ansi
from rpbuild.units import human

if TYPE_CHECKING:  # rich is imported only by the views that draw (startup time)
    from rich.console import Console, RenderableType


class NixLogView(Protocol):
    """A sink for nix's log: a context manager that is called with each stderr line."""

    progress: BuildProgress

    def __call__(self, line: str) -> None: ...

    def feed(self, line: str) -> None: ...

    def message(self, text: str) -> None: ...

    def __enter__(self) -> NixLogView: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


# Warnings that follow from what rpbuild always asks of nix: every --override-input
# changes the lock, which --no-update-lock-file keeps from being written.
_EXPECTED_WARNINGS = ("warning: not writing modified lock file",)
# A download nix retries: if it fails for good, the error says so (once, not per retry).
_RETRYING = re.compile(r"; retrying in \d+ ms$")


class _BaseView:
    """Shared plumbing: the lock (nix's stderr is read on another thread) and the state."""

    def __init__(self) -> None:
        self.progress = BuildProgress()
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def _new_warning(self, event: Event) -> bool:
        """nix's warnings are worth seeing without -v (an --option nix ignores, say, or
        refuses from an untrusted user), each once: nix repeats some."""
        if event.kind != "message" or event.level != Verbosity.WARN:
            return False
        if event.text.startswith(_EXPECTED_WARNINGS) or _RETRYING.search(event.text):
            return False
        with self._lock:
            if event.text in self._warned:
                return False
            self._warned.add(event.text)
        return True

    def __call__(self, line: str) -> None:
        """Take one line of nix's stderr (usable as `on_log`)."""
        with self._lock:
            event = self.progress.feed(line)
        if event is not None:
            self._show(event)

    def feed(self, line: str) -> None:
        self(line)

    def message(self, text: str) -> None:
        """rpbuild's own status line (the caller decides what is worth showing)."""

    def _show(self, event: Event) -> None:
        """Render one event; the base view shows nothing."""

    def _start(self) -> None:
        """Take the terminal, if the view draws on one; the base view needs nothing."""

    def _stop(self) -> None:
        """Give the terminal back; runs on errors and Ctrl-C too."""

    def __enter__(self) -> Self:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()


class NullView(_BaseView):
    """--quiet: keep the state (for error reports), show nothing."""


class PlainView(_BaseView):
    """Not a terminal: one plain line per build started or finished, no escape codes.

    verbose also prints the build logs (`name> line`) and nix's warnings.
    """

    def __init__(self, stream: IO[str], *, verbose: bool = False) -> None:
        super().__init__()
        self.stream = stream
        self.verbose = verbose

    def _show(self, event: Event) -> None:
        steps = ("build-start", "build-done", "build-failed", "substitute")
        if event.kind in steps or (self.verbose and event.kind == "log"):
            self._write(event.text)
        elif self._new_warning(event) or (
            self.verbose and event.kind == "message" and event.level == Verbosity.ERROR
        ):
            for line in event.text.splitlines():
                self._write(line)

    def message(self, text: str) -> None:
        self._write(text)

    def _write(self, text: str) -> None:
        self.stream.write(strip_ansi(text) + "\n")
        self.stream.flush()


def render_progress(progress: BuildProgress, *, max_rows: int = 6) -> RenderableType:
    """A compact picture of the state: one spinner row per running build, then counters."""
    from rich.console import Group
    from rich.spinner import Spinner
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 1))
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True, overflow="ellipsis")
    builds = list(progress.running.values())
    for build in builds[:max_rows]:
        label = Text(build.name, style="bold")
        if build.machine:
            label.append(f" on {build.machine}", style="dim")
        if build.phase:
            label.append(f" {build.phase}", style="dim")
        table.add_row(Spinner("dots"), label)
    if len(builds) > max_rows:
        table.add_row("", Text(f"... and {len(builds) - max_rows} more"))
    for name in list(progress.substituting.values())[: max(0, max_rows - len(builds))]:
        table.add_row(Spinner("dots"), Text(f"fetching {name}"))
    parts = [f"built {progress.builds_done}/{progress.builds_expected}"]
    if progress.builds_failed:
        parts.append(f"[red]{progress.builds_failed} failed[/red]")
    if progress.paths_expected:
        parts.append(f"fetched {progress.paths_done}/{progress.paths_expected} paths")
    if progress.download_expected or progress.download_done:
        parts.append(
            f"downloaded {human(progress.download_done)}/{human(progress.download_expected)}"
        )
    status = Text.from_markup(", ".join(parts), style="dim")
    if not builds and not progress.substituting:
        return Group(Text.from_markup("[dim]evaluating...[/dim]"), status)
    return Group(table, status)


class LiveView(_BaseView):
    """A terminal: a live table of running builds and counters, erased when done.

    verbose prints build log lines above the live area as they arrive.
    """

    def __init__(self, console: Console, *, verbose: bool = False) -> None:
        from rich.live import Live

        super().__init__()
        self.console = console
        self.verbose = verbose
        self._live = Live(
            get_renderable=self._render,
            console=console,
            transient=True,
            refresh_per_second=8,
            redirect_stderr=False,
        )

    def _render(self) -> RenderableType:
        with self._lock:
            return render_progress(self.progress)

    def message(self, text: str) -> None:
        from rich.text import Text

        self.console.print(Text(text))

    def _show(self, event: Event) -> None:
        from rich.text import Text

        if event.kind in ("build-done", "build-failed"):
            style = "red" if event.kind == "build-failed" else "green"
            self.console.print(Text(event.text, style=style))
        elif self._new_warning(event):
            self.console.print(Text(event.text, style="yellow"))
        elif self.verbose and event.kind == "log":
            self.console.print(Text(event.text, style="dim"))

    def _start(self) -> None:
        self._live.start()

    def _stop(self) -> None:
        # Runs on Ctrl-C too: the terminal gets its cursor back, the table is erased.
        self._live.stop()


def make_view(stream: IO[str], *, quiet: bool = False, verbose: bool = False) -> NixLogView:
    """Pick the sink: nothing when quiet, a live table on a terminal, plain lines otherwise.

    rich is loaded only for the live view: plain and quiet output must not pay its
    import time (the up-to-date path is measured in milliseconds).
    """
    if quiet:
        return NullView()
    if not stream.isatty() or os.environ.get("TERM") == "dumb":
        return PlainView(stream, verbose=verbose)
    from rich.console import Console

    return LiveView(Console(file=stream, highlight=False, soft_wrap=True), verbose=verbose)


class ProgressDisplay:
    """Messages and nix's log for one command; quiet shows warnings only."""

    def __init__(self, stream: IO[str], *, quiet: bool, verbose: bool) -> None:
        self.stream = stream
        self.quiet = quiet
        self.verbose = verbose
        self._view: Any = None

    def __enter__(self) -> ProgressDisplay:
        self._view = make_view(self.stream, quiet=self.quiet, verbose=self.verbose)
        self._view.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._view.__exit__(*exc)

    def notify(self, message: str) -> None:
        if not self.quiet:
            self._view.message(message)
        elif message.startswith("warning:"):
            self.stream.write(f"rpbuild: {message}\n")

    def on_log(self, line: str) -> None:
        self._view.feed(line)


def build_progress(stream: IO[str], *, quiet: bool, verbose: bool) -> ProgressDisplay:
    return ProgressDisplay(stream, quiet=quiet, verbose=verbose)
