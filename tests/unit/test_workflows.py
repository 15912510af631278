"""What this project decided about its GitHub workflows, checked on the workflows as data.

This is not actionlint and no substitute for it: it knows nothing of GitHub's expression
syntax, runner labels, action inputs or the shell scripts' correctness. It pins down the
decisions (actions pinned by commit, least privilege, nix from an install action with the
sandbox on and a bounded store cache, aarch64 on native arm64 runners, one size comment
found by its marker, a lock update that opens a pull request) and checks what actionlint
cannot know: that every rpbuild command line in them names commands and options rpbuild
has. `.ci/actionlint` runs upstream's actionlint wherever it can be downloaded; its own
download, checksum and skip paths are tested at the end against a loopback server.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import re
import shlex
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(?:/[^@\s]+)?@[0-9a-f]{40}$")
RELEASE_COMMENT = re.compile(r"#\s*v\d+(?:\.\d+)*\s*$")
MARKER = "<!-- rpbuild-sizes -->"
Job = dict[str, Any]


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    # YAML 1.1 reads the key `on` as the boolean true.
    if True in data:
        data["on"] = data.pop(True)
    return cast(dict[str, Any], data)


WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))
DOCS = {path.name: _load(path) for path in WORKFLOW_FILES}


def _jobs(name: str) -> dict[str, Job]:
    return cast(dict[str, Job], DOCS[name]["jobs"])


def _steps(job: Job) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], job.get("steps", []))


def _uses(job: Job, action: str) -> list[dict[str, Any]]:
    return [s for s in _steps(job) if str(s.get("uses", "")).split("@")[0] == action]


def _script(job: Job) -> str:
    return "\n".join(str(s.get("run", "")) for s in _steps(job))


def _all_jobs() -> Iterator[tuple[str, str, Job]]:
    for name in DOCS:
        for job_id, job in _jobs(name).items():
            yield name, job_id, job


def test_the_workflows_are_there() -> None:
    assert {"ci.yml", "images.yml", "release.yml", "lock-update.yml"} <= set(DOCS)


# -- actions and permissions ----------------------------------------------------------


def test_every_action_is_pinned_to_a_commit_with_its_release_named() -> None:
    """A tag can be moved to other code; a commit cannot. The comment says which release."""
    seen = 0
    for path in WORKFLOW_FILES:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
            if match is None:
                continue
            seen += 1
            ref, rest = match.groups()
            where = f"{path.name}:{number}"
            assert SHA_PIN.match(ref), f"{where}: {ref} is not pinned to a full commit SHA"
            assert RELEASE_COMMENT.search(rest), f"{where}: say which release the SHA is"
    assert seen >= 10


def test_permissions_are_declared_and_writes_granted_per_job() -> None:
    for name, doc in DOCS.items():
        assert "permissions" in doc, f"{name}: no top-level permissions (defaults may be write)"
        top = doc["permissions"] or {}
        assert isinstance(top, dict), f"{name}: permissions must be a mapping, not {top!r}"
        assert set(top.values()) <= {"read", "none"}, f"{name}: writes belong to a job: {top}"
    for name, job_id, job in _all_jobs():
        perms = job.get("permissions", DOCS[name]["permissions"]) or {}
        assert isinstance(perms, dict), f"{name}/{job_id}: permissions {perms!r}"
        assert set(perms.values()) <= {"read", "write", "none"}, f"{name}/{job_id}: {perms}"


def test_writes_only_where_they_are_used() -> None:
    assert _jobs("lock-update.yml")["update"]["permissions"] == {
        "contents": "write",
        "pull-requests": "write",
    }
    assert _jobs("images.yml")["comment"]["permissions"] == {"pull-requests": "write"}
    assert _jobs("images.yml")["sizes"]["permissions"] == {"contents": "read"}
    release = _jobs("release.yml")
    assert release["build"]["permissions"] == {"contents": "read", "packages": "write"}
    assert release["publish"]["permissions"] == {"contents": "write", "packages": "write"}
    assert "write" not in release["prepare"]["permissions"].values()


# -- nix, its sandbox and the store cache ------------------------------------------------

#: rpbuild commands that run nix (`profiles` and `render` do not).
NIX_COMMANDS = {"image", "sizes", "release", "verify", "lock", "up", "test"}


def test_nix_comes_from_the_install_action_and_keeps_its_sandbox() -> None:
    """Jobs that build the real images install nix the way Nix projects on GitHub do; only
    the test job uses .ci/setup's nix from apt, which is the path the README tests."""
    nix_jobs = {where for where, command, _ in _invocations() if command[0] in NIX_COMMANDS}
    assert nix_jobs == {"images.yml/sizes", "release.yml/build", "lock-update.yml/update"}
    for name, job_id, job in _all_jobs():
        script = _script(job)
        if f"{name}/{job_id}" not in nix_jobs and ".ci/setup" not in script:
            continue
        installs = _uses(job, "cachix/install-nix-action")
        if ".ci/setup" in script:
            assert not installs, f"{name}/{job_id}: two nixes"
            continue
        assert len(installs) == 1, f"{name}/{job_id}: runs nix without installing it"
        config = str((installs[0].get("with") or {}).get("extra_nix_config", ""))
        assert "sandbox" not in config, f"{name}/{job_id}: the sandbox setting is nix's"
    for path in WORKFLOW_FILES:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"sandbox\s*=?\s*(false|relaxed)", text), path.name
        assert "apt-get install" not in text or "nix-bin" not in text, path.name
        assert "setup-qemu-action" not in text, f"{path.name}: aarch64 builds natively"
        assert "extra-platforms" not in text, f"{path.name}: aarch64 builds natively"


