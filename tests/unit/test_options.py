"""rpbuild.options: the shared options, the argv joining and the Command wrapper that
gives every command -q/-v/--json and its groups. The commands themselves run in
subprocesses in tests/test_cli_*.py."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from rpbuild import options
from rpbuild.errors import RpbuildError
from rpbuild.options import NIX, RUN, TOPOLOGY, Context, NixArgs, RunArgs, TopologyArgs, command


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
    assert options.join_pairs(argv) == joined


def test_pairs_name_the_option_at_fault() -> None:
    assert options._pairs(["a=b=c"], "--option") == (("a", "b=c"),)
    with pytest.raises(RpbuildError, match=r"^--option takes two values: NAME VALUE"):
        options._pairs(["novalue"], "--option")
    with pytest.raises(RpbuildError, match=r"^--override-input: empty NAME"):
        options._pairs(["=path:/x"], "--override-input")


def test_nix_args_become_nix_options_only_when_asked() -> None:
    args = NixArgs(override_input=["rosenpass=path:/rp"], builders="ssh://b", option=["a=b"])
    assert args.overrides() == (("rosenpass", "path:/rp"),)
    opts = args.options()
    assert opts.overrides == (("rosenpass", "path:/rp"),)
    assert opts.builders == "ssh://b" and opts.options == (("a", "b"),)
    with pytest.raises(RpbuildError, match="--option takes two values"):
        NixArgs(option=["lonely"]).options()


def test_json_documents_start_with_their_format(capsys: pytest.CaptureFixture[str]) -> None:
    options.print_json("down", {"name": "x", "stopped": False})
    first = json.loads(capsys.readouterr().out)
    assert list(first) == ["format", "name", "stopped"] and first["format"] == "rpbuild-down/1"
    options.print_json("sizes", {"format": "rpbuild-sizes/1", "profiles": []})
    assert json.loads(capsys.readouterr().out)["format"] == "rpbuild-sizes/1"  # its own kept
    options.print_json("things", ["a", "b"])
    assert json.loads(capsys.readouterr().out) == {
        "format": "rpbuild-things/1",
        "items": ["a", "b"],
    }


# --- Command: the shared options appended to what typer sees ------------------------------

SEEN: list[tuple[Context, dict[str, object]]] = []


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = Context(project_dir=None, verbose=False, quiet=False)

    @app.command()
    @command(TOPOLOGY, RUN, NIX)
    def both(
        c: Context,
        name: Annotated[str, typer.Option("--name", help="Its own option.")] = "x",
        *,
        topology: TopologyArgs,
        run: RunArgs,
        nix: NixArgs,
    ) -> None:
        """A command with every group."""
        SEEN.append((c, {"name": name, "topology": topology, "run": run, "nix": nix}))

    @app.command()
    @command(json=False)
    def plain(c: Context) -> None:
        """A command with the common options only."""
        SEEN.append((c, {}))

    return app


def test_a_command_declares_its_own_options_and_receives_the_shared_ones() -> None:
    SEEN.clear()
    result = CliRunner().invoke(
        _app(),
        ["both", "--name", "n", "--ip", "4", "--timeout", "5", "--option", "a=b", "--json", "-q"],
    )
    assert result.exit_code == 0, result.output
    c, got = SEEN[0]
    assert c.quiet and c.as_json and not c.verbose
    assert got["name"] == "n"
    topology, run, nix = got["topology"], got["run"], got["nix"]
    assert isinstance(topology, TopologyArgs) and topology.ip == "4"
    assert topology.profile == "with-wireguard" and topology.tag is None
    assert isinstance(run, RunArgs) and run.timeout == 5.0 and run.system == "x86_64-linux"
    assert isinstance(nix, NixArgs) and nix.options().options == (("a", "b"),)


def test_shared_options_follow_a_commands_own_in_help_and_json_can_be_left_out() -> None:
    app = _app()
    helped = CliRunner().invoke(app, ["both", "--help"]).output
    order = ["--name", "--profile", "--ip", "--timeout", "--override-input", "--json", "--quiet"]
    positions = [helped.index(option) for option in order]
    assert positions == sorted(positions), helped
    plain = CliRunner().invoke(app, ["plain", "--help"]).output
    assert "--quiet" in plain and "--json" not in plain and "--ip" not in plain
    assert CliRunner().invoke(app, ["plain", "--json"]).exit_code == 2


def test_a_commands_signature_is_made_once_and_only_when_asked() -> None:
    def fn(c: Context, own: Annotated[int, typer.Option("--own")] = 1, *, nix: NixArgs) -> None:
        """Doc."""

    wrapped = command(NIX)(fn)
    assert wrapped._signature is None  # not made at import: `--help` pays for one command
    names = list(inspect.signature(wrapped).parameters)
    assert names == [
        "ctx",
        "own",
        "override_input",
        "builders",
        "option",
        "as_json",
        "quiet",
        "verbose",
    ]
    assert wrapped.__signature__ is wrapped.__signature__
    assert wrapped.__name__ == "fn" and wrapped.__doc__ == "Doc."


def test_profile_completion_lists_profile_files(tmp_path: Path) -> None:
    """Completion reads file names only; outside a project it offers nothing."""
    ctx = typer.Context(typer.main.get_command(_app()))
    ctx.params["project"] = str(Path(__file__).resolve().parents[2])  # this repository
    assert options.complete_profiles(ctx, "") == ["debug", "minimal", "with-wireguard"]
    assert options.complete_profiles(ctx, "w") == ["with-wireguard"]
    ctx.params["project"] = str(tmp_path / "nowhere")
    assert options.complete_profiles(ctx, "") == []
