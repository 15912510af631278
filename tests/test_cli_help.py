"""rpbuild builds only the command it runs (fast_start.keep_only_what_runs): every help and
usage error must read exactly as with the whole app built."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# The whole app, as main() would run it without pruning the commands.
WHOLE_APP = """
import sys
from typer._click.exceptions import NoArgsIsHelpError
from rpbuild import cli
try:
    cli.app(args=cli.join_pairs(sys.argv[1:]), prog_name="rpbuild", standalone_mode=False)
except Exception as exc:
    if isinstance(exc, NoArgsIsHelpError):
        sys.stdout.write(exc.format_message() + "\\n")
    else:
        sys.stderr.write(f"rpbuild: error: {cli._usage_error(exc)}\\n")
"""


def _run(argv: list[str]) -> tuple[str, str]:
    env = {**os.environ, "COLUMNS": "100"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    return proc.stdout, proc.stderr.replace("rpbuild: error: None\n", "")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["-v", "--help"],
        ["--project", "/nonexistent", "--help"],
        ["image", "--help"],
        ["sizes", "--help"],
        ["profiles", "--help"],
        ["profiles", "show", "--help"],
        ["lock", "--help"],
        ["lock", "update", "--help"],
        ["-q", "release", "--help"],
        ["imag"],
        ["image", "--no-such-option"],
    ],
)
def test_help_and_usage_errors_match_the_whole_app(args: list[str]) -> None:
    ours_out, ours_err = _run([sys.executable, "-m", "rpbuild", *args])
    whole_out, whole_err = _run([sys.executable, "-c", WHOLE_APP, *args])
    assert ours_out == whole_out
    assert whole_err in ours_err or ours_err.strip() == whole_err.strip()
