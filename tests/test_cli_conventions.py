"""The conventions every command keeps, run as a user runs them (`python -m rpbuild`):
exit codes by kind of failure (the README's table), --version, shell completion, -q/-v after
every command, --json documents with a `format`, and choices shown in --help."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from rpbuild.errors import ExitCode
from tests.conftest import STANDIN_OVERRIDES, RunCli

# Every command, as its words on the command line, with the arguments it needs to get past
# parsing (the release VERSION).
COMMANDS: dict[str, list[str]] = {
    "init": ["init"],
    "render": ["render"],
    "compose": ["compose"],
    "up": ["up"],
    "test": ["test"],
    "down": ["down"],
    "sizes": ["sizes"],
    "release": ["release", "1.0.0"],
    "verify": ["verify"],
    "image": ["image"],
    "profiles": ["profiles"],
    "profiles show": ["profiles", "show", "minimal"],
    "lock update": ["lock", "update"],
}
# The commands that produce a result, and so take --json.
RESULTS = sorted(set(COMMANDS) - {"compose"})  # compose's result is the compose file itself


def _help(rpbuild: RunCli, words: list[str], cwd: Path) -> str:
    command = [w for w in words if not re.fullmatch(r"[\d.]+|minimal", w)]
    out = rpbuild(*command, "--help", cwd=cwd, env={"COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    return out.stdout


# -- exit codes: one table for every command -------------------------------------------


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_usage_error_exits_2_in_every_command(rpbuild: RunCli, project: Path, name: str) -> None:
    result = rpbuild(*COMMANDS[name], "--no-such-option", cwd=project)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("rpbuild: error: No such option: --no-such-option")
    assert len(result.stderr.splitlines()) == 1


# An input error: a profile (or project file) that is not there.
INPUT_ERRORS: dict[str, list[str]] = {
    "compose": ["compose", "-p", "nosuch"],
    "up": ["up", "-p", "nosuch"],
    "test": ["test", "-p", "nosuch"],
    "down": ["down", "--name", "Not A Name"],
    "sizes": ["sizes", "-p", "nosuch"],
    "verify": ["verify", "-p", "nosuch"],
    "image": ["image", "-p", "nosuch"],
    "profiles show": ["profiles", "show", "nosuch"],
    "render": ["render"],  # with a broken profile, below
    "profiles": ["profiles"],  # with a broken profile, below
    "init": ["init", "."],  # the project exists already
    "release": ["release", "1.0 0"],
    "lock update": ["lock", "update", "nosuch"],
}


@pytest.mark.parametrize("name", sorted(INPUT_ERRORS))
def test_an_input_error_exits_2_in_every_command(rpbuild: RunCli, project: Path, name: str) -> None:
    assert set(INPUT_ERRORS) == set(COMMANDS)
    if name in ("render", "profiles"):
        (project / "profiles" / "broken.toml").write_text("description = [\n")
    if name == "release":
        (project / ".git").mkdir()  # not a checkout, but the version is checked first
    result = rpbuild(*INPUT_ERRORS[name], cwd=project, env={"PATH": "/nonexistent"})
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert len(_errors(result.stderr)) == 1, result.stderr
    assert "Traceback" not in result.stderr


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("rpbuild: error: ")]


# A failure at run time: the tool each command needs is not installed (PATH without it).
RUNTIME_ERRORS: dict[str, list[str]] = {
    "up": ["up"],
    "test": ["test"],
    "down": ["down"],
    "sizes": ["sizes"],
    "verify": ["verify"],
    "image": ["image"],
    "lock update": ["lock", "update"],
}


@pytest.mark.parametrize("name", sorted(RUNTIME_ERRORS))
def test_a_missing_tool_exits_3_in_every_command_that_runs_one(
    rpbuild: RunCli, project: Path, tmp_path: Path, name: str
) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    result = rpbuild(*RUNTIME_ERRORS[name], cwd=project, env={"PATH": str(empty)})
    assert result.returncode == 3, result.stderr
    [error] = _errors(result.stderr)
    assert re.match(r"rpbuild: error: (nix|docker|git)\b.* not installed", error), error


@pytest.mark.nix
def test_an_unreachable_input_is_a_run_time_failure_not_a_usage_error(
    rpbuild: RunCli, project: Path
) -> None:
    """An offline `image` exited 2, like a typo in an option."""
    overrides = [*STANDIN_OVERRIDES, "--override-input", "rosenpass", "http://127.0.0.1:9/x.tar"]
    result = rpbuild("image", "--tag", "rpbuild-test/offline:x", *overrides, cwd=project)
    assert result.returncode == ExitCode.RUNTIME, result.stderr
    assert len(_errors(result.stderr)) == 1, result.stderr


def test_a_failed_check_exits_1(rpbuild: RunCli, project: Path) -> None:
    assert rpbuild("render", cwd=project).returncode == 0
    (project / "flake.nix").write_text("# edited\n")
    stale = rpbuild("render", "--check", cwd=project)
    assert stale.returncode == 1, stale.stderr
    as_json = rpbuild("render", "--check", "--json", cwd=project)
    assert as_json.returncode == 1
    document = json.loads(as_json.stdout)
    assert document["format"] == "rpbuild-render/1" and document["status"] == "stale"
    assert document["diff"].startswith("---")


def test_the_readme_table_lists_every_code() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = readme.split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    for code in ExitCode:
        assert re.search(rf"^\| {code.value} \|", table, re.M), code


# -- --version, completion, -q/-v, --json, choices ----------------------------------------


def test_version_prints_name_and_version(rpbuild: RunCli) -> None:
    from rpbuild import __version__

    out = rpbuild("--version")
    assert (out.returncode, out.stdout, out.stderr) == (0, f"rpbuild {__version__}\n", "")


def test_the_release_version_is_an_argument_and_the_old_option_says_so(
    rpbuild: RunCli, project: Path
) -> None:
    old = rpbuild("release", "--version", "1.2.0", cwd=project)
    assert old.returncode == 2
    assert old.stderr.splitlines() == [
        "rpbuild: error: release --version: the version is an argument now, not an option",
        "rpbuild: hint: rpbuild release 1.2.0 ...",
    ]
    missing = rpbuild("release", cwd=project)
    assert missing.returncode == 2 and "missing VERSION" in missing.stderr


def _complete(rpbuild: RunCli, cwd: Path, line: str) -> list[str]:
    words = line.split(" ")
    out = rpbuild(
        cwd=cwd,
        env={
            "_RPBUILD_COMPLETE": "complete_bash",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
        },
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_completion_offers_profiles_and_choices(rpbuild: RunCli, project: Path) -> None:
    (project / "profiles" / "wg-extra.toml").write_text('extends = "with-wireguard"\n')
    assert _complete(rpbuild, project, "rpbuild image --profile w") == [
        "wg-extra",
        "with-wireguard",
    ]
    assert _complete(rpbuild, project, "rpbuild profiles show m") == ["minimal"]
    assert _complete(rpbuild, project, "rpbuild up --ip ") == ["4", "6", "dual"]
    assert _complete(rpbuild, project, "rpbuild image --engine ") == ["docker", "podman"]
    assert _complete(rpbuild, project, "rpbuild release 1.0 --system a") == ["aarch64-linux"]
    # Another project's profiles, named with --project before the command.
    other = project.parent / "other"
    (other / "profiles").mkdir(parents=True)
    (other / "profiles" / "solo.toml").write_text("")
    (other / "flake.lock").write_text("{}")
    line = f"rpbuild --project {other} image -p "
    assert _complete(rpbuild, project, line) == ["solo"]


def test_show_completion_prints_a_script(rpbuild: RunCli) -> None:
    out = rpbuild("--show-completion", "bash")
    assert out.returncode == 0, out.stderr
    assert "_RPBUILD_COMPLETE=complete_bash" in out.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_quiet_and_verbose_work_after_every_command(
    rpbuild: RunCli, project: Path, name: str
) -> None:
    text = _help(rpbuild, COMMANDS[name], project)
    assert "-q, --quiet" in text and "-v, --verbose" in text


@pytest.mark.parametrize("name", RESULTS)
def test_every_command_with_a_result_takes_json(rpbuild: RunCli, project: Path, name: str) -> None:
    assert "--json" in _help(rpbuild, COMMANDS[name], project)


def test_json_documents_carry_a_format(rpbuild: RunCli, project: Path, tmp_path: Path) -> None:
    documents = {
        "profiles": ["profiles", "--json"],
        "profile": ["profiles", "show", "minimal", "--json"],
        "render": ["render", "--json", "-q"],
        "init": ["init", str(tmp_path / "new"), "--json"],
    }
    for kind, args in documents.items():
        out = rpbuild(*args, cwd=project)
        assert out.returncode == 0, out.stderr
        document = json.loads(out.stdout)
        assert next(iter(document)) == "format"
        assert document["format"] == f"rpbuild-{kind}/1"
        keys = _keys(document)
        assert all(re.fullmatch(r"[a-z0-9_]+", k) for k in keys), keys


def _keys(value: object) -> set[str]:
    """Every key in a document, except those that are data (labels, env, names)."""
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value)) if value else set()
    if not isinstance(value, dict):
        return set()
    keys: set[str] = set()
    for k, v in value.items():
        if k in ("labels", "env", "profiles"):
            keys |= set().union(*(_keys(x) for x in v.values())) if k == "profiles" else set()
            continue
        keys.add(k)
        keys |= _keys(v)
    return keys


@pytest.mark.parametrize(
    ("words", "choices"),
    [
        (["up"], "[4|6|dual]"),
        (["image"], "[docker|podman]"),
        (["image"], "[x86_64-linux|aarch64-linux]"),
        (["compose"], "[json|yaml]"),
    ],
)
def test_choices_are_shown_in_help(
    rpbuild: RunCli, project: Path, words: list[str], choices: str
) -> None:
    assert choices in _help(rpbuild, words, project).replace("<", "[").replace(">", "]")


@pytest.mark.docker
def test_down_says_what_it_stopped_as_json(rpbuild: RunCli, project: Path) -> None:
    out = rpbuild("down", "--name", "rpbuild-never-started", "--json", cwd=project)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {
        "format": "rpbuild-down/1",
        "name": "rpbuild-never-started",
        "stopped": False,
    }


def test_compose_writes_yaml_by_extension_or_format(rpbuild: RunCli, project: Path) -> None:
    out = project / "compose.yml"
    made = rpbuild("compose", "--ip", "4", "-o", str(out), cwd=project)
    assert made.returncode == 0, made.stderr
    text = out.read_text()
    assert text.startswith("services:") or "\nservices:" in text
    as_json = rpbuild("compose", "--ip", "4", "--format", "json", cwd=project)
    import yaml

    assert yaml.safe_load(text) == json.loads(as_json.stdout)
    # What compose itself reads: docker-compose 1.29 (.ci/setup installs it) takes it as it is.
    config = subprocess.run(
        ["docker-compose", "-f", str(out), "config", "-q"], capture_output=True, text=True
    )
    assert config.returncode == 0, config.stderr
