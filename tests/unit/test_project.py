"""Finding the project, its settings, and `rpbuild init` creating all of it or nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rpbuild.errors import ProfileError, ProjectError
from rpbuild.profiles import load_profiles
from rpbuild.project import find_project, init_project


def _all_files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*"))


# --- discovery ----------------------------------------------------------------


def test_an_empty_profiles_directory_is_a_project_without_profiles(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "flake.lock").write_text("{}")
    below = tmp_path / "src" / "deep"
    below.mkdir(parents=True)
    proj = find_project(start=below)
    assert not proj.builtin
    assert proj.root == tmp_path.resolve()
    with pytest.raises(ProfileError) as info:
        load_profiles(proj.profiles_dir)
    assert str(info.value) == (
        f"{tmp_path.resolve() / 'profiles'}: no profiles (*.toml) here; add one or run rpbuild init"
    )


def test_an_rpbuild_toml_alone_makes_a_project(tmp_path: Path) -> None:
    (tmp_path / "rpbuild.toml").write_text("")
    proj = find_project(start=tmp_path)
    assert not proj.builtin and proj.root == tmp_path.resolve()
    assert find_project(tmp_path).root == tmp_path.resolve()
    with pytest.raises(ProfileError, match=r"profiles: no such directory"):
        load_profiles(proj.profiles_dir)


def test_a_bare_profiles_directory_above_a_checkout_is_not_a_project(tmp_path: Path) -> None:
    """Say ~/profiles holding shell profiles, above a rosenpass checkout."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "bashrc").write_text("")
    checkout = tmp_path / "src" / "rosenpass"
    checkout.mkdir(parents=True)
    assert find_project(start=checkout).builtin


def test_a_directory_with_neither_uses_the_builtin_profiles(tmp_path: Path) -> None:
    (tmp_path / "profile").mkdir()  # near misses do not count
    (tmp_path / "profiles").write_text("a file, not the directory")
    proj = find_project(start=tmp_path)
    assert proj.builtin
    assert "minimal" in load_profiles(proj.profiles_dir)


def test_a_settings_file_that_is_a_directory_is_named(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "rpbuild.toml").mkdir()
    message = r"rpbuild\.toml: a directory; rpbuild\.toml must be a TOML file"
    with pytest.raises(ProjectError, match=message):
        find_project(tmp_path)
    with pytest.raises(ProjectError, match=message):
        find_project(start=tmp_path)


def test_a_settings_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    (tmp_path / "rpbuild.toml").symlink_to("rpbuild.toml")
    with pytest.raises(ProjectError, match=r"rpbuild\.toml: cannot read: "):
        find_project(start=tmp_path)


def test_project_option_must_name_a_directory(tmp_path: Path) -> None:
    file = tmp_path / "flake.lock"
    file.write_text("{}")
    with pytest.raises(ProjectError, match=r"flake\.lock: not a directory; --project takes"):
        find_project(file)
    with pytest.raises(ProjectError, match=r"nope: no such directory; --project takes"):
        find_project(tmp_path / "nope")
    with pytest.raises(ProjectError, match=r"not an rpbuild project") as info:
        find_project(tmp_path)
    assert info.value.hint == f"run `rpbuild init {tmp_path}` to start one"


def test_a_lock_that_is_not_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "flake.lock").mkdir()
    proj = find_project(tmp_path)
    with pytest.raises(ProjectError) as info:
        proj.require_lock()
    assert str(info.value) == (
        f"{proj.lock_path}: a directory, not a file; remove it, then restore it from "
        "version control or create it with `rpbuild lock update`"
    )
    (tmp_path / "flake.lock").rmdir()
    with pytest.raises(ProjectError, match=r"flake\.lock: missing flake\.lock; restore it"):
        proj.require_lock()
    (tmp_path / "flake.lock").write_text("{}")
    assert proj.require_lock() == proj.lock_path


def test_only_hidden_toml_files_do_not_make_a_project(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / ".#minimal.toml").symlink_to("user@host.1:2")
    assert find_project(start=tmp_path).builtin


# --- init ---------------------------------------------------------------------


def test_init_creates_every_file(tmp_path: Path) -> None:
    target = tmp_path / "new" / "project"
    created = init_project(target)
    assert {p.relative_to(target).parts[0] for p in created} == {
        "profiles",
        "templates",
        "flake.lock",
    }
    assert all(p.is_file() for p in created)
    assert not find_project(target).builtin


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        # a planned directory that is a file
        (
            lambda t: (t.mkdir(), (t / "templates").write_text("")),
            r"templates: exists and is not a directory, so .*templates/\S+ cannot be created$",
        ),
        # the target itself is a file
        (
            lambda t: t.write_text(""),
            r"project: exists and is not a directory, so .* cannot be created$",
        ),
        # a planned file that exists, even as a directory
        (
            lambda t: (t.mkdir(), (t / "flake.lock").mkdir()),
            r"flake\.lock: already exists \(a directory\); not overwriting anything$",
        ),
        # a dangling symlink where a directory goes
        (
            lambda t: (t.mkdir(), (t / "templates").symlink_to("nowhere")),
            r"templates: exists and is not a directory",
        ),
    ],
)
def test_init_refuses_before_writing_anything(
    tmp_path: Path, setup: Callable[[Path], object], message: str
) -> None:
    target = tmp_path / "project"
    setup(target)
    before = _all_files(tmp_path)
    with pytest.raises(ProjectError, match=message):
        init_project(target)
    assert _all_files(tmp_path) == before


def test_init_under_a_file_refuses(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("")
    with pytest.raises(ProjectError, match=r"/a: exists and is not a directory"):
        init_project(tmp_path / "a" / "b" / "c")
    assert _all_files(tmp_path) == [Path("a")]


def test_init_removes_what_it_wrote_when_a_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rpbuild import fsutil

    real = fsutil.atomic_write
    calls: list[Path] = []

    def failing(path: Path, data: str | bytes, *, mode: int | None = None) -> None:
        calls.append(path)
        if len(calls) == 4:
            raise OSError(28, "No space left on device", str(path))
        real(path, data, mode=mode)

    monkeypatch.setattr(fsutil, "atomic_write", failing)
    (tmp_path / "keep").mkdir()
    target = tmp_path / "keep" / "project"
    with pytest.raises(ProjectError) as info:
        init_project(target)
    assert str(info.value) == (
        f"{calls[3]}: cannot write: No space left on device; nothing was created"
    )
    assert len(calls) == 4
    assert _all_files(tmp_path) == [Path("keep")]  # the directory that was there stays


def test_init_refuses_an_empty_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`rpbuild init ''` once created the project in the current directory."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectError, match=r"^init DIRECTORY: empty \(''\)"):
        init_project("")
    assert _all_files(tmp_path) == []
    assert init_project(".")  # the current directory, when the user says so
