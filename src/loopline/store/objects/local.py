"""The local-folder object store: one file per key, written atomically.

Every put writes to a temporary file in ``<root>/.tmp/`` (same filesystem as the
objects), fsyncs it, renames it over the final path with :func:`os.replace` and fsyncs
the folder. A reader therefore sees the old object or the new one, never half of one,
and a writer killed mid-put leaves no visible object, only a stray temporary file. Its
name carries its writer (see :mod:`loopline.store.tempfiles`), so the first put of the
next writer removes it once that writer is gone, and :meth:`LocalObjectStore.cleanup_temp`
does so on request.

Every ``OSError`` becomes a loopline error naming the store and the key:
:class:`~loopline.store.errors.StoreFullError` for a full disk or quota,
:class:`~loopline.store.errors.StoreUnreachableError` for a folder that is read-only or not
permitted, :class:`~loopline.store.errors.InvalidKeyError` for a path the filesystem finds too
long, :class:`~loopline.store.errors.ObjectStoreError` for any other failure (an I/O error).
Errors of the stream being stored are not the store's and pass through unchanged.

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
import stat as stat_mod
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from loopline.store import tempfiles
from loopline.store.errors import (
    InvalidKeyError,
    ObjectNotFoundError,
    ObjectStoreError,
    StoreFullError,
    StoreUnreachableError,
)
from loopline.store.objects.base import CHUNK_SIZE, ObjectInfo, validate_key, validate_prefix

if TYPE_CHECKING:
    from loopline.config import S3Settings

TEMP_DIR = ".tmp"
TEMP_SUFFIX = ".part"
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
_INIT_HINT = "Create the project with: loopline init (or fix artifacts_url in loopline.toml)"


class LocalObjectStore:
    """Objects as files under ``root``; keys are relative paths with '/' separators."""

    remote = False

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self._root = Path(root).expanduser().resolve()
        self._tmp = self._root / TEMP_DIR
        self._swept = False

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

    def arrow_filesystem(self) -> tuple[Any, str]:
        """A pyarrow filesystem and the path of the store's root in it (dataset scans)."""
        from pyarrow.fs import LocalFileSystem

        return LocalFileSystem(), str(self._root)

    # -- writing ---------------------------------------------------------------------------

    def put(self, key: str, data: bytes | memoryview | IO[bytes]) -> int:
        final = self._path_for(key)
        tmp_name = ""
        try:
            self._ensure_root()
            self._tmp.mkdir(exist_ok=True)
            self._sweep_once()
            fd, tmp_name = tempfiles.create(self._tmp, "put-", TEMP_SUFFIX)
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
        except _SourceError as exc:
            _unlink_quietly(tmp_name)
            raise exc.error from exc.error.__cause__
        except OSError as exc:
            _unlink_quietly(tmp_name)
            raise _store_error(exc, key, self.url, "write") from exc
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
        except OSError as exc:
            if isinstance(exc, PermissionError) and path.is_dir():
                return  # macOS reports EPERM for unlink() on a folder
            raise _store_error(exc, key, self.url, "delete") from exc

    def cleanup_temp(self, older_than_s: float = tempfiles.DEFAULT_GRACE_S) -> int:
        """Remove the temporary files that killed writers left behind; return how many.

        A file is removed when its writer ran on this host and is gone, or when it was
        not modified for ``older_than_s`` seconds and its writer cannot be asked (another
        host or container sharing the folder, or a name from an older loopline). The
        file of a live writer on this host is never removed. The first put of each
        store object does this by itself.
        """
        return len(tempfiles.sweep(self._tmp, suffix=TEMP_SUFFIX, grace_s=older_than_s))

    def stale_temp_files(
        self, older_than_s: float = tempfiles.DEFAULT_GRACE_S
    ) -> list[tempfiles.TempFile]:
        """The temporary files :meth:`cleanup_temp` would remove, without removing them."""
        return tempfiles.stale(self._tmp, suffix=TEMP_SUFFIX, grace_s=older_than_s)

    def _sweep_once(self) -> None:
        """Remove the leftovers of dead writers, once per store object (one folder scan)."""
        if self._swept:
            return
        self._swept = True
        tempfiles.sweep(self._tmp, suffix=TEMP_SUFFIX)

    # -- reading ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        with self.open(key) as f:
            try:
                return f.read()
            except OSError as exc:
                raise _store_error(exc, key, self.url, "read") from exc

    def open(self, key: str) -> IO[bytes]:
        """The object's file, open for reading (errors of later reads are ``OSError``)."""
        path = self._path_for(key)
        try:
            f = path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFoundError(key, self.url) from exc
        except OSError as exc:
            raise _store_error(exc, key, self.url, "read") from exc
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
        except OSError as exc:
            raise _store_error(exc, key, self.url, "read") from exc
        if not stat_mod.S_ISREG(st.st_mode):
            raise ObjectNotFoundError(key, self.url)
        return ObjectInfo(key=key, size=st.st_size, etag=f"{st.st_size}-{st.st_mtime_ns}")

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[str]:
        validate_prefix(prefix)
        folder_part = prefix if prefix.endswith("/") else prefix.rpartition("/")[0]
        start = self._root / folder_part if folder_part else self._root
        if not _is_inside(start, self._root, follow=True):
            raise InvalidKeyError(prefix, "resolves outside the store (through a symbolic link)")
        try:
            if not start.is_dir():
                return iter(())
            keys = [
                k
                for k in self._walk(start, folder_part.rstrip("/"))
                if k.startswith(prefix) and (start_after is None or k > start_after)
            ]
        except OSError as exc:
            raise _store_error(exc, None, self.url, "list") from exc
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
            fd, name = tempfiles.create(self._tmp, "check-", TEMP_SUFFIX)
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


