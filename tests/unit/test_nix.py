"""rpbuild.nix without running nix: argv per version, parsers, failure classification.

Samples in tests/data/nix were recorded from the real nix 2.8 (or, for newer nix,
written in the documented shapes; see tests/data/nix/README.md).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version

from rpbuild import nix
from rpbuild.errors import NixError, ToolMissing

DATA = Path(__file__).resolve().parent.parent / "data" / "nix"
V28, V218, V219, V233 = Version("2.8.0"), Version("2.18.1"), Version("2.19.0"), Version("2.33.0")
OFFLINE = nix.NixOptions(options=(("substituters", ""),))


def sample(name: str) -> str:
    return (DATA / name).read_text()


def flags_before(argv: list[str], word: str) -> list[str]:
    return argv[: argv.index(word)]


# -- version ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nix (Nix) 2.8.0\n", "2.8.0"),
        ("nix (Nix) 2.24.10", "2.24.10"),
        ("nix (Determinate Nix 3.6.2) 2.28.3\n", "2.28.3"),
        ("nix (Nix) 2.18.0pre20230908_e64eb9e\n", "2.18.0"),
        ("nix (Nix) 2.33.0\nSystem type: x86_64-linux\n", "2.33.0"),
        ("nix (Lix, like Nix) 2.91.1\n", "2.18"),  # Lix takes 2.18's flags
    ],
)
def test_parse_nix_version(text: str, expected: str) -> None:
    assert nix.parse_nix_version(text) == Version(expected)


@pytest.mark.parametrize("text", ["", "nix: command not found", "nix (Nix) unknown"])
def test_parse_nix_version_rejects_garbage(text: str) -> None:
    with pytest.raises(NixError, match="cannot read the nix version"):
        nix.parse_nix_version(text)


@pytest.fixture
def fresh_version_cache() -> Iterator[None]:
    nix.nix_version.cache_clear()
    yield
    nix.nix_version.cache_clear()


@pytest.mark.usefixtures("fresh_version_cache")
def test_nix_missing_is_tool_missing_with_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no nix
    with pytest.raises(ToolMissing) as info:
        nix.nix_version()
    assert "nix is not installed" in info.value.message
    assert info.value.hint is not None and "nix-bin" in info.value.hint
    # Every operation checks first, so none ends in a bare "command not found".
    with pytest.raises(ToolMissing):
        nix.eval_json("path:/x#y")


def fake_nix(bin_dir: Path, version: str) -> Path:
    """A `nix` that prints its version and counts its calls in bin_dir/calls."""
    exe = bin_dir / "nix"
    exe.write_text(f'#!/bin/sh\necho x >> "{bin_dir}/calls"\necho "nix (Nix) {version}"\n')
    exe.chmod(0o755)
    return exe


def calls(bin_dir: Path) -> int:
    log = bin_dir / "calls"
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The only directory on PATH, for a fake nix; the in-process version cache cleared."""
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    nix.nix_version.cache_clear()
    yield path
    nix.nix_version.cache_clear()


def test_nix_version_is_asked_once_per_binary(bin_dir: Path) -> None:
    exe = fake_nix(bin_dir, "2.24.10")
    assert nix.nix_version() == Version("2.24.10")
    nix.nix_version.cache_clear()  # a new rpbuild process
    assert nix.nix_version() == Version("2.24.10")
    assert calls(bin_dir) == 1
    # An upgrade replaces the binary: asked again, and the new answer is kept.
    exe.unlink()
    fake_nix(bin_dir, "2.33.0")
    nix.nix_version.cache_clear()
    assert nix.nix_version() == Version("2.33.0")
    nix.nix_version.cache_clear()
    assert nix.nix_version() == Version("2.33.0")
    assert calls(bin_dir) == 2


