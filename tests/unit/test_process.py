"""rpbuild.process against real small programs (sh, true): the one place that starts them."""

from __future__ import annotations

import sys

import pytest

from rpbuild import process
from rpbuild.errors import CommandError, EngineError, ExitCode


def test_run_captures_both_streams_and_calls_back_per_stderr_line() -> None:
    seen: list[str] = []
    result = process.run(
        ["sh", "-c", "echo out; echo one >&2; echo two >&2"], on_stderr_line=seen.append
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "one\ntwo\n")
    assert seen == ["one", "two"]


def test_a_failure_is_a_project_error_with_its_last_line_and_tail() -> None:
    script = "; ".join(f"echo line{i} >&2" for i in range(40)) + "; exit 7"
    with pytest.raises(EngineError) as info:
        process.run(["sh", "-c", script], what="the engine", error=EngineError, hint="retry")
    err = info.value
    assert err.message == "the engine failed (exit 7): line39"
    assert err.returncode == 7 and err.hint == "retry"
    assert err.stderr_tail.splitlines() == [f"line{i}" for i in range(40 - process.TAIL_LINES, 40)]
    assert err.exit_code == ExitCode.RUNTIME


def test_check_false_returns_the_failure() -> None:
    result = process.run(["sh", "-c", "echo no >&2; exit 3"], check=False)
    assert result.returncode == 3
    made = result.error(CommandError, "it failed", hint="h")
    assert (made.argv, made.returncode, made.stderr_tail, made.hint) == (
        result.argv,
        3,
        "no",
        "h",
    )


def test_a_missing_program_names_it() -> None:
    with pytest.raises(CommandError, match=r"^frob: command not found: no-such-program-rpb$"):
        process.run(["no-such-program-rpb"], what="frob")


def test_a_deadline_stops_the_command() -> None:
    with pytest.raises(CommandError, match=r"did not finish within 0.2 s"):
        process.run(["sleep", "30"], timeout=0.2)


def test_env_is_added_to_the_environment() -> None:
    result = process.run([sys.executable, "-c", "import os; print(os.environ['RPB_X'])"],
                         env={"RPB_X": "42"})  # fmt: skip
    assert result.stdout == "42\n"


def test_every_command_is_logged_with_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    process.run(["true", "quiet"])
    assert capsys.readouterr().err == ""
    process.set_verbose(True)
    try:
        process.run(["true", "a b"])
    finally:
        process.set_verbose(False)
    assert "rpbuild: running: true 'a b'" in capsys.readouterr().err


def test_pipe_feeds_one_into_the_other_and_checks_both() -> None:
    result = process.pipe(["sh", "-c", "printf 'a\\nb\\n'"], ["wc", "-l"], what="count")
    assert result.stdout.strip() == "2"
    # A producer that dies half-way fails the pipe, though the consumer was content; it is
    # named as itself (its own `what`, by default its program), not as the pipe.
    with pytest.raises(CommandError, match=r"^sh failed \(exit 4\): cut short$"):
        process.pipe(["sh", "-c", "echo a; echo cut short >&2; exit 4"], ["cat"], what="count")
