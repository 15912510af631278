"""`rpbuild release` and `rpbuild verify` against real parts: nix, git, skopeo, Docker and a
real registry (Debian's docker-registry, distribution 2.8) on 127.0.0.1.

The images are built from the stand-in flakes (tests/standin), which can build the
aarch64-linux images on this x86_64 machine (without running them), so the manifest
lists are real multi-architecture lists. Each test pushes into its own repository of
one registry, so "nothing was pushed" is checked by the registry's catalog.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from rpbuild.project import find_project
from rpbuild.release import model, preflight, reproduce, run
from rpbuild.sizes_json import load_report_file
from tests.conftest import ROSENPASS_SOURCE, STANDIN_OVERRIDES, RunCli, commit_all, git

REGISTRY_BIN = "/usr/bin/docker-registry"

pytestmark = [
    pytest.mark.nix,
    pytest.mark.docker,
    pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed"),
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed"),
    pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed"),
    pytest.mark.skipif(not Path(REGISTRY_BIN).exists(), reason="docker-registry is not installed"),
    pytest.mark.skipif(platform.machine() != "x86_64", reason="stand-ins build on x86_64"),
]


# -- a real registry ------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    host: str  # 127.0.0.1:PORT

    def catalog(self) -> list[str]:
        with urllib.request.urlopen(f"http://{self.host}/v2/_catalog", timeout=10) as resp:
            return list(json.load(resp)["repositories"] or [])

    def tags(self, repo: str) -> list[str]:
        with urllib.request.urlopen(f"http://{self.host}/v2/{repo}/tags/list", timeout=10) as r:
            return list(json.load(r)["tags"] or [])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _serve(root: Path, extra_config: str = "") -> Iterator[Registry]:
    """docker-registry serving plain HTTP on 127.0.0.1, storage in root."""
    port = _free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + extra_config
    )
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=log)
    reg = Registry(f"127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{reg.host}/v2/", timeout=10):
                    break
            except urllib.error.HTTPError:
                break  # it answers, if only with 401
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"docker-registry did not start: {(root / 'registry.log').read_text()}"
                    )
                time.sleep(0.1)
        yield reg
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """docker-registry serving plain HTTP on 127.0.0.1, storage in a temp dir."""
    with _serve(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


# A bcrypt entry (user "u", password "p"): the tests never log in, they are refused.
HTPASSWD = "u:$2b$12$AJYsg6yWOWNGkTUiUxkAQuMVDlBuJKzveZZ8IXujjRSNnJRjPb/F2\n"


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry that wants a login (htpasswd), as ghcr.io does for a push."""
    root = tmp_path_factory.mktemp("auth-registry")
    (root / "htpasswd").write_text(HTPASSWD)
    auth = f"auth:\n  htpasswd:\n    realm: rpbuild-tests\n    path: {root / 'htpasswd'}\n"
    with _serve(root, auth) as reg:
        yield reg


def skopeo(*args: str) -> str:
    proc = subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, timeout=120, check=True
    )
    return proc.stdout


def inspect(ref: str, *extra: str) -> Any:
    return json.loads(skopeo("inspect", "--tls-verify=false", *extra, f"docker://{ref}"))


def raw(ref: str, *extra: str) -> str:
    return skopeo("inspect", "--tls-verify=false", "--raw", *extra, f"docker://{ref}")


def sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# -- a committed project --------------------------------------------------------------


@pytest.fixture
def repo(project: Path, rpbuild: RunCli) -> Path:
    """The project copy, rendered and committed in a fresh git repository."""
    (project / ".gitignore").write_text(".rpbuild/\n")
    done = rpbuild("--project", str(project), "render")
    assert done.returncode == 0, done.stderr
    git(project, "init", "-q")
    commit_all(project, "release test project")
    return project


