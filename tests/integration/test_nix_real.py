"""rpbuild.nix against the real nix: tiny flakes in tmp_path, no network, no mocks.

Every flake builds with builder /bin/sh and no substituters, so nothing is fetched;
a salt makes each test run build fresh derivations instead of reusing old outputs.
"""

from __future__ import annotations

import json
import platform
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from packaging.version import Version

from rpbuild import nix
from rpbuild.errors import NixError
from rpbuild.progress import BuildProgress

pytestmark = [
    pytest.mark.nix,
    pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed"),
    pytest.mark.skipif(platform.machine() != "x86_64", reason="test flakes are x86_64-linux"),
]

REPO = Path(__file__).resolve().parent.parent.parent
# download-attempts 1: an unreachable host fails at once instead of after 4 retries.
OPTS = nix.NixOptions(options=(("substituters", ""), ("download-attempts", "1")))

FLAKE = """
{
  outputs = { self }: let
    mk = name: script: builtins.derivation {
      inherit name; system = "x86_64-linux"; builder = "/bin/sh";
      args = [ "-c" script ]; salt = "@SALT@";
    };
  in {
    packages.x86_64-linux = {
      hello = mk "rpbuild-hello" "echo line one; echo line two >&2; echo hi > $out";
      app = mk "rpbuild-app" "echo linking; echo ${self.packages.x86_64-linux.hello} > $out";
      fail = mk "rpbuild-fail" ''
        echo starting
        i=1; while [ $i -le 30 ]; do echo log line $i; i=$((i+1)); done
        echo boom >&2; exit 3
      '';
    };
    value = { answer = 42; names = [ "a" "b" ]; };
    bad = throw ("rpbuild-error:" + builtins.toJSON {
      kind = "missing-attribute"; profile = "minimal"; package = "gnugrepp";
      source = "nixpkgs"; attr = "gnugrepp";
    });
  };
}
"""


def write_flake(directory: Path, text: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "flake.nix").write_text(text)
    return f"path:{directory}"


@pytest.fixture
def demo(tmp_path: Path) -> str:
    return write_flake(tmp_path / "demo", FLAKE.replace("@SALT@", uuid.uuid4().hex))


