"""fsutil: files rewritten on every run are only written when their content changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpbuild.fsutil import atomic_write, read_cache, write_cache, write_if_changed


def test_write_if_changed_leaves_an_identical_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "flake.nix"
    assert write_if_changed(path, "one\n") is True
    path.chmod(0o600)
    before = path.stat()
    assert write_if_changed(path, b"one\n") is False
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert write_if_changed(path, "two\n") is True
    assert path.read_text() == "two\n"
    assert path.stat().st_mode & 0o777 == 0o600  # the mode survives the rewrite


def test_a_cache_answers_only_its_own_key(tmp_path: Path) -> None:
    cache = tmp_path / "c.json"
    assert read_cache(cache, "k") is None  # missing: a miss
    write_cache(cache, "k", {"a": [1, 2]})
    assert read_cache(cache, "k") == {"a": [1, 2]}
    assert read_cache(cache, "other") is None
    cache.write_text("{truncated")
    assert read_cache(cache, "k") is None  # corrupt: a miss


def test_a_failed_write_names_the_target_not_the_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "flake.nix"
    target.mkdir()  # a directory where the file should go
    with pytest.raises(OSError) as info:
        atomic_write(target, "x")
    assert info.value.filename == str(target)
    assert [p.name for p in tmp_path.iterdir()] == ["flake.nix"]  # no temporary file left
