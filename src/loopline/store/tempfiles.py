"""Temporary files that say who wrote them, so the leftovers of killed writers can be swept.

A writer killed mid-write (``kill -9``, OOM killer, power loss) cannot remove its temporary
file. To tell such a leftover from the file of a writer still at work, a temporary name
carries its writer: ``<prefix><owner>-<pid>-<random><suffix>``, where ``owner`` is a short
hash of the host name and (on Linux) the pid namespace, the place where the pid means
something. A temporary file is *stale*, and :func:`sweep` removes it, when

- its writer ran here (same owner) and that process is gone (no such pid, or a zombie);
  a writer that is still alive keeps its file, however long it takes; or
- it was not modified for ``grace_s`` seconds and its writer cannot be asked: another
  host or container sharing the folder, or a name without an owner (from an older
  loopline). A live writer keeps writing, which keeps its file's mtime fresh.

Sweeping is best effort: a file that vanishes meanwhile (its writer finished, or another
sweeper won) or that cannot be removed (another user's file in a shared ``/tmp``) is
skipped, never an error.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: How long a file whose writer cannot be asked must sit untouched before it is removed.
DEFAULT_GRACE_S = 3600.0

_NAME_RE = re.compile(r"(?:^|-)(?P<owner>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})-[0-9a-f]{12}(?:\.|$)")


@dataclass(frozen=True)
class TempFile:
    """A temporary file found by :func:`stale`."""

    path: Path
    size: int
    #: Why it is stale: "writer gone" (its process is dead) or "untouched for N s".
    why: str


@functools.cache
def owner() -> str:
    """This host (and pid namespace): 8 hex characters that go into temporary names."""
    place = socket.gethostname()
    try:
        place += f"|pidns:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        pass  # not Linux: the host name alone
    return hashlib.sha256(place.encode("utf-8", "replace")).hexdigest()[:8]


def temp_name(prefix: str, suffix: str) -> str:
    """A fresh temporary file name that names its writer (this process)."""
    return f"{prefix}{owner()}-{os.getpid()}-{secrets.token_hex(6)}{suffix}"


def create(
    folder: str | os.PathLike[str], prefix: str, suffix: str, *, mode: int = 0o666
) -> tuple[int, str]:
    """Create a new, empty temporary file in ``folder``; return its descriptor and path.

    The default ``mode`` honours the umask (unlike ``mkstemp``'s 0600), so a file renamed
    into place gets the permissions of any file the user creates; pass ``0o600`` for a
    private copy in a shared folder.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = os.path.join(folder, temp_name(prefix, suffix))
        try:
            return os.open(name, flags, mode), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(folder))


def is_stale(name: str, mtime: float, *, grace_s: float = DEFAULT_GRACE_S) -> str | None:
    """Why the temporary file ``name`` (modified at ``mtime``) is stale, or None if it is not."""
    match = _NAME_RE.search(name)
    if match is not None and match["owner"] == owner():
        return None if _alive(int(match["pid"])) else "writer gone"
    age = time.time() - mtime
    if age >= grace_s:
        return f"untouched for {int(age)} s"
    return None


def stale(
    folder: str | os.PathLike[str],
    *,
    prefix: str = "",
    suffix: str = "",
    grace_s: float = DEFAULT_GRACE_S,
    dirs: bool = False,
) -> list[TempFile]:
    """The stale temporary files of ``folder`` whose names start with ``prefix`` and end
    with ``suffix``, sorted by path (with ``dirs``, temporary folders instead of files;
    their size is 0). A missing or unreadable folder has none."""
    found: list[TempFile] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return found
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        try:
            wanted = entry.is_dir if dirs else entry.is_file
            if not wanted(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # gone meanwhile
        why = is_stale(name, st.st_mtime, grace_s=grace_s)
        if why is not None:
            found.append(TempFile(Path(entry.path), 0 if dirs else st.st_size, why))
    found.sort(key=lambda f: f.path)
    return found


def sweep(
    folder: str | os.PathLike[str],
    *,
    prefix: str = "",
    suffix: str = "",
    grace_s: float = DEFAULT_GRACE_S,
    dirs: bool = False,
) -> list[TempFile]:
    """Remove the stale temporary files (with ``dirs``, folders and what they hold) of
    ``folder`` (see :func:`stale`); return those removed."""
    import shutil

    removed: list[TempFile] = []
    for temp in stale(folder, prefix=prefix, suffix=suffix, grace_s=grace_s, dirs=dirs):
        try:
            if dirs:
                shutil.rmtree(temp.path)
            else:
                os.unlink(temp.path)
        except OSError:
            continue  # finished, swept by someone else, or not ours to remove
        removed.append(temp)
    return removed


@contextmanager
def directory(prefix: str, parent: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A new temporary folder (in ``parent``, default the system's) named after its
    writer, removed on exit; the leftovers of killed writers are swept when the next one
    is made, so a ``kill -9`` mid-write never leaves staged data behind for good."""
    import shutil
    import tempfile

    root = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    sweep(root, prefix=prefix, dirs=True)
    for _ in range(100):
        path = root / temp_name(prefix, "")
        try:
            path.mkdir(mode=0o700)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, "no unused temporary folder name", str(root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is alive; True when it cannot be told."""
    if pid <= 0 or os.name != "posix":
        return True  # os.kill(pid, 0) would terminate the process on Windows
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: alive, but another user's
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")  # a zombie has finished: nothing writes any more
