"""rpbuild.cli's argument handling and output helpers; the commands themselves run in
subprocesses in tests/test_cli_*.py."""

from __future__ import annotations

import json

import pytest

from rpbuild import cli
from rpbuild.errors import RpbuildError


@pytest.mark.parametrize(
    ("argv", "joined"),
    [
        (
            ["--override-input", "rosenpass", "path:../rp"],
            ["--override-input", "rosenpass=path:../rp"],
        ),
        (["--option", "substituters", ""], ["--option", "substituters="]),
        (["--option", "a=b"], ["--option", "a=b"]),  # already joined
        (["--option", "x", "--json"], ["--option", "x", "--json"]),  # no second value
        (["--", "--option", "a", "b"], ["--", "--option", "a", "b"]),  # after --: as it is
    ],
)
def test_two_word_options_are_joined_like_nix_takes_them(
    argv: list[str], joined: list[str]
) -> None:
    assert cli.join_pairs(argv) == joined


def test_pairs_name_the_option_at_fault() -> None:
    assert cli._pairs(["a=b=c"], "--option") == (("a", "b=c"),)
    with pytest.raises(RpbuildError, match=r"^--option takes two values: NAME VALUE"):
        cli._pairs(["novalue"], "--option")
    with pytest.raises(RpbuildError, match=r"^--override-input: empty NAME"):
        cli._pairs(["=path:/x"], "--override-input")


def test_json_documents_start_with_their_format(capsys: pytest.CaptureFixture[str]) -> None:
    cli._print_json("down", {"name": "x", "stopped": False})
    first = json.loads(capsys.readouterr().out)
    assert list(first) == ["format", "name", "stopped"] and first["format"] == "rpbuild-down/1"
    cli._print_json("sizes", {"format": "rpbuild-sizes/1", "profiles": []})
    assert json.loads(capsys.readouterr().out)["format"] == "rpbuild-sizes/1"  # its own kept
