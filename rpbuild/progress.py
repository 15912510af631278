"""Decode nix's `--log-format internal-json` stderr into what nix is doing.

nix writes one `@nix {json}` line per event: activities start and stop, send
results (progress counters, build log lines, phases) and messages. `BuildProgress`
folds those lines into a small state model that is pure and unit-tested on
recorded nix output; `rpbuild.views.progress` draws that state (a live table on a
terminal, plain lines for logs and CI, nothing for --quiet).

The same decoder turns a failed command's stderr back into plain text, so error
messages and log tails never show JSON (see `rpbuild.nix.classify_failure`).
"""

from __future__ import annotations

import collections
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from rpbuild.units import store_name

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
