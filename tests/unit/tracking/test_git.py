"""The code version of a run: commit and dirty flag, or None without git."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from loopline.tracking import Tracker
from loopline.tracking.gitinfo import GitInfo, git_info

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=repo,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "code"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "train.py").write_text("print('hi')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def test_clean_dirty_and_untracked(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert git_info(repo) == GitInfo(head, False)
    (repo / "notes.txt").write_text("untracked files do not count\n")
    assert git_info(repo) == GitInfo(head, False)
    (repo / "train.py").write_text("print('changed')\n")
    assert git_info(repo) == GitInfo(head, True)
    sub = repo / "pkg"
    sub.mkdir()
    assert git_info(sub).commit == head  # any folder inside the work tree


def test_no_repository_no_commit_no_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert git_info(plain) == GitInfo(None, None)
    assert git_info(tmp_path / "missing") == GitInfo(None, None)
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    assert git_info(empty) == GitInfo(None, None)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert git_info(plain) == GitInfo(None, None)


def test_runs_record_the_code_version(sqlite_tracker: Tracker, repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    with sqlite_tracker.start_run("exp", code_dir=repo) as run:
        pass
    (repo / "train.py").write_text("print('changed')\n")
    with sqlite_tracker.start_run("exp", code_dir=repo) as dirty:
        pass
    with sqlite_tracker.start_run("exp", code_dir=repo, capture_git=False) as skipped:
        pass
    assert (
        sqlite_tracker.get_run(run.id).git_commit,
        sqlite_tracker.get_run(run.id).git_dirty,
    ) == (
        head,
        False,
    )
    assert sqlite_tracker.get_run(dirty.id).git_dirty is True
    assert sqlite_tracker.get_run(skipped.id).git_commit is None