def test_the_store_cache_is_keyed_on_what_defines_the_images_and_bounded() -> None:
    """Restored wherever images are built, keyed on the lock, the profiles and the
    templates per architecture; saved only from main, and only after GC to a bound."""
    restored, saved = [], []
    for name, job_id, job in _all_jobs():
        if not _uses(job, "cachix/install-nix-action") or "lock update" in _script(job):
            continue
        where = f"{name}/{job_id}"
        assert not _uses(job, "nix-community/cache-nix-action"), f"{where}: restore and save apart"
        (restore,) = _uses(job, "nix-community/cache-nix-action/restore")
        key = restore["with"]["primary-key"]
        for part in ("'flake.lock'", "'profiles/**'", "'templates/**'", "runner.arch"):
            assert part in key, f"{where}: the cache key misses {part}"
        restored.append(where)
        for save in _uses(job, "nix-community/cache-nix-action/save"):
            assert "github.ref == 'refs/heads/main'" in save["if"], where
            assert (
                save["with"]["primary-key"]
                == f"${{{{ steps.{restore['id']}.outputs.primary-key }}}}"
            )
            assert save["with"]["gc-max-store-size-linux"], f"{where}: an unbounded cache"
            saved.append(where)
    assert restored == ["images.yml/sizes", "release.yml/build"]
    assert saved == ["images.yml/sizes"]


# -- architectures -------------------------------------------------------------------------


def _matrix(job: Job) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], job["strategy"]["matrix"]["include"])


@pytest.mark.parametrize(
    ("workflow", "job_id"), [("images.yml", "sizes"), ("release.yml", "build")]
)
def test_each_system_builds_on_a_native_runner(workflow: str, job_id: str) -> None:
    job = _jobs(workflow)[job_id]
    assert job["runs-on"] == "${{ matrix.runner }}"
    runners = {entry["system"]: entry["runner"] for entry in _matrix(job)}
    assert set(runners) == {"x86_64-linux", "aarch64-linux"}
    assert runners["aarch64-linux"].endswith("-arm"), runners
    assert not runners["x86_64-linux"].endswith("-arm"), runners


def test_the_release_joins_both_architectures_in_a_final_job() -> None:
    jobs = _jobs("release.yml")
    assert set(jobs["publish"]["needs"]) == {"prepare", "build"}
    script = _script(jobs["build"])
    assert 'release "$VERSION-$ARCH"' in script and '--system "$SYSTEM"' in script
    publish = _script(jobs["publish"])
    assert 'docker manifest create "$REPO:$name" "$REPO@$amd64" "$REPO@$arm64"' in publish
    assert 'docker manifest push --purge "$REPO:$name"' in publish
    assert "gh release create" in publish


# -- the size comment and the lock update ----------------------------------------------------


