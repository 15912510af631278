"""Follow nix's `--log-format internal-json` stderr and show it to the user.

nix writes one `@nix {json}` line per event: activities start and stop, send
results (progress counters, build log lines, phases) and messages. `BuildProgress`
folds those lines into a small state model that is pure and unit-tested on
recorded nix output; the views (`LiveView` for a terminal, `PlainView` for logs
and CI, `NullView` for --quiet) only render that state.

The same decoder turns a failed command's stderr back into plain text, so error
messages and log tails never show JSON (see `rpbuild.nix.classify_failure`).
"""

from __future__ import annotations

import collections
import json
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Protocol

from rpbuild.units import human, store_name

if TYPE_CHECKING:  # rich is imported only by the views that draw (startup time)
    from rich.console import Console, RenderableType

TAIL_LINES = 25
JSON_PREFIX = "@nix "

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


class ActivityType(IntEnum):
    """nix's ActivityType (libutil/logging.hh); numbering is stable across versions."""

    UNKNOWN = 0
    COPY_PATH = 100
    FILE_TRANSFER = 101
    REALISE = 102
    COPY_PATHS = 103
    BUILDS = 104
    BUILD = 105
    OPTIMISE_STORE = 106
    VERIFY_PATHS = 107
    SUBSTITUTE = 108
    QUERY_PATH_INFO = 109
    POST_BUILD_HOOK = 110
    BUILD_WAITING = 111


class ResultType(IntEnum):
    """nix's ResultType: what an activity reports while it runs."""

    FILE_LINKED = 100
    BUILD_LOG_LINE = 101
    UNTRUSTED_PATH = 102
    CORRUPTED_PATH = 103
    SET_PHASE = 104
    PROGRESS = 105
    SET_EXPECTED = 106
    POST_BUILD_LOG_LINE = 107


class Verbosity(IntEnum):
    """nix's message levels, as in the `level` field of a `msg` action."""

    ERROR = 0
    WARN = 1
    NOTICE = 2
    INFO = 3
    TALKATIVE = 4
    CHATTY = 5
    DEBUG = 6
    VOMIT = 7


def strip_ansi(text: str) -> str:
    """nix colours its messages even in JSON; users and tests want plain text."""
    return _ANSI.sub("", text)


@dataclass
class RunningBuild:
    """One derivation being built right now."""

    drv_path: str
    name: str
    machine: str = ""
    phase: str = ""