@pytest.mark.parametrize("content", ["", "{not json", '{"key": "%s", "value": "banana"}'])
def test_a_corrupt_version_cache_is_a_miss(bin_dir: Path, content: str) -> None:
    exe = fake_nix(bin_dir, "2.18.1")
    cache = nix._version_cache()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(content.replace("%s", nix._binary_identity(str(exe)) or ""))
    assert nix.nix_version() == Version("2.18.1")
    assert calls(bin_dir) == 1


def test_an_unwritable_version_cache_costs_only_time(
    bin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_nix(bin_dir, "2.8.0")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # cache dir cannot be created
    assert nix.nix_version() == Version("2.8.0")
    nix.nix_version.cache_clear()
    assert nix.nix_version() == Version("2.8.0")
    assert calls(bin_dir) == 2


# -- argv builders ---------------------------------------------------------------


def test_base_argv_orders_global_flags() -> None:
    opts = nix.NixOptions(
        options=(("substituters", ""), ("cores", "2")),
        builders="ssh://b x86_64-linux",
        offline=True,
    )
    assert nix.base_argv(opts) == [
        "nix", "--extra-experimental-features", "nix-command flakes",
        "--option", "substituters", "",
        "--option", "cores", "2",
        "--builders", "ssh://b x86_64-linux",
        "--offline",
    ]  # fmt: skip
    assert nix.base_argv() == ["nix", "--extra-experimental-features", "nix-command flakes"]


def test_build_argv() -> None:
    opts = nix.NixOptions(overrides=(("rosenpass", "path:/src/rp"),), options=(("cores", "1"),))
    argv = nix.build_argv(["path:/p#a", "path:/p#b"], opts, rebuild=True, extra=["--keep-going"])
    head = flags_before(argv, "build")
    assert head[:3] == ["nix", "--extra-experimental-features", "nix-command flakes"]
    assert head[3:6] == ["--option", "cores", "1"]
    # internal-json is a global flag; no -L (on 2.8 it turns the JSON log back into text)
    assert head[-2:] == ["--log-format", "internal-json"]
    assert "-L" not in argv and "--print-build-logs" not in argv
    # --json on every version: 2.8 has no --print-out-paths, and --json names the .drv
    assert "--print-out-paths" not in argv
    tail = argv[argv.index("build") + 1 :]
    for flag in ("--no-link", "--json", "--no-update-lock-file", "--rebuild", "--keep-going"):
        assert flag in tail
    i = tail.index("--override-input")
    assert tail[i : i + 3] == ["--override-input", "rosenpass", "path:/src/rp"]
    assert tail[-2:] == ["path:/p#a", "path:/p#b"]


def test_eval_and_metadata_argv_never_update_the_lock() -> None:
    opts = nix.NixOptions(overrides=(("nixpkgs", "path:/np"),))
    ev = nix.eval_argv("path:/p#x", opts)
    assert ev[ev.index("eval") :] == [
        "eval", "--json", "--no-update-lock-file", "--override-input", "nixpkgs", "path:/np",
        "path:/p#x",
    ]  # fmt: skip
    md = nix.flake_metadata_argv("path:/p", opts)
    assert md[md.index("flake") :] == [
        "flake", "metadata", "--json", "--no-update-lock-file",
        "--override-input", "nixpkgs", "path:/np", "path:/p",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("version", "format_flag"),
    [(V28, False), (V218, False), (V219, False), (Version("2.32.4"), False), (V233, True)],
)
def test_path_info_argv_per_version(version: Version, format_flag: bool) -> None:
    argv = nix.path_info_argv(["/nix/store/a-x"], version, recursive=True, closure_size=True)
    sub = argv[argv.index("path-info") :]
    assert sub[:2] == ["path-info", "--json"]
    assert ("--json-format" in sub) is format_flag
    if format_flag:
        assert sub[sub.index("--json-format") + 1] == "2"
    assert "--recursive" in sub and "--closure-size" in sub
    assert sub[-1] == "/nix/store/a-x"
    plain = nix.path_info_argv(["/nix/store/a-x"], version)
    assert "--recursive" not in plain and "--closure-size" not in plain


@pytest.mark.parametrize("version", [V28, V218])
def test_lock_update_argv_before_2_19_uses_update_input(version: Version) -> None:
    argv = nix.lock_update_argv(Path("/proj"), ["nixpkgs", "rosenpass"], version, OFFLINE)
    assert argv[argv.index("flake") :] == [
        "flake", "lock", "--update-input", "nixpkgs", "--update-input", "rosenpass", "path:/proj",
    ]  # fmt: skip
    assert argv[3:6] == ["--option", "substituters", ""]
    everything = nix.lock_update_argv(Path("/proj"), [], version)
    assert everything[everything.index("flake") :] == ["flake", "update", "path:/proj"]


@pytest.mark.parametrize("version", [V219, V233])
def test_lock_update_argv_from_2_19_uses_flake_update(version: Version) -> None:
    argv = nix.lock_update_argv(Path("/proj"), ["nixpkgs"], version)
    assert argv[argv.index("flake") :] == ["flake", "update", "--flake", "path:/proj", "nixpkgs"]
    assert "--update-input" not in argv
    everything = nix.lock_update_argv(Path("/proj"), [], version)
    assert everything[everything.index("flake") :] == ["flake", "update", "--flake", "path:/proj"]


def test_lock_update_argv_passes_overrides_to_pin_inputs() -> None:
    opts = nix.NixOptions(overrides=(("rosenpass", "path:/src/rp"),))
    for version in (V28, V233):
        argv = nix.lock_update_argv(Path("/proj"), ["rosenpass"], version, opts)
        i = argv.index("--override-input")
        assert argv[i : i + 3] == ["--override-input", "rosenpass", "path:/src/rp"]


def test_log_command_is_runnable_shell() -> None:
    drv = "/nix/store/5l45q0jagsfq3i7hzwj2cigw0jxl9rzb-rpbuild-fail.drv"
    cmd = nix.log_command(drv, OFFLINE)
    assert shlex.split(cmd) == [*nix.base_argv(OFFLINE), "log", drv]
    assert cmd.startswith("nix --extra-experimental-features 'nix-command flakes'")


# -- path-info -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["path-info-pre219.json", "path-info-219.json", "path-info-v2.json"]
)
def test_parse_path_info_formats(name: str) -> None:
    infos = nix.parse_path_info(sample(name))
    raw = json.loads(sample("path-info-pre219.json"))  # the recorded nix 2.8 truth
    assert set(infos) == {e["path"] for e in raw}
    for entry in raw:
        info = infos[entry["path"]]
        assert info.path == entry["path"]
        assert info.nar_size == entry["narSize"]
        assert info.closure_size == entry["closureSize"]
        assert info.references == tuple(sorted(entry["references"]))
        assert all(r.startswith("/nix/store/") for r in info.references)


