"""`rpbuild sizes` against the real nix, on stand-in packages of known sizes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    STANDIN,
    STANDIN_OVERRIDES,
    RunCli,
    standin_overrides,
    use_rosenpass_source,
)

pytestmark = pytest.mark.nix

NIX = ["nix", "--extra-experimental-features", "nix-command flakes"]


def sizes(
    rpbuild: RunCli, project: Path, *args: str, overrides: list[str] | None = None
) -> dict[str, Any]:
    result = rpbuild("sizes", "--json", *args, *(overrides or STANDIN_OVERRIDES), cwd=project)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def path_info(*paths: str, recursive: bool = False) -> list[dict[str, Any]]:
    argv = [*NIX, "path-info", "--json", "-S", *(["-r"] if recursive else []), *paths]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    # nix 2.8 prints a list; later versions an object keyed by path
    return data if isinstance(data, list) else [{"path": k, **v} for k, v in data.items()]


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in report["profiles"]}


def test_numbers_equal_what_nix_path_info_reports(rpbuild: RunCli, project: Path) -> None:
    report = sizes(rpbuild, project)
    profiles = by_name(report)
    assert sorted(profiles) == ["debug", "minimal", "with-wireguard"]
    for profile in profiles.values():
        roots = [pkg["path"] for pkg in profile["packages"]]
        infos = {i["path"]: i for i in path_info(*roots)}
        for pkg in profile["packages"]:
            info = infos[pkg["path"]]
            assert pkg["nar_size"] == info["narSize"]
            assert pkg["closure_size"] == info["closureSize"]
        union = path_info(*roots, recursive=True)
        assert profile["closure_size"] == sum(i["narSize"] for i in union)


def test_known_payload_sizes_and_the_shared_glibc(rpbuild: RunCli, project: Path) -> None:
    payloads = json.loads(
        subprocess.run(
            [
                *NIX,
                "eval",
                "--json",
                f"path:{STANDIN / 'nixpkgs'}#legacyPackages.x86_64-linux.standinPayloadSizes",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    minimal = by_name(sizes(rpbuild, project, "--profile", "minimal"))["minimal"]
    pkgs = {p["name"]: p for p in minimal["packages"]}
    # A package's own NAR holds its payload file plus a little metadata.
    for name in ("coreutils-full", "gnugrep", "iproute2", "iana-etc"):
        assert payloads[name] < pkgs[name]["nar_size"] < payloads[name] + 64 * 1024, name
    # Diamond: glibc (1 MiB payload) and busybox are shared by several packages, so
    # neither gnugrep nor iproute2 adds them: each adds exactly its own NAR.
    for name in ("gnugrep", "iproute2", "coreutils-full"):
        assert pkgs[name]["added_size"] == pkgs[name]["nar_size"], name
        assert pkgs[name]["closure_size"] > pkgs[name]["nar_size"] + payloads["glibc"], name
    shared = minimal["closure_size"] - sum(p["added_size"] for p in minimal["packages"])
    assert shared > payloads["glibc"]


def test_parent_delta_and_markdown(rpbuild: RunCli, project: Path) -> None:
    profiles = by_name(sizes(rpbuild, project))
    ww = profiles["with-wireguard"]
    assert ww["parent_delta"] == ww["closure_size"] - profiles["minimal"]["closure_size"]
    assert set(ww["added_packages"]) == {"wireguard-tools", "wireguard-go", "procps", "iputils"}
    md = rpbuild(
        "sizes", "--markdown", "--profile", "with-wireguard", *STANDIN_OVERRIDES, cwd=project
    )
    assert md.returncode == 0, md.stderr
    assert "| `wireguard-tools` |" in md.stdout
    table = rpbuild(
        "sizes", "--profile", "minimal", *STANDIN_OVERRIDES, cwd=project, env={"COLUMNS": "120"}
    )
    assert table.returncode == 0 and "iproute2" in table.stdout and "█" in table.stdout


def test_check_fails_over_budget_naming_the_largest(rpbuild: RunCli, project: Path) -> None:
    ok = rpbuild("sizes", "--check", "--profile", "minimal", *STANDIN_OVERRIDES, cwd=project)
    assert ok.returncode == 0, ok.stderr
    minimal = project / "profiles" / "minimal.toml"
    minimal.write_text(minimal.read_text().replace('budget = "110 MiB"', 'budget = "1 MiB"'))
    over = rpbuild("sizes", "--check", "--profile", "minimal", *STANDIN_OVERRIDES, cwd=project)
    assert over.returncode == 1
    [line] = [ln for ln in over.stderr.splitlines() if ln.startswith("rpbuild: error:")]
    assert (
        "profile 'minimal' is" in line and "over its budget" in line and "> 1024.0 KiB" in line
    )  # nix path-info -Sh prints 1 MiB as 1024.0K
    assert "largest added: rosenpass" in line
    assert line.count(" KiB") + line.count(" MiB") >= 4  # actual, budget and three packages


def test_compare_shows_an_added_package(rpbuild: RunCli, project: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps(sizes(rpbuild, project, "--profile", "minimal")))
    minimal = project / "profiles" / "minimal.toml"
    minimal.write_text(
        minimal.read_text() + '\n[[package]]\nname = "busybox"\ndescription = "d"\nreason = "r"\n'
    )
    result = rpbuild(
        "sizes",
        "--compare",
        str(old),
        "--profile",
        "minimal",
        *STANDIN_OVERRIDES,
        cwd=project,
        env={"COLUMNS": "160"},
    )
    assert result.returncode == 0, result.stderr
    assert "busybox" in result.stdout and "appeared" in result.stdout.lower()
    md = rpbuild(
        "sizes",
        "--markdown",
        "--compare",
        str(old),
        "--profile",
        "minimal",
        *STANDIN_OVERRIDES,
        cwd=project,
    )
    assert "busybox" in md.stdout

    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "rpbuild-sizes/1"}')
    bad = rpbuild("sizes", "--compare", str(broken), *STANDIN_OVERRIDES, cwd=project)
    assert bad.returncode == 2
    assert bad.stderr.startswith(f"rpbuild: error: {broken}: ")
    assert len(bad.stderr.splitlines()) == 1

    # A report of another system would diff every package: refused, naming the fix.
    other = tmp_path / "aarch64.json"
    other.write_text(
        old.read_text().replace('"system": "x86_64-linux"', '"system": "aarch64-linux"')
    )
    cross = rpbuild("sizes", "--compare", str(other), *STANDIN_OVERRIDES, cwd=project)
    assert cross.returncode == 2
    assert cross.stderr == (
        f"rpbuild: error: {other}: a report for aarch64-linux, this run measures x86_64-linux "
        "(add --system aarch64-linux)\n"
    )


def test_no_build_names_what_is_missing(rpbuild: RunCli, project: Path, tmp_path: Path) -> None:
    # A private copy of the stand-in with a different payload: its packages are not built yet.
    nixpkgs = tmp_path / "nixpkgs"
    shutil.copytree(STANDIN / "nixpkgs", nixpkgs)
    flake = nixpkgs / "flake.nix"
    flake.write_text(
        flake.read_text().replace(
            '"iproute2" = 122880;', f'"iproute2" = {122880 + (hash(str(tmp_path)) % 4096)};'
        )
    )
    overrides = standin_overrides(nixpkgs=nixpkgs)
    result = rpbuild("sizes", "--no-build", "--profile", "minimal", *overrides, cwd=project)
    assert result.returncode == 1
    assert "not built for x86_64-linux: minimal" in result.stderr
    built = sizes(rpbuild, project, "--profile", "minimal", overrides=overrides)
    assert by_name(built)["minimal"]["closure_size"] > 0
    again = rpbuild("sizes", "--no-build", "--profile", "minimal", *overrides, cwd=project)
    assert again.returncode == 0, again.stderr


def test_a_failed_builds_leftover_output_counts_as_not_built(
    rpbuild: RunCli, project: Path
) -> None:
    """A failed build can leave its output directory behind, on disk but not valid."""
    (project / "profiles" / "broken.toml").write_text(
        'description = "fails"\nextends = "minimal"\n\n[image]\nname = "rpbuild-test-broken"\n\n'
        '[[package]]\nname = "broken"\nattr = "rpbuildTestFailing"\ndescription = "d"\n'
        'reason = "r"\nrequired = false\n'
    )
    failing = [
        p for p in Path("/nix/store").glob("*-rpbuild-test-failing-1") if p.is_dir()
    ]  # left by this or an earlier failed build, or made by the first run below
    first = rpbuild("sizes", "--profile", "broken", *STANDIN_OVERRIDES, cwd=project)
    assert first.returncode != 0
    if not failing:
        failing = list(Path("/nix/store").glob("*-rpbuild-test-failing-1"))
    assert failing, "the stand-in's failing build leaves its output directory"
    for args in ([], ["--no-build"]):
        result = rpbuild("sizes", "--profile", "broken", *args, *STANDIN_OVERRIDES, cwd=project)
        assert result.returncode != 0
        errors = [line for line in result.stderr.splitlines() if "rpbuild: error:" in line]
        assert len(errors) == 1, result.stderr
        assert "is not valid" not in errors[0] and "Traceback" not in result.stderr
        if args:
            assert errors[0] == "rpbuild: error: not built for x86_64-linux: broken " + (
                "(run without --no-build, or `rpbuild image --profile NAME`)"
            )
        else:
            assert errors[0].startswith(  # the build failure, naming the profile file
                "rpbuild: error: profiles/broken.toml: build of rpbuild-test-failing-1 failed"
            )


def libc_copies(paths: list[str]) -> list[str]:
    """The store paths of a closure that hold a C library (lib/libc.so.6)."""
    return sorted(p for p in paths if (Path(p) / "lib" / "libc.so.6").exists())


@pytest.mark.parametrize(("source", "copies"), [("nixpkgs", 1), ("flake", 2)])
def test_rosenpass_from_nixpkgs_shares_the_images_one_libc(
    rpbuild: RunCli, project: Path, source: str, copies: int
) -> None:
    """The closure composition behind the default rosenpass_source: the rosenpass flake
    brings its own nixpkgs and so its own libc; nixpkgs' rosenpass uses the image's."""
    use_rosenpass_source(project, source)
    minimal = by_name(sizes(rpbuild, project, "--profile", "minimal"))["minimal"]
    roots = [pkg["path"] for pkg in minimal["packages"]]
    closure = [i["path"] for i in path_info(*roots, recursive=True)]
    assert len(libc_copies(closure)) == copies, libc_copies(closure)
    names = {p["name"] for p in minimal["packages"]}
    assert ("rosenpass-tools" in names) == (source == "nixpkgs")


def test_a_repeat_run_makes_only_the_path_info_call_and_says_the_same(
    rpbuild: RunCli, project: Path, tmp_path: Path
) -> None:
    """Everything built: the second `rpbuild sizes` is the one `nix path-info` call
    (rpbuild/memo.py), with the same report; an edited profile is measured in full."""
    shim = tmp_path / "shim"
    shim.mkdir()
    log = tmp_path / "nix-calls.log"
    real = shutil.which("nix")
    assert real is not None
    (shim / "nix").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    (shim / "nix").chmod(0o755)
    env = {"PATH": f"{shim}:{os.environ['PATH']}"}

    def run() -> tuple[str, list[str]]:
        log.unlink(missing_ok=True)
        result = rpbuild("sizes", "--json", *STANDIN_OVERRIDES, cwd=project, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout, log.read_text().splitlines() if log.exists() else []

    full, _ = run()
    again, calls = run()
    assert again == full
    assert len(calls) == 1 and " path-info " in f" {calls[0]} ", calls
    minimal = project / "profiles" / "minimal.toml"
    minimal.write_text(minimal.read_text().replace('budget = "110 MiB"', 'budget = "111 MiB"'))
    edited, _ = run()  # not the recorded answer: the budget is part of the report
    [mini] = [p for p in json.loads(edited)["profiles"] if p["name"] == "minimal"]
    assert mini["budget"] == 111 * 1024 * 1024
