"""The local-folder object store: one file per key, written atomically.

Every put writes to a temporary file in ``<root>/.tmp/`` (same filesystem as the
objects), fsyncs it, renames it over the final path with :func:`os.replace` and fsyncs
the folder. A reader therefore sees the old object or the new one, never half of one,
and a writer killed mid-put leaves no visible object, only a stray temporary file that
:meth:`LocalObjectStore.cleanup_temp` removes.

The root folder is created lazily by the first ``put``, but only when its parent
exists: a typo in ``artifacts_url`` should fail loudly rather than grow a new tree of
folders somewhere. Reading from a store whose root does not exist yet behaves like an
empty store; :meth:`LocalObjectStore.check` reports it as unreachable.

The first key part ``.tmp`` is reserved for the temporary files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat as stat_mod
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from loopline.errors import (
    InvalidKeyError,
    ObjectNotFoundError,
    StoreFullError,
    StoreUnreachableError,
)
from loopline.store.objects.base import CHUNK_SIZE, ObjectInfo, validate_key, validate_prefix

if TYPE_CHECKING:
    from loopline.config import S3Settings

TEMP_DIR = ".tmp"
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_INIT_HINT = "Create the project with: loopline init (or fix artifacts_url in loopline.toml)"


class LocalObjectStore:
    """Objects as files under ``root``; keys are relative paths with '/' separators."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root).expanduser().resolve()
        self._tmp = self._root / TEMP_DIR

    @classmethod
    def from_url(cls, url: str, s3: S3Settings | None = None) -> LocalObjectStore:
        """A store for a folder path or a ``file://`` URL (``s3`` is ignored)."""
        if url.startswith("file://"):
            parts = urlsplit(url)
            if parts.netloc not in ("", "localhost"):
                raise StoreUnreachableError(
                    url,
                    f"file:// URLs on another host ({parts.netloc}) are not supported",
                    hint="Use file:///absolute/path or a plain folder path",
                )
            path = unquote(parts.path)
        else:
            path = url
        if not path:
            raise StoreUnreachableError(url, "the URL names no folder", hint=_INIT_HINT)
        return cls(path)

    @property
    def root(self) -> Path:
        return self._root

    @property
    def url(self) -> str:
        return str(self._root)

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self._root)!r})"

    # -- writing ---------------------------------------------------------------------------

    def put(self, key: str, data: bytes | IO[bytes]) -> int:
        final = self._path_for(key)
        self._ensure_root()
        self._tmp.mkdir(exist_ok=True)
        fd, tmp_name = _create_temp(self._tmp, "put-")
        try:
            try:
                size = _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            created = self._make_parents(key, final.parent)
            try:
                os.replace(tmp_name, final)
            except (IsADirectoryError, NotADirectoryError) as exc:
                raise _conflict(key) from exc
            except OSError as exc:
                # Renaming onto an existing folder: EISDIR on Linux, ENOTEMPTY/EEXIST elsewhere.
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and final.is_dir():
                    raise _conflict(key) from exc
                raise
        except OSError as exc:
            _unlink_quietly(tmp_name)
            if exc.errno in _FULL_ERRNOS:
                raise StoreFullError(key, self.url, _reason(exc)) from exc
            raise
        except BaseException:
            _unlink_quietly(tmp_name)
            raise
        # The rename is durable only once the folders holding it are synced.
        for folder in (final.parent, *created):
            _fsync_dir(folder)
        return size

    def delete(self, key: str) -> None:
        path = self._path_for(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return  # no object under that key
        except PermissionError:
            if path.is_dir():  # macOS reports EPERM for unlink() on a folder
                return
            raise

    def cleanup_temp(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files older than ``older_than_s`` seconds; return how many.

        Temporary files are left behind only by writers that were killed mid-put. A
        live writer keeps touching its file, so a generous age never removes its work;
        ``cleanup_temp(0)`` is safe only while no other process is writing.
        """
        if not self._tmp.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        with os.scandir(self._tmp) as entries:
            for entry in entries:
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    if older_than_s > 0 and entry.stat(follow_symlinks=False).st_mtime > cutoff:
                        continue
                    os.unlink(entry.path)
                    removed += 1
                except FileNotFoundError:
                    continue  # its writer finished (or another cleanup won) meanwhile
        return removed

    # -- reading ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def open(self, key: str) -> IO[bytes]:
        path = self._path_for(key)
        try:
            f = path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFoundError(key, self.url) from exc
        if not stat_mod.S_ISREG(os.fstat(f.fileno()).st_mode):
            f.close()
            raise ObjectNotFoundError(key, self.url)
        return f

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFoundError:
            return False
        return True

    def stat(self, key: str) -> ObjectInfo:
        path = self._path_for(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFoundError(key, self.url) from exc
        if not stat_mod.S_ISREG(st.st_mode):
            raise ObjectNotFoundError(key, self.url)
        return ObjectInfo(key=key, size=st.st_size, etag=f"{st.st_size}-{st.st_mtime_ns}")

    def list(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        folder_part = prefix if prefix.endswith("/") else prefix.rpartition("/")[0]
        start = self._root / folder_part if folder_part else self._root
        if not _is_inside(start, self._root, follow=True):
            raise InvalidKeyError(prefix, "resolves outside the store (through a symbolic link)")
        if not start.is_dir():
            return iter(())
        keys = [k for k in self._walk(start, folder_part.rstrip("/")) if k.startswith(prefix)]
        keys.sort()
        return iter(keys)

    def _walk(self, folder: Path, rel: str) -> Iterator[str]:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return  # removed while we walked
        for entry in entries:
            key = f"{rel}/{entry.name}" if rel else entry.name
            if not rel and entry.name == TEMP_DIR:
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._walk(Path(entry.path), key)
            elif entry.is_file(follow_symlinks=False):
                yield key

    # -- health ----------------------------------------------------------------------------

    def check(self) -> None:
        if not self._root.is_dir():
            reason = (
                "the folder does not exist"
                if not self._root.exists()
                else "the path exists but is not a folder"
            )
            raise StoreUnreachableError(self.url, reason, hint=_INIT_HINT)
        try:
            self._tmp.mkdir(exist_ok=True)
            fd, name = _create_temp(self._tmp, "check-")
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            raise StoreUnreachableError(
                self.url,
                f"the folder cannot be written ({_reason(exc)})",
                hint="Check the folder's permissions and free space",
            ) from exc

    # -- paths -----------------------------------------------------------------------------

    def _path_for(self, key: str) -> Path:
        validate_key(key)
        if key.split("/", 1)[0] == TEMP_DIR:
            raise InvalidKeyError(key, f"the first part {TEMP_DIR!r} is reserved by the store")
        path = self._root / key
        # validate_key already refuses '..'; this catches symlinks pointing outside.
        if not _is_inside(path, self._root, follow=True):
            raise InvalidKeyError(key, "resolves outside the store (through a symbolic link)")
        return path

    def _ensure_root(self) -> None:
        if self._root.is_dir():
            return
        if not self._root.parent.is_dir():
            raise StoreUnreachableError(
                self.url, "neither the folder nor its parent exists", hint=_INIT_HINT
            )
        try:
            self._root.mkdir(exist_ok=True)
        except FileExistsError as exc:  # a file sits where the folder should be
            raise StoreUnreachableError(
                self.url, "the path exists but is not a folder", hint=_INIT_HINT
            ) from exc
        _fsync_dir(self._root.parent)

    def _make_parents(self, key: str, folder: Path) -> tuple[Path, ...]:
        """Create the folders of ``key``; return the parents of the ones created."""
        missing: list[Path] = []
        current = folder
        while current != self._root and not current.is_dir():
            missing.append(current)
            current = current.parent
        try:
            for path in reversed(missing):
                path.mkdir(exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise _conflict(key) from exc
        return tuple(path.parent for path in missing)


def _create_temp(folder: Path, prefix: str) -> tuple[int, str]:
    """A new, empty temporary file. Unlike mkstemp (mode 0600), it honours the umask,
    so objects get the same permissions as any file the user creates."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = os.path.join(folder, f"{prefix}{secrets.token_hex(8)}.part")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(folder))


def _write_all(fd: int, data: bytes | IO[bytes]) -> int:
    if isinstance(data, bytes | bytearray | memoryview):
        return _write_chunk(fd, memoryview(data).cast("B"))
    total = 0
    while True:
        chunk = data.read(CHUNK_SIZE)
        if chunk is None:  # a non-blocking stream with nothing ready
            raise BlockingIOError(errno.EAGAIN, "the stream has no data ready (non-blocking)")
        if not chunk:
            return total
        total += _write_chunk(fd, memoryview(chunk).cast("B"))


def _write_chunk(fd: int, view: memoryview) -> int:
    written = 0
    while written < len(view):
        written += os.write(fd, view[written:])
    return written


def _is_inside(path: Path, root: Path, *, follow: bool) -> bool:
    real = Path(os.path.realpath(path)) if follow else path
    return real == root or real.is_relative_to(root)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # not supported here (e.g. Windows); the rename already happened
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)


def _reason(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    text = exc.strerror or str(exc)
    return f"{name}: {text}" if name else text


def _conflict(key: str) -> InvalidKeyError:
    return InvalidKeyError(
        key,
        "conflicts with an existing object or folder: the local store cannot hold both "
        "'a' and 'a/b'",
    )