def test_parse_path_info_formats_agree() -> None:
    parsed = [nix.parse_path_info(sample(f"path-info-{v}.json")) for v in ("pre219", "219", "v2")]
    assert parsed[0] == parsed[1] == parsed[2]
    app = next(i for p, i in parsed[0].items() if p.endswith("-rpbuild-app"))
    hello = next(p for p in parsed[0] if p.endswith("-rpbuild-hello"))
    assert app.references == (hello,)
    assert app.closure_size == app.nar_size + parsed[0][hello].nar_size


def test_parse_path_info_recorded_from_nix_2_26() -> None:
    """The 2.19+ object shape as nix 2.26 really prints it (Debian 13 root, record.sh)."""
    raw = json.loads(sample("2.26/path-info-219.json"))
    infos = nix.parse_path_info(sample("2.26/path-info-219.json"))
    assert set(infos) == set(raw)
    app = next(i for p, i in infos.items() if p.endswith("-rpbuild-app"))
    hello = next(p for p in infos if p.endswith("-rpbuild-hello"))
    assert app.references == (hello,)
    assert app.closure_size == app.nar_size + infos[hello].nar_size == raw[app.path]["closureSize"]


def test_parse_path_info_without_closure_size_and_json_format_1_metadata() -> None:
    text = json.dumps(
        {
            "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x": {
                "narSize": 10, "references": ["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"],
            },
            "storeDir": "/nix/store",  # 2.33 --json-format 1 adds these keys
            "version": 1,
        }
    )  # fmt: skip
    infos = nix.parse_path_info(text)
    [(path, info)] = infos.items()
    assert info.closure_size is None and info.nar_size == 10
    assert info.references == (path,)  # a self-reference is kept