def test_the_size_comment_is_found_by_its_marker_and_edits_only_itself() -> None:
    job = _jobs("images.yml")["comment"]
    assert "--edit-last" not in (WORKFLOWS / "images.yml").read_text(encoding="utf-8")
    assert f"echo '{MARKER}'" in _script(job)
    (script_step,) = _uses(job, "actions/github-script")
    script = script_step["with"]["script"]
    assert f'"{MARKER}"' in script
    assert 'c.user.login === "github-actions[bot]"' in script
    assert "startsWith(marker)" in script
    assert "updateComment" in script and "createComment" in script


def test_the_lock_update_runs_rpbuild_and_opens_a_pull_request() -> None:
    doc = DOCS["lock-update.yml"]
    assert doc["on"]["schedule"] and "workflow_dispatch" in doc["on"]
    job = doc["jobs"]["update"]
    steps = _steps(job)
    runs = next(i for i, s in enumerate(steps) if "rpbuild lock update" in str(s.get("run", "")))
    opens = next(
        i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("peter-evans/")
    )
    assert runs < opens
    inputs = steps[opens]["with"]
    assert inputs["add-paths"] == "flake.lock"
    assert inputs["body-path"].endswith("pr-body.md")


# -- rpbuild command lines --------------------------------------------------------------------

# rpbuild at a command position: line start, after $( | ; && || or a keyword.
_INVOCATION = re.compile(r"(?:^|\$\(|[|;&]\s*|\b(?:do|then|else)\s+)rpbuild\s+(.*)$")
_GLOBAL_WITH_VALUE = {"--project"}


