"""Property tests: malformed profiles, locks and state files never crash rpbuild.

For each generated input the contract holds: an exit status from the documented set,
exactly one error line on stderr and nothing that is not rpbuild's own, no traceback, and
nothing half-written (flake.nix unchanged when the input was refused; the state file never
touched). rpbuild runs as a user runs it, in a subprocess, with neither nix nor an engine
on PATH: an input that passes every check ends in "docker is not installed" (exit 3)
before anything is built. RPBUILD_HYPOTHESIS_EXAMPLES raises the number of examples.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpbuild.fsutil import read_cache
from rpbuild.state import load_state
from tests.conftest import REPO, Run

EXAMPLES = int(os.environ.get("RPBUILD_HYPOTHESIS_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # CI sees the same examples every run; raise EXAMPLES to search
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: errors.py: 2 a user's mistake, 3 a tool missing (here: every check passed).
EXIT_REFUSED, EXIT_TOOL_MISSING = 2, 3

STATE = json.dumps(
    {
        "format": "rpbuild-state/1",
        "images": {
            "docker/x86_64-linux/rosenpass:minimal": {
                "profile": "minimal",
                "system": "x86_64-linux",
                "engine": "docker",
                "reference": "rosenpass:minimal",
                "fingerprint": "0" * 64,
                "image_id": "sha256:" + "1" * 64,
                "out_path": "/nix/store/" + "a" * 32 + "-stream-rosenpass",
                "size": 1234,
                "built_at": "2024-01-01T00:00:00Z",
            }
        },
    },
    indent=2,
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with flake.nix rendered and a state file, copied for every example."""
    root = tmp_path_factory.mktemp("fuzz") / "project"
    root.mkdir()
    for name in ("profiles", "templates"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy2(REPO / "flake.lock", root / "flake.lock")
    (root / ".rpbuild").mkdir()
    (root / ".rpbuild" / "state.json").write_text(STATE)
    run = rpbuild_in(root, "render")
    assert run.returncode == 0, run.stderr
    return root


@pytest.fixture(scope="module")
def empty_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("no-tools"))