@pytest.mark.parametrize(
    "text",
    [
        '[{"path":"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-gone","valid":false}]',
        '{"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-gone": null}',
        '{"version":2,"storeDir":"/nix/store","info":{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-gone":null}}',
    ],
)
def test_parse_path_info_invalid_path_is_named(text: str) -> None:
    with pytest.raises(NixError, match="aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-gone"):
        nix.parse_path_info(text)


def test_parse_path_info_v2_other_store_dir() -> None:
    info = {"h-x": {"narSize": 1, "references": ["h-y"]}}
    text = json.dumps({"version": 2, "storeDir": "/gnu/store", "info": info})
    assert nix.parse_path_info(text) == {
        "/gnu/store/h-x": nix.PathInfo("/gnu/store/h-x", 1, None, ("/gnu/store/h-y",))
    }


def test_parse_path_info_garbage() -> None:
    with pytest.raises(NixError, match="invalid JSON"):
        nix.parse_path_info("warning: something\n")


# -- build / metadata JSON ---------------------------------------------------------


def test_parse_build_json_real_2_8_output() -> None:
    text = (
        '[{"drvPath":"/nix/store/z55y8yf6lph9djx9f0sqdc2nvzk97mvb-rpbuild-dep.drv",'
        '"outputs":{"out":"/nix/store/i2hi25w7f8ralpm9c98nc6srqqfyi6yi-rpbuild-dep"}}]'
    )
    result = nix.parse_build_json(text, "path:.#dep")
    assert result.drv_path == "/nix/store/z55y8yf6lph9djx9f0sqdc2nvzk97mvb-rpbuild-dep.drv"
    assert result.out == "/nix/store/i2hi25w7f8ralpm9c98nc6srqqfyi6yi-rpbuild-dep"
    assert result.installable == "path:.#dep"


def test_parse_build_json_store_path_and_multiple_outputs() -> None:
    opaque = nix.parse_build_json('[{"path":"/nix/store/h-hello"}]')
    assert opaque.drv_path is None and opaque.outputs == {"out": "/nix/store/h-hello"}
    multi = nix.parse_build_json(
        '[{"drvPath":"/nix/store/d-x.drv","outputs":{"bin":"/nix/store/b-x-bin","dev":"/nix/store/d-x-dev"}}]'
    )
    assert multi.out == "/nix/store/b-x-bin"  # no `out`: the first output
    with pytest.raises(NixError, match="no result"):
        nix.parse_build_json("[]", "path:.#x")


def test_parse_flake_metadata_recorded() -> None:
    md = nix.parse_flake_metadata(sample("flake-metadata.json"))
    lock = json.loads((DATA.parent.parent.parent / "flake.lock").read_text())
    assert md.path.startswith("/nix/store/") and md.original_url == "path:."
    assert set(md.inputs) == set(lock["nodes"]["root"]["inputs"])
    for name, inp in md.inputs.items():
        locked = lock["nodes"][lock["nodes"]["root"]["inputs"][name]]["locked"]
        assert inp.rev == locked["rev"]
        assert inp.nar_hash == locked["narHash"]
        assert inp.last_modified == locked["lastModified"]
        assert inp.url == f"github:{locked['owner']}/{locked['repo']}/{locked['rev']}"