def release(rpbuild: RunCli, root: Path, *args: str) -> Any:
    """A release from the stand-ins: the one place tests allow overridden inputs."""
    return rpbuild(
        "--project", str(root), "release", *args, *STANDIN_OVERRIDES, "--allow-override-input"
    )  # fmt: skip


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("rpbuild: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


# -- the whole release ----------------------------------------------------------------


def test_release_all_profiles_two_systems_to_a_registry(
    repo: Path, rpbuild: RunCli, registry: Registry, tmp_path: Path
) -> None:
    push = f"{registry.host}/full/rosenpass"
    reports = tmp_path / "reports"
    lock = json.loads((repo / "flake.lock").read_text())

    # 1.0.0: the minimal image alone, the report the next release compares against.
    first = release(
        rpbuild, repo, "1.0.0", "--profile", "minimal", "--push", push,
        "--no-tls-verify", "--report", str(reports / "1.0.0"),
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert set(registry.catalog()) == {"full/rosenpass"}

    # A profile change between releases: minimal drops gnugrep.
    minimal = repo / "profiles" / "minimal.toml"
    text = minimal.read_text()
    start = text.index('[[package]]\nname = "gnugrep"')
    end = text.index("[[package]]", start + 1)
    minimal.write_text(text[:start] + text[end:])
    assert rpbuild("--project", str(repo), "render").returncode == 0
    commit = commit_all(repo, "minimal: without gnugrep")

    started = time.monotonic()
    done = release(
        rpbuild, repo, "1.1.0", "--system", "x86_64-linux",
        "--system", "aarch64-linux", "--push", push, "--no-tls-verify",
        "--report", str(reports / "1.1.0"),
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "every image reproducible" in done.stdout
    print(f"release of 3 profiles x 2 systems: {seconds:.1f} s")

    report_dir = reports / "1.1.0"
    assert sorted(p.name for p in report_dir.iterdir()) == sorted(
        [
            "SUMMARY.md",
            "provenance.intoto.json",
            "release.json",
            "sizes-aarch64-linux.json",
            "sizes-x86_64-linux.json",
        ]
        + [
            f"sbom-{p}-{s}.cdx.json"
            for p in ("debug", "minimal", "with-wireguard")
            for s in ("x86_64-linux", "aarch64-linux")
        ]
    )
    assert [p.name for p in reports.iterdir() if ".tmp-" in p.name] == []
    report = json.loads((report_dir / "release.json").read_text())
    assert report["version"] == "1.1.0" and report["snapshot"] is False
    assert report["git"] == {"commit": commit, "clean": True, "changes": []}
    assert report["verified"] is True
    assert report["previous"]["version"] == "1.0.0"
    assert report["profiles"] == ["debug", "minimal", "with-wireguard"]

    # Input revisions: what flake.lock pins, and the stand-in overrides used instead.
    for name in ("nixpkgs", "rosenpass"):
        node = lock["nodes"][lock["nodes"]["root"]["inputs"][name]]["locked"]
        pin = report["inputs"][name]
        assert pin["rev"] == node["rev"]
        assert pin["nar_hash"] == node["narHash"]
        assert pin["last_modified"] == node["lastModified"]
        assert pin["override"] == f"path:{Path(__file__).resolve().parents[1] / 'standin' / name}"

    # Every image: in the registry under its architecture's tag, with the digest, the
    # labels, the architecture and the image ID (config digest) the report gives.
    images = report["images"]
    assert {(i["profile"], i["system"]) for i in images} == {
        (p, s) for p in report["profiles"] for s in ("x86_64-linux", "aarch64-linux")
    }
    for image in images:
        assert image["verified"] is True
        verification = image["verification"]
        assert verification["image_id"] == verification["rebuilt_image_id"] == image["image_id"]
        info = inspect(image["reference"])
        assert info["Digest"] == image["manifest_digest"]
        assert info["Architecture"] == image["architecture"]
        assert (
            info["Architecture"]
            == {"x86_64-linux": "amd64", "aarch64-linux": "arm64"}[image["system"]]
        )
        assert info["Labels"] == image["labels"]
        assert info["Labels"]["dev.rpbuild.profile"] == image["profile"]
        assert info["Labels"]["dev.rpbuild.system"] == image["system"]
        assert info["Labels"]["dev.rpbuild.fingerprint"] == image["fingerprint"]
        assert sha256(raw(image["reference"], "--config")) == image["image_id"]
        # Which rosenpass each image holds, from the labels: the default source unless
        # the run asks for the other one (.ci/test runs both).
        assert image["rosenpass"]["source"] == (ROSENPASS_SOURCE or "nixpkgs")
        assert image["rosenpass"]["version"] == "0.2.1-standin"

    # Every tag: a manifest list of both architectures, byte for byte what the report says.
    tags = {t["reference"]: t for t in report["tags"]}
    assert set(tags) == {
        f"{push}:1.1.0-debug",
        f"{push}:1.1.0-minimal",
        f"{push}:1.1.0",
        f"{push}:1.1.0-with-wireguard",
    }
    for ref, tag in tags.items():
        manifest = raw(ref)
        assert sha256(manifest) == tag["digest"]
        doc = json.loads(manifest)
        assert doc["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
        listed = {m["platform"]["architecture"]: m["digest"] for m in doc["manifests"]}
        expected = {
            i["architecture"]: i["manifest_digest"]
            for i in images
            if i["profile"] == tag["profile"]
        }
        assert listed == expected and set(listed) == {"amd64", "arm64"}
        arm = inspect(ref, "--override-arch", "arm64")
        assert arm["Architecture"] == "arm64"
        assert arm["Labels"]["dev.rpbuild.system"] == "aarch64-linux"
    assert tags[f"{push}:1.1.0"]["digest"] == tags[f"{push}:1.1.0-minimal"]["digest"]

    # Sizes JSON per system, and the Markdown diff against release 1.0.0.
    sizes = load_report_file(report_dir / "sizes-x86_64-linux.json")
    assert sorted(p.name for p in sizes.profiles) == ["debug", "minimal", "with-wireguard"]
    minimal_size = sizes.profile("minimal")
    assert minimal_size is not None
    assert "gnugrep" not in [p.name for p in minimal_size.packages]
    assert load_report_file(report_dir / "sizes-aarch64-linux.json").system == "aarch64-linux"
    summary = (report_dir / "SUMMARY.md").read_text()
    assert summary.startswith("# rosenpass images 1.1.0\n")
    assert f"Size changes are against release 1.0.0 (report `{reports / '1.0.0'}`)" in summary
    changes = summary[summary.index("### Changes") :]
    assert "**minimal**" in changes and "`gnugrep`: removed" in changes
    assert "**debug**: new profile" in changes
    for image in images:
        assert image["manifest_digest"] in summary and image["image_id"] in summary
        assert f"0.2.1-standin from {image['rosenpass']['source']}" in summary

    # Docker pulls the list and gets the amd64 image, the one the report names.
    ref = f"{push}:1.1.0"
    subprocess.run(["docker", "pull", "-q", ref], check=True, capture_output=True, timeout=120)
    try:
        pulled = json.loads(
            subprocess.run(
                ["docker", "image", "inspect", ref], check=True, capture_output=True, text=True
            ).stdout
        )[0]
        amd64 = next(
            i for i in images if i["profile"] == "minimal" and i["system"] == "x86_64-linux"
        )
        assert pulled["Id"] == amd64["image_id"]
        assert pulled["Config"]["Labels"] == amd64["labels"]
    finally:
        subprocess.run(["docker", "image", "rm", "-f", ref], capture_output=True, check=False)

    # The same version again: refused before anything is built; nothing changes.
    again = release(
        rpbuild, repo, "1.1.0", "--push", push, "--no-tls-verify",
        "--report", str(reports / "again"),
    )  # fmt: skip
    assert again.returncode == 1
    assert f"{push}:1.1.0-debug: already in the registry" in one_error_line(again.stderr)
    assert not (reports / "again").exists()
    assert sha256(raw(f"{push}:1.1.0")) == tags[f"{push}:1.1.0"]["digest"]


# -- refusals ---------------------------------------------------------------------------


def _lock_not_committed(root: Path) -> None:
    git(root, "rm", "-q", "--cached", "flake.lock")
    git(root, "commit", "-q", "-m", "forget the lock")
    (root / ".gitignore").write_text(".rpbuild/\nflake.lock\n")
    commit_all(root, "ignore the lock")


def _lock_modified(root: Path) -> None:
    data = json.loads((root / "flake.lock").read_text())
    (root / "flake.lock").write_text(json.dumps(data, indent=4) + "\n")


def _flake_stale(root: Path) -> None:
    path = root / "profiles" / "minimal.toml"
    path.write_text(path.read_text().replace("only the tools", "just the tools"))
    commit_all(root, "profile changed, flake.nix not rendered")


def _untracked_file(root: Path) -> None:
    (root / "notes.txt").write_text("not committed\n")


def _modified_profile(root: Path) -> None:
    path = root / "profiles" / "debug.toml"
    path.write_text(path.read_text() + "\n# an uncommitted comment\n")


def _not_git(root: Path) -> None:
    shutil.rmtree(root / ".git")


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (_lock_not_committed, "flake.lock: not committed; commit it"),
        (_lock_modified, "flake.lock: has uncommitted changes (M flake.lock)"),
        (_flake_stale, "flake.nix: `rpbuild render --check` fails"),
        (_untracked_file, "working tree not clean (?? notes.txt)"),
        (_modified_profile, "working tree not clean (M profiles/debug.toml)"),
        (_not_git, "not a git work tree"),
    ],
    ids=["lock-not-committed", "lock-modified", "flake-stale", "untracked", "modified", "no-git"],
)
def test_unpinned_or_dirty_release_is_refused(
    spoil: Any, reason: str, repo: Path, rpbuild: RunCli, registry: Registry, tmp_path: Path
) -> None:
    spoil(repo)
    name = f"refused-{spoil.__name__.strip('_').replace('_', '-')}"
    done = release(
        rpbuild, repo, "9.9.9", "--push", f"{registry.host}/{name}/rosenpass",
        "--no-tls-verify", "--report", str(tmp_path / "report"),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert reason in one_error_line(done.stderr)
    assert "building" not in done.stderr  # refused before any build
    assert f"{name}/rosenpass" not in registry.catalog()
    assert not (tmp_path / "report").exists()


def test_release_from_overridden_inputs_is_refused_unless_allowed(
    repo: Path, rpbuild: RunCli, tmp_path: Path
) -> None:
    """Only flake.lock pins a release; an override is a snapshot or an explicit choice."""
    done = rpbuild(
        "--project", str(repo), "release", "1.0.0",
        "--report", str(tmp_path / "report"), *STANDIN_OVERRIDES,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert one_error_line(done.stderr) == (
        "rpbuild: error: --override-input nixpkgs, rosenpass: a release is built from the "
        "inputs flake.lock pins; release with --snapshot, or add --allow-override-input to "
        "publish it anyway (the report records the override)"
    )
    assert "building" not in done.stderr and "measuring" not in done.stderr
    assert not (tmp_path / "report").exists()


def test_existing_report_dir_is_refused(repo: Path, rpbuild: RunCli, tmp_path: Path) -> None:
    (tmp_path / "report").mkdir()
    done = release(rpbuild, repo, "1.0.0", "--report", str(tmp_path / "report"))
    assert done.returncode == 1
    assert "report: already exists; a release report is never overwritten" in one_error_line(
        done.stderr
    )


@pytest.mark.parametrize("below", ["r", "sub/r"])
def test_report_under_a_file_is_refused_before_any_build(
    repo: Path, rpbuild: RunCli, tmp_path: Path, below: str
) -> None:
    """It was refused only after building and verifying, with a traceback."""
    (tmp_path / "afile").write_text("x")
    report = tmp_path / "afile" / below
    done = release(rpbuild, repo, "1.0.0", "--report", str(report))
    assert done.returncode == 2, done.stderr
    assert one_error_line(done.stderr) == (
        f"rpbuild: error: --report {report}: {tmp_path / 'afile'} is not a directory"
    )
    assert "Traceback" not in done.stderr
    assert "building" not in done.stderr and "measuring" not in done.stderr


def refused_up_front(done: Any, registry: Registry, name: str, report: Path) -> str:
    """A release refused before anything was built or pushed: its one error line."""
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "building" not in done.stderr and "measuring" not in done.stderr
    assert not any(r.startswith(f"{name}/") for r in registry.catalog())
    assert not report.exists()
    assert [p.name for p in report.parent.iterdir() if ".tmp-" in p.name] == []
    return one_error_line(done.stderr)


def test_a_version_too_long_for_the_per_arch_tags_is_refused_naming_it(
    repo: Path, rpbuild: RunCli, registry: Registry, tmp_path: Path
) -> None:
    """The per-architecture tags are 6+ characters longer than the ones checked before:
    skopeo refused the first of them with "invalid reference format", after the profiles
    before it were pushed."""
    version = "1." + "0" * 108  # 110: fits "-with-wireguard", not "-with-wireguard-arm64"
    push = f"{registry.host}/longtag/rosenpass"
    done = release(
        rpbuild, repo, version, "--system", "x86_64-linux",
        "--system", "aarch64-linux", "--push", push, "--no-tls-verify",
        "--report", str(tmp_path / "report"),
    )  # fmt: skip
    line = refused_up_front(done, registry, "longtag", tmp_path / "report")
    assert line.startswith(f"rpbuild: error: VERSION '{version}': too long: the tag ")
    assert done.returncode == 2


def test_a_version_that_is_no_tag_is_refused_naming_it(
    repo: Path, rpbuild: RunCli, tmp_path: Path
) -> None:
    done = release(rpbuild, repo, "1.2.0 foo", "--report", str(tmp_path / "r"))
    assert done.returncode == 2, done.stderr
    assert one_error_line(done.stderr) == (
        "rpbuild: error: VERSION '1.2.0 foo': ' ' is not allowed in a tag "
        "(letters, digits, '_', '.', '-')"
    )
    assert "building" not in done.stderr and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("push", "reason"),
    [
        (
            "my_host.com/rosenpass",
            "--push my_host.com/rosenpass: 'my_host.com' is taken as a registry host",
        ),
        ("127.0.0.1:99999/x", "--push 127.0.0.1:99999/x: port 99999 is not a TCP port (1-65535)"),
    ],
    ids=["host", "port"],
)
def test_a_repository_skopeo_would_refuse_is_refused_before_anything_is_built(
    repo: Path, rpbuild: RunCli, registry: Registry, tmp_path: Path, push: str, reason: str
) -> None:
    """Both passed the check, and skopeo failed after the build with a misleading hint."""
    done = release(rpbuild, repo, "1.0.0", "--push", push, "--no-tls-verify",
                   "--report", str(tmp_path / "r"))  # fmt: skip
    line = refused_up_front(done, registry, push.split("/")[0], tmp_path / "r")
    assert line.startswith(f"rpbuild: error: {reason}")
    assert "rpbuild: hint:" not in done.stderr


@pytest.mark.parametrize("snapshot", [False, True], ids=["release", "snapshot"])
@pytest.mark.parametrize(
    "case",
    ["dns", "refused", "https-to-http", "login"],
)
def test_a_registry_that_cannot_take_the_push_is_refused_before_anything_is_built(
    repo: Path,
    rpbuild: RunCli,
    registry: Registry,
    auth_registry: Registry,
    tmp_path: Path,
    case: str,
    snapshot: bool,
) -> None:
    """A DNS failure ("no such host") once counted as "the tag is not there yet", and a
    snapshot never asked the registry: both built everything and failed at the push."""
    push, tls, fault, hint = {
        "dns": ("nonexistent.invalid/x/rosenpass", "--no-tls-verify", "nonexistent.invalid",
                "host name in --push does not resolve"),
        "refused": (f"127.0.0.1:{_free_port()}/x/rosenpass", "--no-tls-verify",
                    "connection refused", "is the registry running"),
        "https-to-http": (f"{registry.host}/tls/rosenpass", "--tls-verify",
                          "server gave HTTP response to HTTPS client", "use --no-tls-verify"),
        "login": (f"{auth_registry.host}/auth/rosenpass", "--no-tls-verify",
                  "authentication required", "skopeo login"),  # skopeo 1.18 drops "unauthorized:"
    }[case]  # fmt: skip
    args = ["--snapshot"] if snapshot else []
    done = release(rpbuild, repo, "1.0.0", "--push", push, tls, *args,
                   "--report", str(tmp_path / "r"))  # fmt: skip
    line = refused_up_front(done, registry, "tls", tmp_path / "r")
    assert line.startswith(f"rpbuild: error: cannot ask the registry for {push}:1.0.0-")
    assert fault in line and "Error parsing image name" not in line
    hints = [h for h in done.stderr.splitlines() if h.startswith("rpbuild: hint:")]
    assert len(hints) == 1 and hint in hints[0], done.stderr


def test_push_without_skopeo_is_refused_before_anything_is_built(
    repo: Path, rpbuild: RunCli, registry: Registry, tmp_path: Path
) -> None:
    """A snapshot found skopeo missing only at the push, after the whole build."""
    bin_dir = tmp_path / "bin"  # PATH as it is, without skopeo
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        for tool in Path(directory).glob("*") if Path(directory).is_dir() else ():
            link = bin_dir / tool.name
            if tool.name != "skopeo" and not (link.exists() or link.is_symlink()):
                link.symlink_to(tool)
    done = rpbuild(
        "--project", str(repo), "release", "1.0.0", "--snapshot",
        "--push", f"{registry.host}/noskopeo/rosenpass", "--no-tls-verify",
        "--report", str(tmp_path / "r"), *STANDIN_OVERRIDES, env={"PATH": str(bin_dir)},
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    line = refused_up_front(done, registry, "noskopeo", tmp_path / "r")
    assert line == "rpbuild: error: skopeo is not installed; --push needs it"


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("[]", "(top level): expected an object, got a list"),
        ('{"sizes": [1]}', "sizes: expected an object of system: file name, got a list"),
    ],
    ids=["list", "sizes-list"],
)
def test_a_malformed_previous_report_is_refused_in_one_line(
    repo: Path, rpbuild: RunCli, tmp_path: Path, text: str, fault: str
) -> None:
    """It was an AttributeError traceback."""
    previous = tmp_path / "previous"
    previous.mkdir()
    (previous / "release.json").write_text(text)
    done = release(rpbuild, repo, "1.0.0", "--previous", str(previous),
                   "--report", str(tmp_path / "r"))  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "building" not in done.stderr
    assert one_error_line(done.stderr).startswith(
        f"rpbuild: error: {previous / 'release.json'}: {fault}"
    )
    assert not (tmp_path / "r").exists()


def test_a_report_location_that_cannot_be_made_is_refused_before_anything_is_pushed(
    repo: Path, rpbuild: RunCli, registry: Registry, tmp_path: Path
) -> None:
    """For root os.access passes /proc; the release built and pushed, then failed writing
    the report, and the version was burnt: a retry was refused as already pushed."""
    report = Path("/proc/rpbuild-no-such-dir/r")
    done = release(rpbuild, repo, "1.0.0", "--push",
                   f"{registry.host}/procreport/rosenpass", "--no-tls-verify",
                   "--report", str(report))  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "building" not in done.stderr
    assert one_error_line(done.stderr) == (
        f"rpbuild: error: --report {report}: cannot create /proc/rpbuild-no-such-dir: "
        "No such file or directory"
    )
    assert "procreport/rosenpass" not in registry.catalog()


def test_lock_changed_during_the_build_is_refused(repo: Path) -> None:
    project = find_project(repo)
    pinned = preflight.check_pinned(project, snapshot=False)
    preflight.check_lock_unchanged(project, pinned.lock_bytes)  # unchanged: fine
    _lock_modified(repo)
    with pytest.raises(model.ReleaseRefused, match=r"flake\.lock: changed during the build"):
        preflight.check_lock_unchanged(project, pinned.lock_bytes)


def test_rpbuild_state_dir_does_not_make_the_tree_dirty(repo: Path) -> None:
    (repo / ".gitignore").unlink()
    commit_all(repo, "no .gitignore")
    (repo / ".rpbuild").mkdir(exist_ok=True)
    (repo / ".rpbuild" / "state.json").write_text("{}")
    pinned = preflight.check_pinned(find_project(repo), snapshot=False)
    assert pinned.clean and pinned.changes == ()


def test_snapshot_from_a_dirty_tree_is_tagged_snapshot(
    repo: Path, rpbuild: RunCli, registry: Registry, tmp_path: Path
) -> None:
    _untracked_file(repo)
    push = f"{registry.host}/snap/rosenpass"
    args = ["--profile", "minimal", "--push", push, "--no-tls-verify", "--snapshot"]
    done = release(rpbuild, repo, "2.0.0", *args, "--report", str(tmp_path / "s1"))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "s1" / "release.json").read_text())
    assert report["snapshot"] is True
    assert report["git"]["clean"] is False and report["git"]["changes"] == ["?? notes.txt"]
    assert [t["reference"] for t in report["tags"]] == [
        f"{push}:2.0.0-minimal-SNAPSHOT",
        f"{push}:2.0.0-SNAPSHOT",
    ]
    (image,) = report["images"]
    assert image["reference"] == f"{push}:2.0.0-minimal-SNAPSHOT"
    for tag in report["tags"]:
        assert tag["kind"] == "image" and tag["platforms"] == ["linux/amd64"]
        assert inspect(tag["reference"])["Digest"] == tag["digest"] == image["manifest_digest"]
    assert sha256(raw(image["reference"], "--config")) == image["image_id"]
    # A snapshot may be pushed again under the same version.
    done = release(rpbuild, repo, "2.0.0", *args, "--report", str(tmp_path / "s2"))
    assert done.returncode == 0, done.stderr


