"""The content-addressed layer: immutable blobs named by their sha256, over any ObjectStore.

A blob with digest ``d`` lives under the key ``<prefix>/sha256/<d[:2]>/<d[2:]>``. Writing
the same content twice stores it once. Every read is verified against the digest:

- :meth:`ContentStore.get` and :meth:`ContentStore.verify` hash the whole object and raise
  :class:`~loopline.errors.IntegrityError` on a mismatch (a truncated, flipped or
  replaced object);
- :meth:`ContentStore.open` returns a :class:`VerifyingReader` that hashes as it is read
  and raises at end of stream, so a caller must read to EOF before trusting the data;
- :meth:`ContentStore.get_to_file` writes beside the target and renames only once the
  hash matched, so a bad object never appears at the target path.

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
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, NoReturn, cast

from loopline.errors import (
    IntegrityError,
    InvalidDigestError,
    ObjectNotFoundError,
    ObjectStoreError,
)
from loopline.store.objects.base import CHUNK_SIZE, ObjectStore, validate_key
from loopline.types import Digest

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

#: Streams are spooled in memory up to this size, then to a temporary file.
SPOOL_MAX_MEMORY = 32 * 1024 * 1024
ALGORITHM = "sha256"
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

    # -- writing ---------------------------------------------------------------------------

    def put(self, data: bytes | IO[bytes]) -> Digest:
        """Store ``data`` (bytes or a binary stream read to its end); return its digest.

        Content already present is not written again. An existing copy whose size is
        wrong (a truncated object) is replaced.
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
                spool.write(chunk)
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
        try:
            return self._store.stat(key).size == size
        except ObjectNotFoundError:
            return False

    # -- reading ---------------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        return self._store.exists(self.key_for(digest))

    def get(self, digest: str) -> bytes:
        """The whole blob, verified. Raises ObjectNotFoundError or IntegrityError."""
        key = self.key_for(digest)
        data = self._store.get(key)
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise IntegrityError(key, digest, actual, self._store.url)
        return data

    def open(self, digest: str) -> VerifyingReader:
        """A binary reader over the blob that raises IntegrityError at end of stream.

        Data read before the end is unverified: read to EOF before trusting any of it.
        """
        key = self.key_for(digest)
        return VerifyingReader(self._store.open(key), key, Digest(digest), self._store.url)

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
        base = f"{self._prefix}/{ALGORITHM}/"
        for key in self._store.list(base):
            fan, _, rest = key[len(base) :].partition("/")
            candidate = fan + rest
            if len(fan) == 2 and _DIGEST_RE.fullmatch(candidate):
                yield Digest(candidate)


class VerifyingReader(io.RawIOBase):
    """A binary reader that hashes what it returns and checks the digest at end of stream.

    Reaching the end with the wrong content raises IntegrityError (and again on any
    further read). :attr:`verified` is True only once the end was reached intact.
    """

    def __init__(self, raw: IO[bytes], key: str, expected: Digest, store_url: str) -> None:
        super().__init__()
        self._raw = raw
        self._key = key
        self._expected = expected
        self._store_url = store_url
        self._hasher = hashlib.sha256()
        self._error: IntegrityError | None = None
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
            self._error = IntegrityError(self._key, self._expected, actual, self._store_url)
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
    for _ in range(100):
        name = str(target.parent / f".{target.name}.{secrets.token_hex(6)}.part")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(target.parent))


def _raise_bad_digest(value: str, reason: str) -> NoReturn:
    raise InvalidDigestError(value, reason)