def test_parse_flake_metadata_follows_and_path_inputs() -> None:
    text = json.dumps(
        {
            "url": "path:/p?narHash=x",
            "locks": {
                "root": "root",
                "version": 7,
                "nodes": {
                    "root": {"inputs": {"rosenpass": "rp", "nixpkgs": ["rosenpass", "nixpkgs"]}},
                    "rp": {"inputs": {"nixpkgs": "np"},
                           "locked": {"type": "path", "path": "/src/rp", "narHash": "sha256-a"}},
                    "np": {"locked": {"type": "github", "owner": "NixOS", "repo": "nixpkgs",
                                      "rev": "abc", "lastModified": 5, "narHash": "sha256-b"}},
                },
            },
        }
    )  # fmt: skip
    md = nix.parse_flake_metadata(text)
    assert md.inputs["rosenpass"].url == "path:/src/rp" and md.inputs["rosenpass"].rev is None
    assert md.inputs["nixpkgs"].url == "github:NixOS/nixpkgs/abc"  # followed to node "np"
    assert md.inputs["nixpkgs"].last_modified == 5


# -- failure classification ------------------------------------------------------

BUILD_ARGV = nix.build_argv(["path:.#x"], OFFLINE)
EVAL_ARGV = nix.eval_argv("path:.#x", OFFLINE)


@pytest.mark.parametrize(
    ("name", "drv_suffix", "tail_lines"),
    [
        ("internal-json-build-fail.log", "-rpbuild-fail.drv", 25),  # nix 2.8, JSON log
        ("stderr-build-fail-plain.txt", "-rpbuild-fail.drv", 10),  # nix 2.8 quotes 10 lines
        ("2.26/internal-json-build-fail.log", "-rpbuild-fail.drv", 25),  # nix 2.26, live
        ("2.26/stderr-build-fail-plain.txt", "-rpbuild-fail.drv", 25),  # 2.26 quotes 25
    ],
)
def test_classify_build_failure(name: str, drv_suffix: str, tail_lines: int) -> None:
    err = nix.classify_failure(sample(name), BUILD_ARGV, 1, OFFLINE)
    assert isinstance(err, nix.BuildFailed)
    assert err.drv_path.startswith("/nix/store/") and err.drv_path.endswith(drv_suffix)
    assert "\n" not in err.message
    assert "rpbuild-fail" in err.message and "exit" in err.message and "3" in err.message
    tail = err.stderr_tail.splitlines()
    assert len(tail) == tail_lines
    assert tail[-1] == "boom" and tail[-2] == "log line 30"
    assert not any(line.startswith("@nix") or "\x1b" in line for line in tail)
    assert err.log_command == nix.log_command(err.drv_path, OFFLINE)
    assert err.hint is not None and err.log_command in err.hint
    assert err.returncode == 1 and err.argv == BUILD_ARGV


@pytest.mark.parametrize(
    "name", ["stderr-eval-profile-error.txt", "2.26/stderr-eval-profile-error.txt"]
)
def test_classify_profile_error(name: str) -> None:
    err = nix.classify_failure(sample(name), EVAL_ARGV, 1)
    assert isinstance(err, nix.ProfileEvalError)
    assert err.message == (
        "profile 'minimal', package 'gnugrepp': nixpkgs has no attribute 'gnugrepp'"
    )
    assert (err.kind, err.profile, err.package, err.source, err.attr) == (
        "missing-attribute", "minimal", "gnugrepp", "nixpkgs", "gnugrepp",
    )  # fmt: skip


def test_classify_profile_error_in_json_log() -> None:
    marker = json.dumps({"kind": "unsupported-system", "profile": "debug", "message": "no aarch64"})
    line = "@nix " + json.dumps(
        {"action": "msg", "level": 0, "msg": f"\x1b[31;1merror:\x1b[0m rpbuild-error:{marker}"}
    )
    err = nix.classify_failure(line + "\n", BUILD_ARGV, 1)
    assert isinstance(err, nix.ProfileEvalError)
    assert err.kind == "unsupported-system" and err.package is None
    assert err.message == "profile 'debug': no aarch64"