def raw_nix(*args: str) -> subprocess.CompletedProcess[str]:
    """nix itself, as the oracle the wrapper is checked against."""
    return subprocess.run(
        [*nix.base_argv(OPTS), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_nix_version_is_the_installed_one() -> None:
    out = subprocess.run(["nix", "--version"], capture_output=True, text=True, check=True).stdout
    version = nix.nix_version()
    assert str(version) in out or version.base_version in out
    assert version >= Version("2.8")


def test_build_returns_outputs_in_installable_order(demo: str) -> None:
    progress = BuildProgress()
    results = nix.build([f"{demo}#app", f"{demo}#hello"], OPTS, on_log=progress.feed)
    app, hello = results
    assert app.installable == f"{demo}#app" and hello.installable == f"{demo}#hello"
    assert app.out.endswith("-rpbuild-app") and hello.out.endswith("-rpbuild-hello")
    if nix.nix_version() < Version("2.9"):  # --json: the derivation comes along
        assert app.drv_path is not None and app.drv_path.endswith("-rpbuild-app.drv")
        assert Path(app.drv_path).is_file()
    else:  # --print-out-paths prints outputs only (checked live in the Debian 13 root)
        assert app.drv_path is None and hello.drv_path is None
    assert Path(hello.out).read_text() == "hi\n"
    assert Path(app.out).read_text() == hello.out + "\n"
    # the internal-json log really reached on_log and was decoded
    assert progress.builds_done >= 1 and progress.errors == []
    assert "rpbuild-hello> line one" in progress.log_tail
    assert "rpbuild-hello> line two" in progress.log_tail  # the builder's stderr too
    # nothing was linked into the working directory
    assert not Path("result").exists()

    again = nix.build([f"{demo}#hello", f"{demo}#app"], OPTS)
    assert [r.out for r in again] == [hello.out, app.out]


def test_path_info_agrees_with_raw_nix(demo: str) -> None:
    [app] = nix.build([f"{demo}#app"], OPTS)
    infos = nix.path_info([app.out], OPTS, recursive=True, closure_size=True)

    raw = raw_nix("path-info", "--json", "-rS", app.out)
    assert raw.returncode == 0, raw.stderr
    expected = nix.parse_path_info(raw.stdout)
    assert infos == expected
    hello = next(p for p in infos if p.endswith("-rpbuild-hello"))
    assert set(infos) == {app.out, hello}
    assert infos[app.out].references == (hello,)
    assert infos[app.out].closure_size == infos[app.out].nar_size + infos[hello].nar_size
    assert infos[app.out].closure_size == max(e["closureSize"] for e in _raw_entries(raw.stdout))

    only = nix.path_info([app.out], OPTS)
    assert set(only) == {app.out} and only[app.out].closure_size is None


def _raw_entries(text: str) -> list[dict[str, int]]:
    data = json.loads(text)
    return data if isinstance(data, list) else list(data.values())


def test_path_info_of_missing_path_names_it() -> None:
    missing = "/nix/store/" + "a" * 32 + "-rpbuild-not-there"
    with pytest.raises(NixError, match="rpbuild-not-there"):
        nix.path_info([missing], OPTS)


def test_failed_build_carries_log_tail_and_log_command(demo: str) -> None:
    with pytest.raises(nix.BuildFailed) as info:
        nix.build([f"{demo}#fail"], OPTS)
    err = info.value
    assert err.drv_path.endswith("-rpbuild-fail.drv")
    assert "\n" not in err.message and "rpbuild-fail" in err.message and "3" in err.message
    expected = [f"log line {i}" for i in range(7, 31)] + ["boom"]
    assert err.stderr_tail.splitlines() == expected
    assert err.hint is not None and err.log_command in err.hint
    # the command we tell the user to run really shows the full log
    shown = subprocess.run(
        shlex.split(err.log_command), capture_output=True, text=True, timeout=60, check=False
    )
    assert shown.returncode == 0, shown.stderr
    assert "log line 1\n" in shown.stdout and "log line 30" in shown.stdout


def test_eval_json(demo: str) -> None:
    assert nix.eval_json(f"{demo}#value", OPTS) == {"answer": 42, "names": ["a", "b"]}


def test_profile_error_marker_from_real_eval(demo: str) -> None:
    with pytest.raises(nix.ProfileEvalError) as info:
        nix.eval_json(f"{demo}#bad", OPTS)
    err = info.value
    assert err.message == (
        "profile 'minimal', package 'gnugrepp': nixpkgs has no attribute 'gnugrepp'"
    )
    assert (err.kind, err.profile, err.package, err.attr) == (
        "missing-attribute", "minimal", "gnugrepp", "gnugrepp",
    )  # fmt: skip


GITHUB_FLAKE = """
{
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  inputs.rosenpass.url = "github:rosenpass/rosenpass";
  outputs = { self, nixpkgs, rosenpass }: {
    n = builtins.length (builtins.attrNames rosenpass.packages);
  };
}
"""


@pytest.mark.parametrize("locked", [False, True], ids=["unlocked", "locked"])
def test_unreachable_github_input_is_named(tmp_path: Path, locked: bool) -> None:
    ref = write_flake(tmp_path / "gh", GITHUB_FLAKE)
    if locked:  # rpbuild's own lock: the exact tarball of the pinned rosenpass rev
        shutil.copy(REPO / "flake.lock", tmp_path / "gh" / "flake.lock")
    with pytest.raises(nix.FetchFailed) as info:
        nix.eval_json(f"{ref}#n", OPTS)
    err = info.value
    expected = "rosenpass" if locked else "nixpkgs"  # unlocked: nix resolves nixpkgs first
    assert err.input_name == expected
    assert f"cannot fetch flake input '{expected}'" in err.message
    assert "\n" not in err.message
    assert err.hint is not None and f"--override-input {expected} path:" in err.hint


def test_override_to_missing_path_is_named(tmp_path: Path) -> None:
    ref = write_flake(tmp_path / "gh", GITHUB_FLAKE)
    shutil.copy(REPO / "flake.lock", tmp_path / "gh" / "flake.lock")
    opts = nix.NixOptions(
        overrides=(("rosenpass", f"path:{tmp_path / 'nowhere'}"),), options=OPTS.options
    )
    with pytest.raises(nix.FetchFailed) as info:
        nix.eval_json(f"{ref}#n", opts)
    assert info.value.input_name == "rosenpass"
    assert str(tmp_path / "nowhere") in info.value.message


def test_override_input_builds_offline(tmp_path: Path) -> None:
    ref = write_flake(tmp_path / "gh", GITHUB_FLAKE)
    shutil.copy(REPO / "flake.lock", tmp_path / "gh" / "flake.lock")
    write_flake(tmp_path / "rp", "{ outputs = { self }: { packages = { a = 1; b = 2; }; }; }")
    write_flake(tmp_path / "np", "{ outputs = { self }: { }; }")
    opts = nix.NixOptions(
        overrides=(
            ("rosenpass", f"path:{tmp_path / 'rp'}"),
            ("nixpkgs", f"path:{tmp_path / 'np'}"),
        ),
        options=OPTS.options,
    )
    assert nix.eval_json(f"{ref}#n", opts) == 2
    # an override never rewrites the lock
    assert (tmp_path / "gh" / "flake.lock").read_text() == (REPO / "flake.lock").read_text()


def test_flake_metadata_and_lock_update(tmp_path: Path) -> None:
    write_flake(tmp_path / "dep", "{ outputs = { self }: { v = 1; }; }")
    top = tmp_path / "top"
    ref = write_flake(
        top,
        f'{{ inputs.dep.url = "path:{tmp_path / "dep"}";'
        " outputs = { self, dep }: { v = dep.v; }; }",
    )
    nix.lock_update(top, [], OPTS)  # creates the lock
    before = nix.flake_metadata(ref, OPTS)
    dep = before.inputs["dep"]
    assert dep.type == "path" and dep.url == f"path:{tmp_path / 'dep'}"
    assert dep.nar_hash is not None and dep.nar_hash.startswith("sha256-")
    assert before.path.startswith("/nix/store/")
    assert json.loads((top / "flake.lock").read_text())["nodes"]["dep"]["locked"]["narHash"] == (
        dep.nar_hash
    )

    (tmp_path / "dep" / "flake.nix").write_text("{ outputs = { self }: { v = 2; }; }")
    assert nix.eval_json(f"{ref}#v", OPTS) == 1  # still the locked copy
    nix.lock_update(top, ["dep"], OPTS)
    after = nix.flake_metadata(ref, OPTS)
    assert after.inputs["dep"].nar_hash != dep.nar_hash
    assert nix.eval_json(f"{ref}#v", OPTS) == 2


def test_lock_mismatch(tmp_path: Path) -> None:
    write_flake(tmp_path / "dep", "{ outputs = { self }: { v = 1; }; }")
    top = tmp_path / "top"
    ref = write_flake(top, "{ outputs = { self }: { v = 0; }; }")
    nix.lock_update(top, [], OPTS)
    (top / "flake.nix").write_text(
        f'{{ inputs.dep.url = "path:{tmp_path / "dep"}";'
        " outputs = { self, dep }: { v = dep.v; }; }"
    )
    with pytest.raises(nix.LockMismatch) as info:
        nix.eval_json(f"{ref}#v", OPTS)
    assert "flake.lock does not match flake.nix" in info.value.message
    assert info.value.hint == "run `rpbuild lock update`"
