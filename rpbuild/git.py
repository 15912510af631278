"""The few git questions a release asks, each one `git` call through rpbuild.process.

A release must come from a commit: these answer whether the project's files are
committed and unchanged, and which commit that is.
"""

from __future__ import annotations

from pathlib import Path

from rpbuild import process
from rpbuild.errors import CommandError, ToolMissing


class GitError(CommandError):
    """git failed for a reason other than the answer being "no"."""


def _git(root: Path, *args: str, check: bool = True) -> process.Result:
    if process.which("git") is None:
        raise ToolMissing("git is not installed", hint="apt-get install git")
    # core.quotepath=off: paths with non-ASCII characters print as themselves.
    return process.run(
        ["git", "-C", str(root), "-c", "core.quotepath=off", *args],
        what=f"git {args[0]}",
        error=GitError,
        check=check,
        env={"GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
    )


def is_work_tree(root: Path) -> bool:
    result = _git(root, "rev-parse", "--is-inside-work-tree", check=False)
    return result.returncode == 0 and result.stdout.strip() == "true"


def head_commit(root: Path) -> str | None:
    """The checked-out commit, or None in a repository without commits."""
    result = _git(root, "rev-parse", "--verify", "--quiet", "HEAD", check=False)
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def is_committed(root: Path, path: Path) -> bool:
    """Whether the file is in HEAD's tree (staged but uncommitted does not count)."""
    rel = path.resolve().relative_to(root.resolve()).as_posix()
    result = _git(root, "cat-file", "-e", f"HEAD:./{rel}", check=False)
    return result.returncode == 0


def status(root: Path, *paths: Path, exclude: tuple[str, ...] = ()) -> list[str]:
    """`git status --porcelain` lines (staged, unstaged and untracked) under root or paths,
    leaving out the exclude paths (relative to root)."""
    targets = [str(p) for p in paths] or ["."]
    targets += [f":(exclude){name}" for name in exclude]
    result = _git(root, "status", "--porcelain=v1", "--untracked-files=all", "--", *targets)
    return [line for line in result.stdout.splitlines() if line.strip()]