def _rpbuild_lines() -> list[tuple[str, list[str]]]:
    """Each rpbuild command line in a run: script, as words up to the first shell operator."""
    found = []
    for name, job_id, job in _all_jobs():
        script = _script(job).replace("\\\n", " ")
        for line in script.splitlines():
            match = _INVOCATION.search(line.strip())
            if match is None:
                continue
            lexer = shlex.shlex(match.group(1), posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words = []
            for word in lexer:
                if word and set(word) <= set("|;&()<>"):
                    break
                words.append(word)
            found.append((f"{name}/{job_id}", words))
    return found


@functools.cache
def _help(*command: str) -> str:
    env = {**os.environ, "COLUMNS": "250", "TERM": "dumb", "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "rpbuild", *command, "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, f"rpbuild {' '.join(command)} --help: {proc.stderr}"
    return proc.stdout


def _has_option(help_text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text) is not None


@functools.cache
def _invocations() -> list[tuple[str, tuple[str, ...], list[str]]]:
    """(job, command path, the words after it) of every rpbuild command line; each global
    option, command and subcommand checked against rpbuild's own --help on the way."""
    found = []
    for where, words in _rpbuild_lines():
        rest = list(words)
        while rest and rest[0].startswith("-"):
            option = rest.pop(0)
            assert _has_option(_help(), option), f"{where}: rpbuild has no global {option}"
            if option in _GLOBAL_WITH_VALUE:
                rest.pop(0)
        assert rest, f"{where}: rpbuild without a command: {words}"
        command = [rest.pop(0)]
        assert re.search(rf"^\s+{command[0]}\s", _help(), re.M), f"{where}: no `{command[0]}`"
        if rest and "Commands:" in _help(*command) and not rest[0].startswith("-"):
            command.append(rest.pop(0))
            assert re.search(rf"^\s+{command[1]}\s", _help(command[0]), re.M), where
        found.append((where, tuple(command), rest))
    return found


def test_every_rpbuild_command_line_names_real_commands_and_options() -> None:
    commands = set()
    for where, command, rest in _invocations():
        text = _help(*command)
        for word in rest:
            if word.startswith("-") and word != "-":
                option = word.split("=", 1)[0]
                assert _has_option(text, option), (
                    f"{where}: `rpbuild {' '.join(command)}` has no {option}"
                )
        commands.add(" ".join(command))
    assert {"image", "sizes", "release", "lock update", "profiles", "render"} <= commands


# -- .ci/test and .ci/actionlint ----------------------------------------------------------------


def test_actionlint_comes_from_upstream() -> None:
    assert "bash .ci/actionlint" in (REPO / ".ci" / "test").read_text(encoding="utf-8")
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert not re.search(r"^\s*\"actionlint", pyproject, re.M), "a rebuilt actionlint from PyPI"
    script = (REPO / ".ci" / "actionlint").read_text(encoding="utf-8")
    assert "base_url=https://github.com/rhysd/actionlint/releases/download" in script
    assert re.search(r"x86_64\) arch=amd64 sha256=[0-9a-f]{64} ;;", script)


def test_on_github_actionlint_must_run_not_skip() -> None:
    """GitHub can serve the release: there a SKIP would hide the lint, so it fails."""
    script = _script(_jobs("ci.yml")["actionlint"])
    assert "bash .ci/actionlint" in script
    assert "grep -q '^actionlint: SKIP'" in script and "exit 1" in script


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def release_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server standing in for GitHub's release downloads."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def _pinned_tarball(root: Path, ran: Path) -> tuple[Path, str]:
    """A release tarball whose `actionlint` records that it ran, and its sha256."""
    script = f'#!/bin/sh\necho ran "$@" > {shlex.quote(str(ran))}\necho linted "$@"\n'
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        info = tarfile.TarInfo("actionlint")
        info.mode = 0o755
        info.size = len(script)
        tar.addfile(info, io.BytesIO(script.encode()))
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[os.uname().machine]
    path = root / "v1.7.12" / f"actionlint_1.7.12_linux_{arch}.tar.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(data.getvalue())
    return path, hashlib.sha256(data.getvalue()).hexdigest()


def _run_actionlint(
    tmp_path: Path, base_url: str, sha256: str | None = None
) -> subprocess.CompletedProcess[str]:
    """.ci/actionlint as it is, but downloading from base_url and, if given, pinned to sha256."""
    script = (REPO / ".ci" / "actionlint").read_text(encoding="utf-8")
    script = re.sub(r"^base_url=\S+$", f"base_url={base_url}", script, count=1, flags=re.M)
    if sha256 is not None:
        script = re.sub(r"sha256=[0-9a-f]{64}", f"sha256={sha256}", script)
    ci = tmp_path / "repo" / ".ci"
    ci.mkdir(parents=True, exist_ok=True)
    (ci / "actionlint").write_text(script, encoding="utf-8")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    return subprocess.run(
        ["bash", str(ci / "actionlint"), "-version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


needs_known_arch = pytest.mark.skipif(
    os.uname().machine not in ("x86_64", "aarch64"), reason="actionlint is pinned for these"
)


def test_actionlint_skips_in_one_line_when_it_cannot_be_downloaded(
    tmp_path: Path, release_server: tuple[str, Path]
) -> None:
    url, _ = release_server  # serves nothing: every download is a 404
    proc = _run_actionlint(tmp_path, url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    (line,) = proc.stdout.splitlines()
    assert line.startswith("actionlint: SKIP: cannot download ") and "404" in line
    assert not list((tmp_path / "cache").rglob("*.tar.gz"))


@needs_known_arch
def test_actionlint_refuses_a_download_that_does_not_match_the_pin(
    tmp_path: Path, release_server: tuple[str, Path]
) -> None:
    url, root = release_server
    ran = tmp_path / "ran"
    _pinned_tarball(root, ran)
    proc = _run_actionlint(tmp_path, url)  # still pinned to the real release's sha256
    assert proc.returncode == 1
    assert "does not match the pinned sha256" in proc.stderr
    assert not ran.exists(), "an unverified binary ran"
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]


@needs_known_arch
def test_actionlint_runs_the_verified_binary_and_checks_the_cache_each_time(
    tmp_path: Path, release_server: tuple[str, Path]
) -> None:
    url, root = release_server
    ran = tmp_path / "ran"
    served, sha256 = _pinned_tarball(root, ran)
    proc = _run_actionlint(tmp_path, url, sha256)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "linted -version\n"
    assert ran.read_text() == "ran -version\n"

    served.unlink()  # offline now: the cached tarball serves, checked again
    ran.unlink()
    assert _run_actionlint(tmp_path, url, sha256).stdout == "linted -version\n"

    (cached,) = (tmp_path / "cache").rglob("*.tar.gz")
    cached.write_bytes(cached.read_bytes() + b"tampered")
    ran.unlink()
    proc = _run_actionlint(tmp_path, url, sha256)
    assert proc.returncode == 1
    assert "no longer matches the pinned sha256" in proc.stderr
    assert not ran.exists() and not cached.exists()