def test_a_push_that_fails_half_way_names_what_the_registry_may_hold(
    repo: Path, rpbuild: RunCli, registry: Registry, tmp_path: Path
) -> None:
    """The real skopeo pushes minimal; a shim fails the push of debug, as a full disk or a
    dropped connection would. The version is then half published: say which tags."""
    real = shutil.which("skopeo")
    assert real is not None
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "skopeo").write_text(
        "#!/bin/sh\n"
        'case "$*" in *copy*-debug*) echo "simulated: connection reset" >&2; exit 1 ;; esac\n'
        f'exec {real} "$@"\n'
    )
    (shim / "skopeo").chmod(0o755)
    push = f"{registry.host}/half/rosenpass"
    done = rpbuild(
        "--project", str(repo), "release", "3.1.0", "--profile", "minimal",
        "--profile", "debug", "--push", push, "--no-tls-verify", "--snapshot",
        "--report", str(tmp_path / "r"), *STANDIN_OVERRIDES,
        env={"PATH": f"{shim}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert done.returncode != 0
    hint = next(line for line in done.stderr.splitlines() if line.startswith("rpbuild: hint:"))
    assert hint.startswith(
        f"rpbuild: hint: the registry may already hold {push}:3.1.0-minimal-SNAPSHOT, "
        f"{push}:3.1.0-SNAPSHOT, {push}:3.1.0-debug-SNAPSHOT: delete those tags there, "
        "or release under another version"
    ), hint
    assert "3.1.0-minimal-SNAPSHOT" in registry.tags("half/rosenpass")
    assert not (tmp_path / "r").exists()


# -- verify -----------------------------------------------------------------------------


def test_verify_matches_the_image_docker_loaded(project: Path, rpbuild: RunCli) -> None:
    built = rpbuild("--project", str(project), "image", "--json", *STANDIN_OVERRIDES)
    assert built.returncode == 0, built.stderr
    loaded = json.loads(built.stdout)
    done = rpbuild("--project", str(project), "verify", "--json", *STANDIN_OVERRIDES)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["reproducible"] is True and result["reason"] is None
    assert result["image_id"] == result["rebuilt_image_id"] == loaded["image_id"]
    assert result["recorded_image_id"] == loaded["image_id"]
    assert result["out_path"] == loaded["out_path"]


def test_rebuild_detects_a_nondeterministic_build(tmp_path: Path) -> None:
    from rpbuild import nix

    flake = tmp_path / "nd"
    flake.mkdir()
    (flake / "flake.nix").write_text(
        "{ outputs = { self }: { packages.x86_64-linux.nd = builtins.derivation {\n"
        '  name = "rpbuild-nondeterministic"; system = "x86_64-linux"; builder = "/bin/sh";\n'
        f'  args = [ "-c" "echo $$ > $out" ]; salt = "{os.urandom(8).hex()}"; }}; }}; }}\n'
    )
    opts = nix.NixOptions(options=(("substituters", ""),))
    nix.build([f"path:{flake}#nd"], opts)
    reason = reproduce._rebuild_reason(f"path:{flake}#nd", opts, None)
    assert reason is not None and "may not be deterministic" in reason


def test_an_image_that_does_not_verify_is_not_pushed(
    repo: Path, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if `nix build --rebuild` had found a different output: no push, unless snapshot."""
    from rpbuild import nix

    monkeypatch.setattr(
        reproduce, "_rebuild_reason", lambda *_: "nix build --rebuild: output differs"
    )
    pairs = list(zip(STANDIN_OVERRIDES[1::3], STANDIN_OVERRIDES[2::3], strict=True))
    opts = nix.NixOptions(
        overrides=tuple(p for p in pairs if p[0] != "substituters"),
        options=(("substituters", ""),),
    )
    push = f"{registry.host}/unverified/rosenpass"
    options = model.ReleaseOptions(
        version="3.0.0",
        profiles=("minimal",),
        push=push,
        tls_verify=False,
        report=tmp_path / "r1",
        nix=opts,
        allow_override_input=True,
    )
    project = find_project(repo)
    with pytest.raises(
        model.NotReproducible, match=r"minimal \(x86_64-linux\) is not reproducible"
    ):
        run.release(project, options)
    assert "unverified/rosenpass" not in registry.catalog()
    assert not (tmp_path / "r1").exists()

    result = run.release(project, replace(options, snapshot=True, report=tmp_path / "r2"))
    assert result.verified is False
    report = json.loads((tmp_path / "r2" / "release.json").read_text())
    assert report["verified"] is False
    (image,) = report["images"]
    assert image["verified"] is False
    assert image["verification"]["reason"] == "nix build --rebuild: output differs"
    assert inspect(image["reference"])["Digest"] == image["manifest_digest"]
    assert (
        "| no: nix build --rebuild: output differs |"
        in (tmp_path / "r2" / "SUMMARY.md").read_text()
    )