@pytest.mark.parametrize(
    ("name", "opts", "input_name", "shown"),
    [
        ("stderr-fetch-unlocked.txt", OFFLINE, "nixpkgs", "github:NixOS/nixpkgs"),
        ("stderr-fetch-locked.txt", OFFLINE, "rosenpass", "github:rosenpass/rosenpass"),
        ("2.26/stderr-fetch-unlocked.txt", OFFLINE, "nixpkgs", "github:NixOS/nixpkgs"),
        ("2.26/stderr-fetch-locked.txt", OFFLINE, "rosenpass", "github:rosenpass/rosenpass"),
        *(
            (
                name,
                nix.NixOptions(overrides=(("rosenpass", "path:/nonexistent/rosenpass"),)),
                "rosenpass",
                "/nonexistent/rosenpass",
            )
            for name in ("stderr-fetch-path.txt", "2.26/stderr-fetch-path.txt")
        ),
    ],
)
def test_classify_fetch_failure_names_the_input(
    name: str, opts: nix.NixOptions, input_name: str, shown: str
) -> None:
    err = nix.classify_failure(sample(name), EVAL_ARGV, 1, opts)
    assert isinstance(err, nix.FetchFailed)
    assert err.input_name == input_name
    assert f"flake input '{input_name}' (" in err.message and shown in err.message
    assert f"({shown}): " in err.message or f"{shown}): " in err.message  # a reason follows
    assert "\n" not in err.message and "retrying" not in err.message
    assert err.hint is not None and f"--override-input {input_name} path:" in err.hint
    if shown.startswith("/"):
        assert "network" not in err.hint  # a missing local path is no network problem


def test_offline_lock_updates_are_still_recognised_as_lock_updates() -> None:
    opts = nix.NixOptions(offline=True)
    argv = nix.lock_update_argv(Path("/p"), ["nixpkgs"], V28, opts)
    err = nix.classify_failure(sample("stderr-fetch-unlocked.txt"), argv, 1, opts)
    assert err.hint is not None and err.hint.startswith("updating the lock needs the network")


def test_a_lock_update_that_cannot_fetch_does_not_suggest_an_override() -> None:
    """`rpbuild lock update` has no --override-input: the hint says what it needs."""
    argv = nix.lock_update_argv(Path("/p"), ["nixpkgs"], V28, OFFLINE)
    err = nix.classify_failure(sample("stderr-fetch-unlocked.txt"), argv, 1, OFFLINE)
    assert isinstance(err, nix.FetchFailed) and err.input_name == "nixpkgs"
    assert err.hint == (
        "updating the lock needs the network: run it where github:NixOS/nixpkgs is reachable"
    )


def test_classify_fetch_failure_reason() -> None:
    err = nix.classify_failure(sample("stderr-fetch-locked.txt"), EVAL_ARGV, 1)
    assert err.message.endswith("Couldn't resolve host name (6)")
    new = nix.classify_failure(sample("2.26/stderr-fetch-locked.txt"), EVAL_ARGV, 1)
    assert new.message.endswith("Could not resolve host: github.com")  # no stray ")"


def test_classify_unknown_path_input() -> None:
    err = nix.classify_failure(sample("stderr-fetch-path.txt"), EVAL_ARGV, 1)
    assert isinstance(err, nix.FetchFailed) and err.input_name is None
    assert "/nonexistent/rosenpass" in err.message and "No such file" in err.message


def test_classify_binary_cache_download_is_not_an_input() -> None:
    stderr = (
        "error: unable to download 'https://cache.nixos.org/nar/0abc.nar.xz': "
        "Couldn't resolve host name (6)\n"
    )
    err = nix.classify_failure(stderr, BUILD_ARGV, 1)
    assert isinstance(err, nix.FetchFailed) and err.input_name is None
    assert "binary cache" in err.message
    assert err.hint is not None and "substituters" in err.hint