@dataclass(frozen=True)
class Event:
    """Something worth one line in a plain log.

    kind: build-start, build-done, build-failed, substitute, log, message.
    """

    kind: str
    text: str
    level: int = Verbosity.INFO


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class BuildProgress:
    """What nix is doing, folded from its internal-json log. Feed it lines in order."""

    running: dict[int, RunningBuild] = field(default_factory=dict)
    substituting: dict[int, str] = field(default_factory=dict)
    builds_done: int = 0
    builds_expected: int = 0
    builds_failed: int = 0
    paths_done: int = 0
    paths_expected: int = 0
    download_done: int = 0
    download_expected: int = 0
    log_tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=TAIL_LINES)
    )
    build_logs: dict[str, collections.deque[str]] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _types: dict[int, int] = field(default_factory=dict, repr=False)
    _builds: dict[int, RunningBuild] = field(default_factory=dict, repr=False)
    _transfers: dict[int, tuple[int, int]] = field(default_factory=dict, repr=False)
    # Counters per `builds`/`copyPaths` activity: one state can follow several nix
    # calls (activity ids embed nix's pid), and the totals add up across them.
    _build_counts: dict[int, tuple[int, int, int]] = field(default_factory=dict, repr=False)
    _path_counts: dict[int, tuple[int, int]] = field(default_factory=dict, repr=False)
    _expected_download: int = field(default=0, repr=False)
    _failed_reported: int = field(default=0, repr=False)
    _done_reported: int = field(default=0, repr=False)

    def feed_all(self, lines: Iterable[str]) -> list[Event]:
        return [ev for ev in map(self.feed, lines) if ev is not None]

    def feed(self, line: str) -> Event | None:
        """Fold one stderr line into the state; return an event a plain view may print."""
        line = line.rstrip("\r\n")
        if not line.startswith(JSON_PREFIX):
            return self._plain(line)
        try:
            obj = json.loads(line[len(JSON_PREFIX) :])
        except json.JSONDecodeError:
            return self._plain(line)
        if not isinstance(obj, dict):
            return self._plain(line)
        action = obj.get("action")
        if action == "start":
            return self._start(obj)
        if action == "stop":
            return self._stop(_int(obj.get("id")))
        if action == "result":
            return self._result(obj)
        if action == "msg":
            level = _int(obj.get("level"))
            return self._message(strip_ansi(str(obj.get("msg", ""))), level)
        return None

    # -- state queries -------------------------------------------------------

    @property
    def builds_running(self) -> int:
        return len(self.running)

    def build_log(self, drv_path: str) -> list[str]:
        """The last log lines of one derivation (plain text, no prefix)."""
        return list(self.build_logs.get(drv_path, ()))

    # -- decoding ------------------------------------------------------------

    def _plain(self, line: str) -> Event | None:
        """A line nix wrote outside the JSON log (early warnings, plain errors)."""
        text = strip_ansi(line)
        stripped = text.lstrip()
        level = Verbosity.INFO
        if text.startswith("error:"):
            level = Verbosity.ERROR
        elif stripped.startswith("warning:"):
            level = Verbosity.WARN
        self.messages.append(text)
        if text.strip():
            self.log_tail.append(text)
        if level == Verbosity.ERROR:
            self.errors.append(text)
        return Event("message", text, level) if text.strip() else None

    def _message(self, text: str, level: int) -> Event | None:
        lines = text.splitlines() or [""]
        self.messages.extend(lines)
        self.log_tail.extend(ln for ln in lines if ln.strip())
        if level == Verbosity.ERROR:
            self.errors.append(text)
        return Event("message", text, level) if text.strip() else None

    def _start(self, obj: dict[str, Any]) -> Event | None:
        act_id = _int(obj.get("id"))
        act_type = _int(obj.get("type"))
        fields = obj.get("fields") or []
        self._types[act_id] = act_type
        if act_type == ActivityType.BUILD and fields and isinstance(fields[0], str):
            machine = fields[1] if len(fields) > 1 and isinstance(fields[1], str) else ""
            build = RunningBuild(drv_path=fields[0], name=store_name(fields[0]), machine=machine)
            self.running[act_id] = build
            self._builds[act_id] = build
            where = f" on {machine}" if machine else ""
            return Event("build-start", f"building {build.name}{where}")
        if act_type == ActivityType.SUBSTITUTE and fields and isinstance(fields[0], str):
            name = store_name(fields[0])
            self.substituting[act_id] = name
            source = fields[1] if len(fields) > 1 and isinstance(fields[1], str) else ""
            return Event("substitute", f"fetching {name}" + (f" from {source}" if source else ""))
        if act_type == ActivityType.FILE_TRANSFER:
            self._transfers.setdefault(act_id, (0, 0))
        return None

    def _stop(self, act_id: int) -> Event | None:
        act_type = self._types.pop(act_id, None)
        self.substituting.pop(act_id, None)
        build = self.running.pop(act_id, None)
        if act_type != ActivityType.BUILD or build is None:
            return None
        # nix counts a failure on the `builds` activity just before it stops the
        # failed build; any unreported failure belongs to the build stopping now.
        if self.builds_failed > self._failed_reported:
            self._failed_reported += 1
            return Event("build-failed", f"failed {build.name}", Verbosity.ERROR)
        # Likewise a success is counted just before its build stops. A build that
        # stops uncounted was interrupted: it did not build anything.
        if self.builds_done <= self._done_reported:
            return None
        self._done_reported += 1
        counts = f" ({self.builds_done}/{self.builds_expected})" if self.builds_expected else ""
        return Event("build-done", f"built {build.name}{counts}")

    def _result(self, obj: dict[str, Any]) -> Event | None:
        act_id = _int(obj.get("id"))
        res_type = _int(obj.get("type"))
        fields = obj.get("fields") or []
        act_type = self._types.get(act_id)
        if res_type in (ResultType.BUILD_LOG_LINE, ResultType.POST_BUILD_LOG_LINE):
            text = strip_ansi(str(fields[0])) if fields else ""
            build = self._builds.get(act_id)
            if build is None:
                self.log_tail.append(text)
                return Event("log", text)
            self.build_logs.setdefault(build.drv_path, collections.deque(maxlen=TAIL_LINES)).append(
                text
            )
            self.log_tail.append(f"{build.name}> {text}")
            return Event("log", f"{build.name}> {text}")
        if res_type == ResultType.SET_PHASE:
            build = self._builds.get(act_id)
            if build is not None and fields:
                build.phase = str(fields[0])
            return None
        if res_type == ResultType.PROGRESS and len(fields) >= 2:
            done, expected = _int(fields[0]), _int(fields[1])
            if act_type == ActivityType.BUILDS:
                failed = _int(fields[3]) if len(fields) >= 4 else 0
                self._build_counts[act_id] = (done, expected, failed)
                self.builds_done = sum(c[0] for c in self._build_counts.values())
                self.builds_expected = sum(c[1] for c in self._build_counts.values())
                self.builds_failed = sum(c[2] for c in self._build_counts.values())
            elif act_type == ActivityType.COPY_PATHS:
                self._path_counts[act_id] = (done, expected)
                self.paths_done = sum(c[0] for c in self._path_counts.values())
                self.paths_expected = sum(c[1] for c in self._path_counts.values())
            elif act_type == ActivityType.FILE_TRANSFER:
                self._transfers[act_id] = (done, expected)
                self._update_downloads()
            return None
        if res_type == ResultType.SET_EXPECTED and len(fields) >= 2:
            if _int(fields[0]) == ActivityType.FILE_TRANSFER:
                self._expected_download = _int(fields[1])
                self._update_downloads()
            return None
        if res_type in (ResultType.UNTRUSTED_PATH, ResultType.CORRUPTED_PATH) and fields:
            what = "untrusted" if res_type == ResultType.UNTRUSTED_PATH else "corrupted"
            return self._message(f"warning: {what} path {fields[0]}", Verbosity.WARN)
        return None

    def _update_downloads(self) -> None:
        self.download_done = sum(d for d, _ in self._transfers.values())
        self.download_expected = max(
            self._expected_download, sum(e for _, e in self._transfers.values())
        )


def decode_stderr(stderr: str) -> BuildProgress:
    """Decode a finished command's stderr, JSON or plain, into a BuildProgress."""
    progress = BuildProgress()
    for line in stderr.splitlines():
        progress.feed(line)
    return progress


# -- views -----------------------------------------------------------------------


class View(Protocol):
    """A progress sink: a context manager that is called with each stderr line."""

    progress: BuildProgress

    def __call__(self, line: str) -> None: ...

    def feed(self, line: str) -> None: ...

    def message(self, text: str) -> None: ...

    def __enter__(self) -> View: ...

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

    def __enter__(self) -> _BaseView:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


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

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Runs on Ctrl-C too: the terminal gets its cursor back, the table is erased.
        self._live.stop()


def make_view(stream: IO[str], *, quiet: bool = False, verbose: bool = False) -> View:
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