def rpbuild_in(root: Path, *args: str, path: str = "/nonexistent") -> Run:
    env = {
        **os.environ,
        "PATH": path,
        "XDG_STATE_HOME": str(root.parent / "xdg-state"),
        "XDG_CACHE_HOME": str(root.parent / "xdg-cache"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "rpbuild", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def fresh(template: Path) -> Iterator[Any]:
    """A factory of fresh copies of the template (one per hypothesis example)."""
    with tempfile.TemporaryDirectory(prefix="rpbuild-fuzz-") as tmp:
        count = iter(range(10**9))

        def copy() -> Path:
            root = Path(tmp) / str(next(count)) / "project"
            shutil.copytree(template, root, symlinks=True)
            return root

        yield copy


def assert_contract(root: Path, run: Run, template: Path) -> None:
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode in (EXIT_REFUSED, EXIT_TOOL_MISSING), run
    lines = run.stderr.splitlines()
    errors = [ln for ln in lines if ln.startswith("rpbuild: error: ")]
    assert len(errors) == 1, run.stderr
    if run.returncode == EXIT_REFUSED:  # refused: the error (and its hint) alone
        assert all(ln.startswith(("rpbuild: error: ", "rpbuild: hint: ")) for ln in lines), lines
        assert (root / "flake.nix").read_bytes() == (template / "flake.nix").read_bytes()
    # Nothing was built or loaded: the state is as it was, and no temporary file is left.
    assert (root / ".rpbuild" / "state.json").read_text() == STATE
    assert not [p for p in root.rglob("*.tmp")], list(root.rglob("*.tmp"))


# -- generators -----------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def toml_value(value: Any) -> str:
    """A JSON-like value as a TOML inline value (null has no TOML form: a string)."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


PROFILE_KEYS = ["description", "extends", "budget", "image", "package", "name", "x"]
IMAGE_KEYS = ["name", "tag", "entrypoint", "cmd", "env", "labels", "created", "max_layers"]


@st.composite
def broken_profiles(draw: st.DrawFn) -> bytes:
    """minimal.toml with one thing broken: a value of another type or shape, a byte edit,
    a truncation, a deep nesting or a date that does not exist."""
    text = (REPO / "profiles" / "minimal.toml").read_bytes()
    kind = draw(st.sampled_from(["top", "image", "bytes", "truncate", "deep", "created"]))
    if kind == "top":
        key = draw(st.sampled_from(PROFILE_KEYS))
        body = text.decode().replace(f"\n{key} =", f"\nold_{key} =")
        return f"{key} = {toml_value(draw(json_values))}\n{body}".encode()
    if kind == "image":
        key = draw(st.sampled_from(IMAGE_KEYS))
        value = toml_value(draw(json_values))
        lines = [ln for ln in text.decode().splitlines() if not ln.startswith(f"{key} =")]
        at = lines.index("[image]") + 1
        return "\n".join([*lines[:at], f"{key} = {value}", *lines[at:]]).encode() + b"\n"
    if kind == "bytes":
        at = draw(st.integers(0, len(text)))
        junk = draw(st.binary(min_size=1, max_size=8))
        return text[:at] + junk + text[at + draw(st.integers(0, 4)) :]
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text) - 1))]
    if kind == "deep":
        depth = draw(st.integers(200, 20_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ("{a=", "}")]))
        inner = "1"
        return f"x = {opener * depth}{inner}{closer * depth}\n".encode() + text
    year = draw(st.integers(0, 9999))
    month = draw(st.integers(0, 99))
    day = draw(st.integers(0, 99))
    hms = draw(st.sampled_from(["00:00:00", "24:00:00", "23:59:60", "12:61:00"]))
    stamp = f"{year:04d}-{month:02d}-{day:02d}T{hms}Z"
    return text.replace(b"[image]", f'[image]\ncreated = "{stamp}"'.encode(), 1)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _mutated(draw: st.DrawFn, doc: Any, kind: str) -> bytes:
    """doc with one value somewhere in it removed or replaced by an arbitrary one."""
    path = draw(st.sampled_from(list(_paths(doc))[1:]))
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if kind == "remove":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return json.dumps(doc).encode()


@st.composite
def broken_locks(draw: st.DrawFn) -> bytes:
    """flake.lock with one part replaced, removed, byte-edited or nested too deeply."""
    raw = (REPO / "flake.lock").read_bytes()
    lock = json.loads(raw)
    kind = draw(st.sampled_from(["replace", "remove", "bytes", "deep"]))
    if kind == "bytes":
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at + 1 :]
    if kind == "deep":
        depth = draw(st.integers(200, 50_000))
        where = draw(st.sampled_from(["top", "inputs"]))
        deep = json.dumps(lock).replace(
            '"version": 7', '"version": 7, "x": ' + "[" * depth + "]" * depth
        )
        if where == "inputs":
            deep = json.dumps(lock).replace(
                '"inputs": {', '"inputs": {"deep": ' + "[" * depth + "]" * depth + ", ", 1
            )
        return deep.encode()
    return _mutated(draw, lock, kind)


# -- properties -------------------------------------------------------------------------


@FUZZ
@given(profile=broken_profiles())
def test_a_broken_profile_is_one_line_and_writes_nothing(
    fresh: Any, template: Path, profile: bytes
) -> None:
    root = fresh()
    (root / "profiles" / "minimal.toml").write_bytes(profile)
    run = rpbuild_in(root, "image", "--profile", "minimal")
    assert_contract(root, run, template)
    if run.returncode == EXIT_REFUSED:
        assert "minimal.toml" in run.stderr or "profile" in run.stderr, run.stderr


@FUZZ
@given(lock=broken_locks())
def test_a_broken_lock_is_one_line_and_writes_nothing(
    fresh: Any, template: Path, lock: bytes
) -> None:
    root = fresh()
    (root / "flake.lock").write_bytes(lock)
    run = rpbuild_in(root, "image", "--profile", "minimal")
    assert_contract(root, run, template)
    if run.returncode == EXIT_REFUSED:
        assert "flake.lock" in run.stderr, run.stderr


def _state_variants(draw: st.DrawFn) -> bytes:
    doc = json.loads(STATE)
    kind = draw(st.sampled_from(["replace", "remove", "bytes", "deep", "any"]))
    if kind == "any":
        return json.dumps(draw(json_values)).encode()
    if kind == "bytes":
        raw = STATE.encode()
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at + 1 :]
    if kind == "deep":
        depth = draw(st.integers(200, 50_000))
        return (
            '{"format": "rpbuild-state/1", "images": ' + "[" * depth + "]" * depth + "}"
        ).encode()
    return _mutated(draw, doc, kind)


broken_states = st.composite(_state_variants)()


@FUZZ
@given(data=broken_states)
def test_a_broken_state_or_cache_is_a_warning_never_an_error(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("state") / "state.json"
    path.write_bytes(data)
    state, warning = load_state(path)
    if warning is None:  # what loads is what rpbuild wrote: records of the right shape
        for key, rec in state.images.items():
            assert isinstance(key, str) and isinstance(rec.size, int)
            assert all(
                isinstance(getattr(rec, f), str) for f in ("profile", "reference", "image_id")
            )
    else:
        assert state.images == {} and "\n" not in warning and str(path) in warning
    read_cache(path, "k")  # a miss or a value, never an exception
    assert path.read_bytes() == data