@pytest.mark.parametrize("name", ["stderr-lock-mismatch.txt", "2.26/stderr-lock-mismatch.txt"])
def test_classify_lock_mismatch(name: str) -> None:
    err = nix.classify_failure(sample(name), EVAL_ARGV, 1)
    assert isinstance(err, nix.LockMismatch)
    assert "flake.lock does not match flake.nix" in err.message
    assert err.hint == "run `rpbuild lock update`"
    other = (
        "error: cannot write modified lock file of flake 'github:x/y'"
        " (use '--no-write-lock-file' to ignore)"
    )
    assert isinstance(nix.classify_failure(other, EVAL_ARGV, 1), nix.LockMismatch)


def staged(directory: Path, text: str) -> list[str]:
    """A build argv whose flake (path:DIR) holds text as flake.nix."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "flake.nix").write_text(text)
    return ["nix", "build", f"path:{directory}#packages.x86_64-linux.minimal"]


SYNTAX_FLAKE = "{\n  outputs = { self }: {\n    x = 1 +;\n  };\n}\n"


@pytest.mark.parametrize("name", ["stderr-syntax-error.txt", "2.26/stderr-syntax-error.txt"])
def test_an_error_in_the_rendered_flake_is_named_by_line(tmp_path: Path, name: str) -> None:
    argv = staged(tmp_path, SYNTAX_FLAKE)
    err = nix.classify_failure(sample(name), argv, 1)
    assert err.message == "flake.nix:3:12: syntax error, unexpected ';'"
    assert err.hint is not None and "templates/flake.nix.j2" in err.hint
    inputs = "error: boom\n\n       at /nix/store/" + "a" * 32 + "-source/pkgs/x.nix:1:2:\n"
    assert nix.classify_failure(inputs, argv, 1).message == "nix build failed: boom"


@pytest.mark.parametrize("name", ["stderr-syntax-error.txt", "2.26/stderr-syntax-error.txt"])
def test_an_error_in_an_inputs_flake_nix_is_not_blamed_on_rpbuilds(
    tmp_path: Path, name: str
) -> None:
    """nix names every flake.nix by its store copy: the quoted line tells them apart."""
    argv = staged(tmp_path / "stage", "{}\n")
    other = nix.classify_failure(sample(name), argv, 1)
    assert other.message == "a flake input: flake.nix:3:12: syntax error, unexpected ';'"
    checkout = tmp_path / "rp"
    staged(checkout, SYNTAX_FLAKE)
    opts = nix.NixOptions(overrides=(("rosenpass", f"path:{checkout}"),))
    named = nix.classify_failure(sample(name), argv, 1, opts)
    assert named.message == (
        f"--override-input rosenpass path:{checkout}: flake.nix:3:12: syntax error, unexpected ';'"
    )


@pytest.mark.parametrize(
    ("url", "stderr"),
    [
        ("github:", "error: URL 'github:' is invalid\n"),
        (
            "git+file:///nonexist",
            "fatal: '/nonexist' does not appear to be a git repository\n"
            "error: program 'git' failed with exit code 128\n",
        ),
    ],
)
def test_an_error_about_an_override_names_the_option(url: str, stderr: str) -> None:
    opts = nix.NixOptions(overrides=(("rosenpass", url),))
    err = nix.classify_failure(stderr, BUILD_ARGV, 1, opts)
    assert err.message.startswith(f"--override-input rosenpass {url}: ")


def test_an_override_echoed_elsewhere_is_not_blamed() -> None:
    """verify's 'may not be deterministic' was prefixed with the nixpkgs override."""
    opts = nix.NixOptions(overrides=(("nixpkgs", "path:/src/nixpkgs"),))
    stderr = (
        "warning: not writing modified lock file of flake 'path:/p':\n"
        "  → 'path:/src/nixpkgs?narHash=sha256-x' (2026-11-26)\n"
        "error: derivation '/nix/store/x.drv' may not be deterministic: output differs\n"
    )
    err = nix.classify_failure(stderr, BUILD_ARGV, 1, opts)
    assert err.message.startswith("nix build failed: derivation")


