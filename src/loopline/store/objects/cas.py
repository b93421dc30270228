"""The content-addressed layer: immutable blobs named by their sha256, over any ObjectStore.

A blob with digest ``d`` lives under the key ``<prefix>/sha256/<d[:2]>/<d[2:]>``. Writing
the same content twice stores it once. Every read is verified against the digest:

- :meth:`ContentStore.get` and :meth:`ContentStore.verify` hash the whole object and raise
  :class:`~loopline.store.errors.BlobIntegrityError` on a mismatch (a truncated, flipped or
  replaced object);
- :meth:`ContentStore.open` returns a :class:`VerifyingReader` that hashes as it is read
  and raises at end of stream, so a caller must read to EOF before trusting the data;
- :meth:`ContentStore.get_to_file` writes beside the target and renames only once the
  hash matched, so a bad object never appears at the target path.

Content already present is not written again, but only once it proved intact: on a local
store, a put whose blob exists with the right size re-hashes the stored copy (a streamed
read, never a write) and writes the blob again when the copy is corrupt, so adding the
same data again repairs it. Each ``ContentStore`` remembers the copies it verified (by
etag, so a copy changed since is checked again), and putting them again costs one
``stat``. On a remote store (S3), where that read is a download, the check moves to the
read: every read verifies anyway, and a blob that fails it is removed, so the next put of
that content writes it again.

Streams of unknown size are hashed while being spooled to a
:class:`tempfile.SpooledTemporaryFile` (in memory up to :data:`SPOOL_MAX_MEMORY`, then on
disk), so memory stays bounded whatever the size. This module never imports pyarrow.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn, cast

from loopline.store.errors import (
    BlobIntegrityError,
    InvalidDigestError,
    ObjectNotFoundError,
    ObjectStoreError,
    StoreFullError,
)
from loopline.store.objects.base import CHUNK_SIZE, ObjectStore, validate_key
from loopline.types import Digest

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

#: Streams are spooled in memory up to this size, then to a temporary file.
SPOOL_MAX_MEMORY = 32 * 1024 * 1024
#: How many verified copies a ContentStore remembers (key -> etag).
KNOWN_GOOD_MAX = 4096
ALGORITHM = "sha256"
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")


def validate_digest(digest: str) -> Digest:
    """Return ``digest`` if it is 64 lowercase hex characters, else raise InvalidKeyError."""
    if not isinstance(digest, str):
        reason = f"expected a sha256 digest string, got {type(digest).__name__}"
        _raise_bad_digest(repr(digest), reason)
    if not _DIGEST_RE.fullmatch(digest):
        if len(digest) != 64:
            reason = f"expected 64 hexadecimal characters, got {len(digest)}"
        elif _DIGEST_RE.fullmatch(digest.lower()):
            reason = "expected lowercase hexadecimal characters"
        else:
            reason = "expected only the characters 0-9 and a-f"
        _raise_bad_digest(digest, reason)
    return Digest(digest)


def digest_bytes(data: bytes | bytearray | memoryview) -> Digest:
    """The sha256 digest of ``data``."""
    return Digest(hashlib.sha256(data).hexdigest())


class ContentStore:
    """Immutable, de-duplicated, verified blobs keyed by sha256 over an ObjectStore."""

    def __init__(self, store: ObjectStore, prefix: str = "cas") -> None:
        self._store = store
        self._prefix = validate_key(prefix.strip("/"))
        #: key -> etag of copies whose content this object hashed and found intact.
        self._known_good: dict[str, str] = {}
        self._known_lock = threading.Lock()

    @property
    def store(self) -> ObjectStore:
        return self._store

    @property
    def prefix(self) -> str:
        return self._prefix

    def __repr__(self) -> str:
        return f"ContentStore({self._store.url!r}, prefix={self._prefix!r})"

    def key_for(self, digest: str) -> str:
        """The object key that holds the blob ``digest``."""
        d = validate_digest(digest)
        return f"{self._prefix}/{ALGORITHM}/{d[:2]}/{d[2:]}"

    def digest_of(self, key: str) -> Digest | None:
        """The digest whose blob lives under ``key``, or None if ``key`` holds no blob."""
        base = f"{self._prefix}/{ALGORITHM}/"
        if not key.startswith(base):
            return None
        fan, _, rest = key[len(base) :].partition("/")
        candidate = fan + rest
        if len(fan) == 2 and _DIGEST_RE.fullmatch(candidate):
            return Digest(candidate)
        return None

    # -- writing ---------------------------------------------------------------------------

    def put(self, data: bytes | IO[bytes]) -> Digest:
        """Store ``data`` (bytes or a binary stream read to its end); return its digest.

        Content already present and intact is not written again. An existing copy of the
        wrong size or content (truncated, flipped, replaced) is replaced.
        """
        if isinstance(data, bytes | bytearray | memoryview):
            digest = digest_bytes(data)
            key = self.key_for(digest)
            if not self._present(key, memoryview(data).nbytes):
                self._store.put(key, bytes(data))
            return digest
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY) as spool:
            hasher = hashlib.sha256()
            size = 0
            while chunk := data.read(CHUNK_SIZE):
                hasher.update(chunk)
                try:
                    spool.write(chunk)
                except OSError as exc:
                    raise self._spool_error(exc) from exc
                size += len(chunk)
            digest = Digest(hasher.hexdigest())
            key = self.key_for(digest)
            if not self._present(key, size):
                spool.seek(0)
                self._store.put(key, spool)
        return digest

    def put_file(self, path: str | os.PathLike[str]) -> Digest:
        """Store the file at ``path`` without holding it in memory; return its digest.

        The file is hashed, then uploaded while hashed again; if it changed in between,
        the stored object is removed and an ObjectStoreError raised.
        """
        path = Path(path)
        hasher = hashlib.sha256()
        size = 0
        with path.open("rb") as f:
            while chunk := f.read(CHUNK_SIZE):
                hasher.update(chunk)
                size += len(chunk)
        digest = Digest(hasher.hexdigest())
        key = self.key_for(digest)
        if self._present(key, size):
            return digest
        with path.open("rb") as f:
            reader = _HashingReader(f)
            self._store.put(key, cast("IO[bytes]", reader))  # only read() is used
        if reader.hexdigest() != digest:
            self._store.delete(key)
            raise ObjectStoreError(
                f"File {str(path)!r} changed while it was stored as {key!r} in store "
                f"{self._store.url}; nothing was stored",
                hint="Retry once the file is no longer being written",
            )
        return digest

    def _present(self, key: str, size: int) -> bool:
        """Whether an intact copy of the blob under ``key`` (of ``size`` bytes) is stored.

        The stored copy is re-hashed (one streamed read) unless this object verified it
        before and its etag did not change since. A copy of the wrong size or content is
        not present: the caller writes the blob again, which repairs it.
        """
        try:
            info = self._store.stat(key)
        except ObjectNotFoundError:
            return False
        if info.size != size:
            return False
        if getattr(self._store, "remote", False):
            # Checked on read instead (a failed read removes the blob): no download here.
            return True
        with self._known_lock:
            if self._known_good.get(key) == info.etag:
                return True
        expected = self.digest_of(key)
        try:
            actual = self._hash_stored(key)
        except (ObjectNotFoundError, OSError):
            return False  # removed meanwhile, or unreadable: write a fresh copy
        if actual != expected:
            return False
        self._remember(key, info.etag)
        return True

    def _hash_stored(self, key: str) -> str:
        hasher = hashlib.sha256()
        with self._store.open(key) as f:
            while chunk := f.read(CHUNK_SIZE):
                hasher.update(chunk)
        return hasher.hexdigest()

    def _remember(self, key: str, etag: str) -> None:
        with self._known_lock:
            self._known_good.pop(key, None)
            self._known_good[key] = etag
            while len(self._known_good) > KNOWN_GOOD_MAX:
                del self._known_good[next(iter(self._known_good))]

    def _forget(self, key: str) -> None:
        with self._known_lock:
            self._known_good.pop(key, None)

    def _on_corrupt(self, key: str) -> None:
        """A read found the blob under ``key`` corrupt: forget it was good, and on a
        remote store remove it, so that the next put of that content writes it again."""
        self._forget(key)
        if getattr(self._store, "remote", False):
            try:
                self._store.delete(key)
            except ObjectStoreError:
                pass  # the read's IntegrityError is what the caller must see

    def _spool_error(self, exc: OSError) -> ObjectStoreError:
        folder = tempfile.gettempdir()
        reason = f"{errno.errorcode.get(exc.errno or 0, 'OSError')}: {exc.strerror or exc}"
        if exc.errno in _FULL_ERRNOS:
            error: ObjectStoreError = StoreFullError("", folder, reason)
            error.message = (
                f"The temporary folder {folder} is full: the stream to store in "
                f"{self._store.url} could not be spooled there ({reason}); nothing was stored"
            )
        else:
            error = ObjectStoreError(
                f"Cannot spool the stream to store in {self._store.url} to the temporary "
                f"folder {folder} ({reason}); nothing was stored"
            )
        error.hint = "Free some space there (or point TMPDIR to a folder with room) and retry"
        return error

    def discard(self, digest: str) -> None:
        """Remove the blob ``digest`` (a corrupt copy, so that the next put rewrites it).

        Removing a blob that metadata still references makes it missing: only do this
        to a copy that failed verification, or one nothing references.
        """
        key = self.key_for(digest)
        self._forget(key)
        self._store.delete(key)

    # -- reading ---------------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        return self._store.exists(self.key_for(digest))

    def get(self, digest: str) -> bytes:
        """The whole blob, verified. Raises ObjectNotFoundError or IntegrityError."""
        key = self.key_for(digest)
        data = self._store.get(key)
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            self._on_corrupt(key)
            raise BlobIntegrityError(key, digest, actual, self._store.url)
        return data

    def open(self, digest: str) -> VerifyingReader:
        """A binary reader over the blob that raises IntegrityError at end of stream.

        Data read before the end is unverified: read to EOF before trusting any of it.
        """
        key = self.key_for(digest)
        return VerifyingReader(
            self._store.open(key),
            key,
            Digest(digest),
            self._store.url,
            on_mismatch=lambda: self._on_corrupt(key),
        )

    def verify(self, digest: str) -> None:
        """Read the blob through; raise IntegrityError if its content does not match."""
        with self.open(digest) as reader:
            while reader.read(CHUNK_SIZE):
                pass

    def get_to_file(self, digest: str, path: str | os.PathLike[str]) -> Path:
        """Write the blob to ``path`` only if it verifies; return the path.

        The content goes to a temporary file beside ``path`` that is renamed over it once
        the hash matched; on any error the temporary file is removed and ``path`` is left
        as it was (absent, or its previous content).
        """
        target = Path(path)
        with self.open(digest) as reader:
            fd, tmp_name = _create_beside(target)
            try:
                with os.fdopen(fd, "wb") as out:
                    while chunk := reader.read(CHUNK_SIZE):
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp_name, target)
            except BaseException:
                try:
                    os.unlink(tmp_name)
                except OSError:
                    pass
                raise
        return target

    def digests(self) -> Iterator[Digest]:
        """Every digest held by this store, sorted."""
        for key in self._store.list(f"{self._prefix}/{ALGORITHM}/"):
            digest = self.digest_of(key)
            if digest is not None:
                yield digest


class VerifyingReader(io.RawIOBase):
    """A binary reader that hashes what it returns and checks the digest at end of stream.

    Reaching the end with the wrong content raises IntegrityError (and again on any
    further read). :attr:`verified` is True only once the end was reached intact.
    """

    def __init__(
        self,
        raw: IO[bytes],
        key: str,
        expected: Digest,
        store_url: str,
        *,
        on_mismatch: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._key = key
        self._expected = expected
        self._store_url = store_url
        self._on_mismatch = on_mismatch
        self._hasher = hashlib.sha256()
        self._error: BlobIntegrityError | None = None
        self._verified = False
        self.size = 0

    @property
    def verified(self) -> bool:
        return self._verified

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if size == 0:
            return b""
        return self._take(size)

    def readall(self) -> bytes:
        chunks = []
        while chunk := self._take(CHUNK_SIZE):
            chunks.append(chunk)
        return b"".join(chunks)

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        data = self._take(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

    def _take(self, size: int) -> bytes:
        if self._error is not None:
            raise self._error
        if self._verified:
            return b""
        data = self._raw.read(size)
        if data:
            self._hasher.update(data)
            self.size += len(data)
            return data
        actual = self._hasher.hexdigest()
        if actual != self._expected:
            self._error = BlobIntegrityError(self._key, self._expected, actual, self._store_url)
            if self._on_mismatch is not None:
                self._on_mismatch()
            raise self._error
        self._verified = True
        return b""


class _HashingReader:
    """Pass-through reader that hashes what flows through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._hasher = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._hasher.update(data)
        return data

    def hexdigest(self) -> str:
        return self._hasher.hexdigest()


def _create_beside(target: Path) -> tuple[int, str]:
    """A new temporary file next to ``target``, created with the umask's permissions
    (mkstemp would make it 0600, and the rename would keep that)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    stem = target.name[:100]  # room for the suffix within the file name limit
    for _ in range(100):
        name = str(target.parent / f".{stem}.{secrets.token_hex(6)}.part")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(target.parent))


def _raise_bad_digest(value: str, reason: str) -> NoReturn:
    raise InvalidDigestError(value, reason)
