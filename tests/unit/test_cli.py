"""rpbuild.cli's boundary: how an error is printed. The commands run in subprocesses in
tests/test_cli_*.py and tests/integration/."""

from __future__ import annotations

import pytest
import typer

from rpbuild import cli, process
from rpbuild.errors import EngineError, RpbuildError
from rpbuild.nix import BuildFailed


def test_an_error_is_one_line_and_its_hint_another(capsys: pytest.CaptureFixture[str]) -> None:
    cli._report(RpbuildError("profiles/x.toml: bad", hint="see README"))
    assert capsys.readouterr().err == (
        "rpbuild: error: profiles/x.toml: bad\nrpbuild: hint: see README\n"
    )


def test_a_failed_build_shows_its_log_tail(capsys: pytest.CaptureFixture[str]) -> None:
    exc = BuildFailed(
        "building rosenpass failed",
        drv_path="/nix/store/x.drv",
        log_command="nix log /nix/store/x.drv",
        stderr_tail="cc: error\nmake: *** [all] Error 1\n",
    )
    cli._report(exc)
    assert capsys.readouterr().err == (
        "rpbuild: error: building rosenpass failed\n  | cc: error\n  | make: *** [all] Error 1\n"
    )


def test_other_command_tails_only_with_verbose(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    exc = EngineError("docker load failed", stderr_tail="no space left\n")
    monkeypatch.setattr(process, "verbose", lambda: False)
    cli._report(exc)
    assert capsys.readouterr().err == "rpbuild: error: docker load failed\n"
    monkeypatch.setattr(process, "verbose", lambda: True)
    cli._report(exc)
    assert capsys.readouterr().err.endswith("  | no space left\n")


def test_a_usage_error_points_at_the_commands_help() -> None:
    try:
        cli.app(args=["image", "--frobnicate"], prog_name="rpbuild", standalone_mode=False)
    except typer.TyperException as exc:
        line = cli._usage_error(exc)  # click may add "(Possible options: ...)"
        assert line.startswith("No such option: --frobnicate")
        assert line.endswith(" (see `rpbuild image --help`)") and "\n" not in line
    else:
        pytest.fail("a usage error was expected")