class _SourceError(Exception):
    """Carries an error of the stream being stored past the store's OSError translation."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _write_all(fd: int, data: bytes | memoryview | IO[bytes]) -> int:
    if isinstance(data, bytes | bytearray | memoryview):
        return _write_chunk(fd, memoryview(data).cast("B"))
    total = 0
    while True:
        try:
            chunk = data.read(CHUNK_SIZE)
        except OSError as exc:
            raise _SourceError(exc) from exc
        if chunk is None:  # a non-blocking stream with nothing ready
            error = BlockingIOError(errno.EAGAIN, "the stream has no data ready (non-blocking)")
            raise _SourceError(error)
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
    if name:
        with contextlib.suppress(OSError):
            os.unlink(name)


def _reason(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    text = exc.strerror or str(exc)
    return f"{name}: {text}" if name else text


def _store_error(exc: OSError, key: str | None, url: str, action: str) -> ObjectStoreError:
    """The loopline error for an ``OSError`` of ``action`` ("write", "read", ...) on ``key``."""
    reason = _reason(exc)
    what = f"{key!r}" if key is not None else "the store"
    if exc.errno in _FULL_ERRNOS:
        return StoreFullError(key or "", url, reason)
    if exc.errno in _DENIED_ERRNOS:
        if exc.errno == errno.EROFS:
            state = "its filesystem is mounted read-only"
        else:
            able = "readable" if action in ("read", "list") else "writable"
            state = f"the folder or file is not {able} by this user"
        return StoreUnreachableError(
            url,
            f"cannot {action} {what}: {state} ({reason})",
            hint="Check the permissions of the folder and its files (and that its "
            "filesystem is not mounted read-only), or fix artifacts_url",
        )
    if exc.errno == errno.ENAMETOOLONG and key is not None:
        return InvalidKeyError(key, f"makes a path too long for this filesystem ({reason})")
    return ObjectStoreError(
        f"Cannot {action} {what} in store {url}: {reason}",
        hint="An I/O error can mean a failing disk or a network filesystem that went away; "
        "check the disk, then verify the store with: loopline store verify",
    )


def _conflict(key: str) -> InvalidKeyError:
    return InvalidKeyError(
        key,
        "conflicts with an existing object or folder: the local store cannot hold both "
        "'a' and 'a/b'",
    )
