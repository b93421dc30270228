"""The version of the user's code: git commit and whether the work tree has changes.

One ``git status`` call answers both. No git, not a repository, a repository without a
commit, a timeout or any git error give ``None``: capturing the code version never stops a
run from starting. Untracked files do not make a tree dirty (outputs, stores and caches
usually are untracked); modified or staged tracked files do.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class GitInfo:
    commit: str | None
    dirty: bool | None


NO_GIT = GitInfo(None, None)


def git_info(code_dir: Path) -> GitInfo:
    """The commit checked out in the repository holding ``code_dir``, and its dirty flag."""
    if not code_dir.is_dir():
        return NO_GIT
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    try:
        proc = subprocess.run(
            ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"],
            cwd=code_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return NO_GIT
    if proc.returncode != 0:
        return NO_GIT
    commit: str | None = None
    dirty = False
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2].strip()
            commit = oid if oid != "(initial)" else None
        elif line and not line.startswith("#"):
            dirty = True
    if commit is None:
        return NO_GIT
    return GitInfo(commit, dirty)