def test_classify_generic_takes_the_last_error_line(tmp_path: Path) -> None:
    flake = "\n" * 19 + "      packages = rosenpass.packages.${system};\n"
    err = nix.classify_failure(sample("stderr-eval-generic.txt"), staged(tmp_path, flake), 1)
    assert type(err) is NixError
    # The error is in the flake being evaluated (rpbuild's staged flake.nix): by line.
    assert err.message == "flake.nix:20:18: attribute 'x86_64-darwin' missing"
    assert err.hint is not None and "templates/flake.nix.j2" in err.hint
    assert "--show-trace" not in err.stderr_tail and "is dirty" not in err.stderr_tail
    nested = "error:\n       … while evaluating x\n\n       error: infinite recursion encountered\n"
    assert nix.classify_failure(nested, EVAL_ARGV, 1).message.endswith(
        "infinite recursion encountered"
    )
    meta = nix.flake_metadata_argv("path:.")
    assert nix.classify_failure("", meta, 7).message == "nix flake metadata failed: exit code 7"


@given(st.text())
def test_classify_always_gives_one_line(stderr: str) -> None:
    err = nix.classify_failure(stderr, EVAL_ARGV, 1)
    assert isinstance(err, NixError)
    assert "\n" not in err.message and "\r" not in err.message and err.message


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("github:rosenpass/rosenpass", "rosenpass"),
        ("github:NixOS/nixpkgs/nixos-unstable", "nixpkgs"),
        ("https://api.github.com/repos/NixOS/nixpkgs/commits/nixos-unstable", "nixpkgs"),
        ("https://api.github.com/repos/rosenpass/rosenpass/tarball/62aa9b43", "rosenpass"),
        ("https://github.com/rosenpass/rosenpass/archive/62aa9b43.tar.gz", "rosenpass"),
        ("git+https://github.com/rosenpass/rosenpass.git?ref=main", "rosenpass"),
        ("gitlab:foo/bar", "bar"),
        ("https://example.org/x.tar.gz", None),
        ("/src/somewhere", None),
    ],
)
def test_input_name_for(url: str, name: str | None) -> None:
    assert nix.input_name_for(url) == name


def test_input_name_for_prefers_overrides() -> None:
    opts = nix.NixOptions(overrides=(("rp", "path:/src/rosenpass"),))
    assert nix.input_name_for("/src/rosenpass", opts) == "rp"
    assert nix.input_name_for("path:/src/rosenpass", opts) == "rp"
    assert nix.input_name_for("/src/other", opts) is None


def test_a_forge_override_names_its_input_not_its_repository() -> None:
    """nix reports github:foo/bar as an API URL; the input is rosenpass, not 'bar'."""
    opts = nix.NixOptions(overrides=(("rosenpass", "github:foo/bar"),))
    url = "https://api.github.com/repos/foo/bar/commits/HEAD"
    assert nix.input_name_for(url, opts) == "rosenpass"
    assert nix.input_name_for("https://github.com/Foo/bar.git", opts) == "rosenpass"
    assert nix.input_name_for("https://github.com/foo/other", opts) == "other"


def test_profile_error_message_unknown_kind() -> None:
    msg = nix.profile_error_message({"kind": "bad-port", "profile": "minimal", "port": 70000})
    assert msg == "profile 'minimal': bad-port (port=70000)"


def test_build_argv_uses_print_out_paths_from_2_9() -> None:
    old = nix.build_argv(["path:.#x"], OFFLINE, version=Version("2.8.0"))
    new = nix.build_argv(["path:.#x"], OFFLINE, version=Version("2.9.0"))
    assert "--json" in old and "--print-out-paths" not in old
    assert "--print-out-paths" in new and "--json" not in new


def test_parse_out_paths() -> None:
    out = "/nix/store/" + "a" * 32 + "-stream-rosenpass\n"
    result = nix.parse_out_paths(out, "path:.#x")
    assert result.outputs == {"out": "/nix/store/" + "a" * 32 + "-stream-rosenpass"}
    with pytest.raises(NixError):
        nix.parse_out_paths("", "path:.#x")
