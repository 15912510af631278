"""`rpbuild profiles` and `rpbuild render` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import RunCli


def test_profiles_table_and_json(rpbuild: RunCli, project: Path) -> None:
    table = rpbuild("profiles", cwd=project)
    assert table.returncode == 0, table.stderr
    for word in ("minimal", "with-wireguard", "debug", "coreutils-full", "iana-etc", "required"):
        assert word in table.stdout
    document = json.loads(rpbuild("profiles", "--json", cwd=project).stdout)
    assert document["format"] == "rpbuild-profiles/1"
    data = document["profiles"]
    assert data["debug"]["chain"] == ["debug", "with-wireguard", "minimal"]
    # rosenpass from nixpkgs (the default rosenpass_source): rp comes in rosenpass-tools.
    pkg, tools = data["minimal"]["packages"][:2]
    assert pkg == {
        "name": "rosenpass",
        "source": "nixpkgs",
        "attr": "rosenpass",
        "description": pkg["description"],
        "reason": pkg["reason"],
        "required": True,
        "from": "minimal",
    }
    assert (tools["name"], tools["source"], tools["attr"]) == (
        "rosenpass-tools",
        "nixpkgs",
        "rosenpass-tools",
    )
    (project / "rpbuild.toml").write_text('rosenpass_source = "flake"\n')
    flake = json.loads(rpbuild("profiles", "--json", cwd=project).stdout)["profiles"]["minimal"][
        "packages"
    ]
    assert (flake[0]["source"], flake[1]["name"]) == ("rosenpass", "coreutils-full")
    one = json.loads(rpbuild("profiles", "show", "with-wireguard", "--json", cwd=project).stdout)
    assert one["format"] == "rpbuild-profile/1" and one["name"] == "with-wireguard"
    assert one["image"]["max_layers"] == 100 and "maxLayers" not in one["image"]
    # The group's --json reaches the command instead of being dropped for a table.
    grouped = rpbuild("profiles", "--json", "show", "with-wireguard", cwd=project)
    assert json.loads(grouped.stdout) == one
    shown = rpbuild("profiles", "show", "debug", cwd=project)
    assert "debug -> with-wireguard -> minimal" in shown.stdout


def test_render_twice_is_identical_and_check_catches_edits(rpbuild: RunCli, project: Path) -> None:
    assert rpbuild("render", cwd=project).returncode == 0
    first = (project / "flake.nix").read_bytes()
    again = rpbuild("render", cwd=project)
    assert again.returncode == 0 and "up to date" in again.stdout
    assert (project / "flake.nix").read_bytes() == first
    assert rpbuild("render", "--check", cwd=project).returncode == 0

    minimal = project / "profiles" / "minimal.toml"
    minimal.write_text(minimal.read_text().replace("GNU grep", "GNU grep, edited"))
    check = rpbuild("render", "--check", cwd=project)
    assert check.returncode == 1
    assert '-                  "description": "GNU grep",' in check.stdout
    assert '+                  "description": "GNU grep, edited",' in check.stdout
    assert (project / "flake.nix").read_bytes() == first  # --check writes nothing


def test_render_check_diff_shows_profile_change(rpbuild: RunCli, project: Path) -> None:
    rpbuild("render", cwd=project)
    minimal = project / "profiles" / "minimal.toml"
    minimal.write_text(minimal.read_text().replace('tag = "minimal"', 'tag = "small"'))
    check = rpbuild("render", "--check", cwd=project)
    assert check.returncode == 1
    assert '-                "tag": "minimal"' in check.stdout
    assert '+                "tag": "small"' in check.stdout
    assert check.stderr.startswith("rpbuild: error: ")


def test_the_repository_flake_is_rendered(rpbuild: RunCli) -> None:
    repo = Path(__file__).resolve().parent.parent
    result = rpbuild("render", "--check", cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr


def _one_line_error(result_stderr: str) -> str:
    lines = [ln for ln in result_stderr.splitlines() if not ln.startswith("rpbuild: hint:")]
    assert len(lines) == 1, result_stderr
    assert "Traceback" not in result_stderr
    return lines[0]


def test_user_errors_are_one_line_and_write_nothing(rpbuild: RunCli, project: Path) -> None:
    rpbuild("render", cwd=project)
    before = (project / "flake.nix").read_bytes()
    minimal = project / "profiles" / "minimal.toml"
    good = minimal.read_text()

    minimal.write_text(good + "\n[image\n")
    r = rpbuild("render", cwd=project)
    assert r.returncode == 2
    assert "profiles/minimal.toml: invalid TOML" in _one_line_error(r.stderr)
    assert "line 52" in r.stderr or "line" in r.stderr

    minimal.write_text(good.replace("budget =", "budgett ="))
    r = rpbuild("render", cwd=project)
    assert "unknown key 'budgett' (did you mean 'budget'?)" in _one_line_error(r.stderr)

    minimal.write_text(good)
    debug = project / "profiles" / "debug.toml"
    debug_text = debug.read_text()
    debug.write_text(debug_text + '\n[[package]]\nname = "gnugrep"\n')
    r = rpbuild("render", cwd=project)
    assert "package 'gnugrep' is listed twice (already in profile 'minimal')" in _one_line_error(
        r.stderr
    )
    assert (project / "flake.nix").read_bytes() == before
    debug.write_text(debug_text)

    r = rpbuild("profiles", "show", "nope", cwd=project)
    assert r.returncode == 2
    assert "unknown profile 'nope'" in _one_line_error(r.stderr)


def test_missing_lock_is_named(rpbuild: RunCli, project: Path) -> None:
    (project / "flake.lock").unlink()
    # Found from the current directory: it has profiles, so it is a project without a lock
    # (not a reason to fall back to the built-in profiles).
    for args, cwd in (([], project / "profiles"), (["--project", str(project)], project.parent)):
        r = rpbuild(*args, "image", "--profile", "minimal", cwd=cwd)
        assert r.returncode != 0
        assert "flake.lock: missing flake.lock" in _one_line_error(r.stderr)
        assert "rpbuild lock update" in r.stderr


def test_a_template_that_raises_is_one_line_naming_it(rpbuild: RunCli, project: Path) -> None:
    template = project / "templates" / "flake.nix.j2"
    template.write_text(template.read_text() + "{{ 1/0 }}\n")
    line = len(template.read_text().splitlines())
    for args in (["render"], ["render", "--check"], ["image", "--profile", "minimal"]):
        r = rpbuild(*args, cwd=project)
        assert r.returncode == 2, (args, r.stderr)
        error = _one_line_error(r.stderr)
        assert error == (
            f"rpbuild: error: {template}:{line}: ZeroDivisionError: division by zero"
        ), args
    assert not (project / "flake.nix").exists()


def test_a_template_that_is_not_utf8_is_named(rpbuild: RunCli, project: Path) -> None:
    template = project / "templates" / "flake.nix.j2"
    template.write_bytes(template.read_bytes() + b"# \xff\n")
    r = rpbuild("render", cwd=project)
    assert r.returncode == 2
    assert f"{template}: not UTF-8 text" in _one_line_error(r.stderr)
    assert not (project / "flake.nix").exists()


def test_check_of_a_flake_that_is_not_utf8_reports_a_difference(
    rpbuild: RunCli, project: Path
) -> None:
    (project / "flake.nix").write_bytes(b"\xff\xfe not a flake\n")
    r = rpbuild("render", "--check", cwd=project)
    assert r.returncode == 1
    assert "not what the profiles and templates produce" in _one_line_error(r.stderr)
    assert r.stdout.startswith("--- flake.nix (on disk, not UTF-8)\n")
    assert rpbuild("render", cwd=project).returncode == 0
    assert rpbuild("render", "--check", cwd=project).returncode == 0


def test_profiles_that_are_not_files_are_named(rpbuild: RunCli, project: Path) -> None:
    profiles = project / "profiles"
    cases = [
        ("self.toml", "a symlink that loops back to itself, not a profile file"),
        ("gone.toml", "a symlink to nowhere.toml, which does not exist"),
        ("x.toml", "a directory, not a profile file"),
    ]
    for name, message in cases:
        path = profiles / name
        if name == "self.toml":
            path.symlink_to(name)
        elif name == "gone.toml":
            path.symlink_to("nowhere.toml")
        else:
            path.mkdir()
        r = rpbuild("render", cwd=project)
        assert r.returncode == 2
        assert _one_line_error(r.stderr) == f"rpbuild: error: profiles/{name}: {message}"
        if path.is_symlink():
            path.unlink()
        else:
            path.rmdir()
    assert not (project / "flake.nix").exists()


def test_init_refuses_up_front_and_writes_nothing(rpbuild: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "new"
    target.mkdir()
    (target / "templates").write_text("not a directory")
    r = rpbuild("init", str(target))
    assert r.returncode == 2
    assert f"{target / 'templates'}: exists and is not a directory" in _one_line_error(r.stderr)
    assert sorted(p.name for p in target.iterdir()) == ["templates"]
    (target / "templates").unlink()
    again = rpbuild("init", str(target))
    assert again.returncode == 0, again.stderr
    assert (target / "profiles" / "minimal.toml").is_file()
    empty = rpbuild("init", "", cwd=tmp_path)  # not the current directory by accident
    assert empty.returncode == 2 and "init DIRECTORY: empty" in _one_line_error(empty.stderr)
    assert not (tmp_path / "profiles").exists()


def test_an_empty_profiles_directory_is_an_error_not_a_fallback(
    rpbuild: RunCli, tmp_path: Path
) -> None:
    root = tmp_path / "mine"
    (root / "profiles").mkdir(parents=True)
    (root / "flake.lock").write_text("{}")  # profiles/ next to a lock: meant as a project
    (root / "src").mkdir()
    for cwd in (root, root / "src"):
        r = rpbuild("profiles", cwd=cwd)
        assert r.returncode == 2
        assert _one_line_error(r.stderr) == (
            f"rpbuild: error: {root / 'profiles'}: no profiles (*.toml) here; "
            "add one or run rpbuild init"
        )
    # Neither profiles/ nor rpbuild.toml: not a project, the built-in profiles are used.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = rpbuild("profiles", "--json", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert "minimal" in json.loads(r.stdout)["profiles"]


def test_project_errors_are_named(rpbuild: RunCli, project: Path) -> None:
    (project / "rpbuild.toml").mkdir()
    r = rpbuild("render", cwd=project)
    assert r.returncode == 2
    assert f"{project / 'rpbuild.toml'}: a directory" in _one_line_error(r.stderr)
    r = rpbuild("--project", str(project / "flake.lock"), "render")
    assert r.returncode == 2
    assert _one_line_error(r.stderr) == (
        f"rpbuild: error: {project / 'flake.lock'}: not a directory; "
        "--project takes a project directory"
    )


def test_a_label_rpbuild_records_is_refused(rpbuild: RunCli, project: Path) -> None:
    minimal = project / "profiles" / "minimal.toml"
    text = minimal.read_text()
    assert "[image.labels]\n" in text
    minimal.write_text(
        text.replace(
            "[image.labels]\n", '[image.labels]\n"org.opencontainers.image.revision" = "x"\n'
        )
    )
    r = rpbuild("render", cwd=project)
    assert r.returncode == 2
    assert (
        "profiles/minimal.toml: image.labels: 'org.opencontainers.image.revision' is set by "
        "rpbuild itself"
    ) in _one_line_error(r.stderr)


def test_check_without_a_flake_says_it_is_missing(rpbuild: RunCli, project: Path) -> None:
    """Not a diff of the whole flake against nothing."""
    r = rpbuild("render", "--check", cwd=project)
    assert r.returncode == 1
    assert r.stdout == ""
    assert _one_line_error(r.stderr) == (
        f"rpbuild: error: {project / 'flake.nix'}: missing; run `rpbuild render`"
    )
    (project / "flake.nix").mkdir()
    r = rpbuild("render", "--check", cwd=project)
    assert r.returncode == 2
    assert r.stdout == ""
    assert _one_line_error(r.stderr) == (
        f"rpbuild: error: {project / 'flake.nix'}: a directory, not a file; "
        "remove it, then run `rpbuild render`"
    )


def test_editor_lock_files_in_profiles_are_ignored(rpbuild: RunCli, project: Path) -> None:
    (project / "profiles" / ".#minimal.toml").symlink_to("user@host.4242:1700000000")
    r = rpbuild("profiles", "--json", cwd=project)
    assert r.returncode == 0, r.stderr
    assert list(json.loads(r.stdout)["profiles"]) == ["debug", "minimal", "with-wireguard"]


def test_a_long_profile_name_is_too_long_not_misspelt(rpbuild: RunCli, project: Path) -> None:
    name = "a" * 200
    (project / "profiles" / f"{name}.toml").write_text('extends = "minimal"\n')
    r = rpbuild("profiles", cwd=project)
    assert r.returncode == 2
    assert _one_line_error(r.stderr) == (
        f"rpbuild: error: profiles/{name}.toml: profile name too long (200 characters; at most 63)"
    )


def test_show_piped_cuts_nothing_and_gives_sizes_in_mib(rpbuild: RunCli, project: Path) -> None:
    minimal = project / "profiles" / "minimal.toml"
    long_value = "https://example.org/" + "x" * 300
    text = minimal.read_text().replace(
        "[image.labels]\n", f'[image.labels]\n"org.example.long" = "{long_value}"\n'
    )
    minimal.write_text(text)
    for columns in ("80", "200"):
        r = rpbuild("profiles", "show", "minimal", cwd=project, env={"COLUMNS": columns})
        assert r.returncode == 0, r.stderr
        assert "…" not in r.stdout
        assert f"label       org.example.long={long_value}\n" in r.stdout
        assert "budget      110.0 MiB\n" in r.stdout
        for description in ("/etc/protocols and /etc/services", "Linux networking utilities"):
            assert description in r.stdout
    data = json.loads(rpbuild("profiles", "show", "minimal", "--json", cwd=project).stdout)
    assert data["budget"] == 110 * 1024 * 1024
