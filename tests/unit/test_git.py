"""rpbuild.git against the real git in a throwaway repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpbuild import git as rgit
from tests.conftest import commit_all, git


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    return root


def test_a_fresh_repository_has_no_commit(repo: Path, tmp_path: Path) -> None:
    assert rgit.is_work_tree(repo)
    assert rgit.head_commit(repo) is None
    outside = tmp_path / "plain"
    outside.mkdir()
    assert not rgit.is_work_tree(outside)


def test_committed_status_and_exclusions(repo: Path) -> None:
    (repo / "flake.lock").write_text("{}\n")
    commit = commit_all(repo, "lock")
    assert rgit.head_commit(repo) == commit
    assert rgit.is_committed(repo, repo / "flake.lock")
    (repo / "staged.txt").write_text("x")
    git(repo, "add", "staged.txt")
    assert not rgit.is_committed(repo, repo / "staged.txt")  # staged is not committed
    (repo / ".rpbuild").mkdir()
    (repo / ".rpbuild" / "state.json").write_text("{}")
    (repo / "naïve.txt").write_text("x")
    assert rgit.status(repo, exclude=(".rpbuild",)) == ["A  staged.txt", "?? naïve.txt"]
    assert rgit.status(repo, repo / "flake.lock") == []
