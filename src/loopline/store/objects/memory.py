"""The in-memory object store, for unit tests and throwaway pipelines.

``memory://name`` opens a store shared by every opener of that name within the process,
so code that re-opens the store from its URL sees the same objects. ``memory://`` (no
name) is a new private store each time. Nothing survives the process. Like the other
stores it refuses keys whose first part is ``.tmp``.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, ClassVar

from loopline.store.errors import InvalidKeyError, ObjectNotFoundError, StoreUnreachableError
from loopline.store.objects.base import CHUNK_SIZE, ObjectInfo, validate_key, validate_prefix

if TYPE_CHECKING:
    from loopline.config import S3Settings

#: Reserved first key part, refused as in the local and S3 stores (one contract for all).
RESERVED_PART = ".tmp"


class MemoryObjectStore:
    """Objects in a dict guarded by a lock. Etags are the md5 of the content, like S3's."""

    remote = False

    _named: ClassVar[dict[str, MemoryObjectStore]] = {}
    _named_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str = "") -> None:
        self._name = name
        self._objects: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, s3: S3Settings | None = None) -> MemoryObjectStore:
        """The shared store named by ``memory://name``; ``memory://`` gives a fresh one."""
        if not url.startswith("memory://"):
            raise StoreUnreachableError(url, "not a memory:// URL", hint="Use memory://name")
        name = url[len("memory://") :].strip("/")
        if not name:
            return cls()
        with cls._named_lock:
            store = cls._named.get(name)
            if store is None:
                store = cls._named[name] = cls(name)
            return store

    @classmethod
    def release(cls, name: str) -> None:
        """Forget the shared store ``memory://name``; the next open gets an empty one."""
        with cls._named_lock:
            cls._named.pop(name, None)

    @property
    def url(self) -> str:
        return f"memory://{self._name}"

    def __repr__(self) -> str:
        return f"MemoryObjectStore({self._name!r}, objects={len(self._objects)})"

    def put(self, key: str, data: bytes | memoryview | IO[bytes]) -> int:
        _check_key(key)
        if isinstance(data, bytes | bytearray | memoryview):
            content = bytes(data)
        else:
            chunks = []
            while chunk := data.read(CHUNK_SIZE):
                chunks.append(chunk)
            content = b"".join(chunks)
        etag = hashlib.md5(content, usedforsecurity=False).hexdigest()
        with self._lock:
            self._objects[key] = (content, etag)
        return len(content)

    def get(self, key: str) -> bytes:
        return self._entry(key)[0]

    def open(self, key: str) -> IO[bytes]:
        return io.BytesIO(self._entry(key)[0])

    def exists(self, key: str) -> bool:
        _check_key(key)
        with self._lock:
            return key in self._objects

    def stat(self, key: str) -> ObjectInfo:
        content, etag = self._entry(key)
        return ObjectInfo(key=key, size=len(content), etag=etag)

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[str]:
        validate_prefix(prefix)
        with self._lock:
            keys = sorted(
                k
                for k in self._objects
                if k.startswith(prefix) and (start_after is None or k > start_after)
            )
        return iter(keys)

    def delete(self, key: str) -> None:
        _check_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def check(self) -> None:
        return None

    def _entry(self, key: str) -> tuple[bytes, str]:
        _check_key(key)
        with self._lock:
            entry = self._objects.get(key)
        if entry is None:
            raise ObjectNotFoundError(key, self.url)
        return entry


def _check_key(key: str) -> None:
    validate_key(key)
    if key.split("/", 1)[0] == RESERVED_PART:
        raise InvalidKeyError(key, f"the first part {RESERVED_PART!r} is reserved by the store")
