"""The only place rpbuild starts processes.

Every command is logged before it runs; a failure raises a project error carrying
the tail of stderr, and Ctrl-C stops the whole process group before it propagates.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

from rpbuild.errors import CommandError, Interrupted
from rpbuild.notify import Notify

# `rpbuild -v` logs every command; a flag, not the logging package, which costs the
# up-to-date paths a few milliseconds to import (bench/).
_verbose = False


def set_verbose(on: bool) -> None:
    global _verbose
    _verbose = on


def verbose() -> bool:
    return _verbose


def _log(message: str) -> None:
    if _verbose:
        sys.stderr.write(f"rpbuild: {message}\n")
        sys.stderr.flush()


TAIL_LINES = 25
E = TypeVar("E", bound=CommandError)
_TERMINATE_GRACE_S = 5.0


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def stderr_tail(self, lines: int = TAIL_LINES) -> str:
        return "\n".join(self.stderr.splitlines()[-lines:])

    def error(self, error: type[E], message: str, hint: str | None = None) -> E:
        """The project error for this failed command, carrying its argv and stderr tail."""
        return error(
            message,
            argv=self.argv,
            returncode=self.returncode,
            stderr_tail=self.stderr_tail(),
            hint=hint,
        )


def which(name: str) -> str | None:
    return shutil.which(name)


def _stop(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """Terminate each process group, then kill what is left after a grace period."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=_TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _drain(
    stream: IO[bytes],
    sink: list[str],
    tail: collections.deque[str] | None,
    on_line: Notify | None,
) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        sink.append(line)
        if tail is not None:
            tail.append(line.rstrip("\n"))
        if on_line is not None:
            on_line(line.rstrip("\n"))
    stream.close()


def _spawn(
    argv: list[str],
    stdin: int | IO[bytes],
    *,
    what: str,
    error: type[CommandError],
    hint: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start argv in its own session (Ctrl-C reaches rpbuild, which stops it), or fail
    with a project error when the program does not exist."""
    try:
        return subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise error(f"{what}: command not found: {argv[0]}", argv=argv, hint=hint) from exc


def _fail(
    error: type[CommandError], what: str, argv: list[str], code: int, stderr: str, hint: str | None
) -> CommandError:
    tail = "\n".join(stderr.splitlines()[-TAIL_LINES:])
    last = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "")
    message = f"{what} failed (exit {code})" + (f": {last}" if last else "")
    return error(message, argv=argv, returncode=code, stderr_tail=tail, hint=hint)


def run(
    argv: list[str],
    *,
    what: str | None = None,
    error: type[CommandError] = CommandError,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    on_stderr_line: Notify | None = None,
    hint: str | None = None,
    timeout: float | None = None,
) -> Result:
    """Run argv to completion, capturing stdout and stderr.

    stderr is read line by line so that callers can show progress (nix's
    internal-json log) while the command runs. With a timeout, a command still
    running after that many seconds is stopped and fails: a deadline for
    commands that wait on something else (`docker-compose up` on a healthcheck).
    """
    what = what or Path(argv[0]).name
    _log(f"running: {shlex.join(argv)}")
    full_env = None if env is None else {**os.environ, **env}
    proc = _spawn(argv, subprocess.DEVNULL, what=what, error=error, hint=hint, env=full_env)
    out: list[str] = []
    err: list[str] = []
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, out, None, None), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err, tail, on_stderr_line), daemon=True),
    ]
    for t in readers:
        t.start()
    try:
        code = proc.wait(timeout=timeout)
        for t in readers:
            t.join()
    except KeyboardInterrupt:
        _stop([proc])
        raise Interrupted(f"interrupted: stopped {what}") from None
    except subprocess.TimeoutExpired:
        _stop([proc])
        for t in readers:
            t.join()
        raise error(
            f"{what} did not finish within {timeout:g} s",
            argv=argv,
            stderr_tail="\n".join(tail),
            hint=hint,
        ) from None
    result = Result(argv=argv, returncode=code, stdout="".join(out), stderr="".join(err))
    _log(f"exit {code}: {shlex.join(argv)}")
    if check and code != 0:
        raise _fail(error, what, argv, code, result.stderr, hint)
    return result


def pipe(
    producer: list[str],
    consumer: list[str],
    *,
    what: str,
    error: type[CommandError] = CommandError,
    hint: str | None = None,
    producer_what: str | None = None,
) -> Result:
    """Run `producer | consumer` without a shell and without a copy on disk.

    Both sides are checked: a producer that dies half-way must not pass for a
    consumer that loaded a truncated stream. When both fail, the side that failed
    first is the cause: a producer out of disk space leaves the consumer a truncated
    stream (whose error says nothing of space), and a consumer that gives up leaves
    the producer a broken pipe. Which process exits first says nothing (an exiting
    Python closes its stdout before it ends): a producer that died of anything but a
    broken pipe failed first. Each side is named by its own `what`.
    """
    producer_what = producer_what or Path(producer[0]).name
    _log(f"running: {shlex.join(producer)} | {shlex.join(consumer)}")
    prod = _spawn(producer, subprocess.DEVNULL, what=producer_what, error=error)
    assert prod.stdout is not None and prod.stderr is not None
    try:
        cons = _spawn(consumer, prod.stdout, what=what, error=error)
    except CommandError:
        _stop([prod])
        raise
    prod.stdout.close()  # the consumer holds the only reader now
    assert cons.stdout is not None and cons.stderr is not None
    prod_err: list[str] = []
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=_drain, args=(prod.stderr, prod_err, None, None), daemon=True),
        threading.Thread(target=_drain, args=(cons.stdout, out, None, None), daemon=True),
        threading.Thread(target=_drain, args=(cons.stderr, err, None, None), daemon=True),
    ]
    for t in readers:
        t.start()
    try:
        ccode = cons.wait()
        pcode = prod.wait()
        for t in readers:
            t.join()
    except KeyboardInterrupt:
        _stop([prod, cons])
        raise Interrupted(f"interrupted: stopped {what}") from None
    if pcode != 0 and not _broken_pipe(pcode, "".join(prod_err)):
        raise _fail(error, producer_what, producer, pcode, "".join(prod_err), hint)
    if ccode != 0:
        raise _fail(error, what, consumer, ccode, "".join(err), hint)
    if pcode != 0:
        raise _fail(error, producer_what, producer, pcode, "".join(prod_err), hint)
    return Result(argv=consumer, returncode=ccode, stdout="".join(out), stderr="".join(err))


def _broken_pipe(code: int, stderr: str) -> bool:
    """Whether a producer died of its reader going away (then the reader is the cause)."""
    return code == -signal.SIGPIPE or "BrokenPipeError" in stderr or "Broken pipe" in stderr
