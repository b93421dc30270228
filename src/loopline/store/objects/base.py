"""The byte-level object store protocol, key rules, and the scheme registry.

An :class:`ObjectStore` holds immutable-by-convention blobs under '/'-separated keys.
Implementations are tiny (local folder, S3, in-memory) and are imported only when a URL
with their scheme is opened, so a local project never imports boto or s3fs.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Protocol, runtime_checkable

from loopline.store.errors import InvalidKeyError, StoreUnreachableError

if TYPE_CHECKING:
    from loopline.config import S3Settings

#: Streams are copied in chunks of this size.
CHUNK_SIZE = 1024 * 1024
#: Longest key, in bytes of UTF-8: S3's limit, and well under any local path limit.
MAX_KEY_BYTES = 1024
#: Longest part of a key (between two '/'), in bytes of UTF-8: the file name limit of
#: ext4, XFS, btrfs, APFS, NTFS and tmpfs, so every key the check lets through can be a file.
MAX_PART_BYTES = 255


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one object without reading it."""

    key: str
    size: int
    #: An opaque version tag: S3's ETag, or size+mtime locally. Changes when content does.
    etag: str


@runtime_checkable
class ObjectStore(Protocol):
    """Bytes under keys. Writes are atomic: a reader sees the whole object or none.

    ``remote`` says whether reading an object costs a network transfer (S3): the
    content-addressed layer then does not re-read an existing blob to check it before
    skipping a put, and removes a blob that failed verification on read instead.
    """

    remote: bool

    @property
    def url(self) -> str:
        """Where the store lives, for display (no secrets)."""
        ...

    def put(self, key: str, data: bytes | memoryview | IO[bytes]) -> int:
        """Store ``data`` (bytes or a view of bytes, or a binary stream read to its end)
        under ``key``.

        Replaces any object of that key atomically. Returns the number of bytes written.
        """
        ...

    def get(self, key: str) -> bytes:
        """The whole object. Raises ObjectNotFoundError."""
        ...

    def open(self, key: str) -> IO[bytes]:
        """A binary stream over the object, for objects too large to hold in memory."""
        ...

    def exists(self, key: str) -> bool: ...

    def stat(self, key: str) -> ObjectInfo:
        """Size and etag of an object. Raises ObjectNotFoundError."""
        ...

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[str]:
        """Keys that start with ``prefix`` (a key prefix, not only a folder), sorted;
        with ``start_after``, only the keys after it (S3 skips the others server-side)."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""
        ...

    def check(self) -> None:
        """Raise StoreUnreachableError unless the store can be read and written."""
        ...


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise InvalidKeyError.

    Refused: empty keys, NUL and other control characters, backslashes, absolute paths,
    drive letters, empty, '.' or '..' parts, text that cannot be UTF-8 (lone surrogates),
    keys longer than :data:`MAX_KEY_BYTES` and parts longer than :data:`MAX_PART_BYTES`
    (both in bytes of UTF-8: ``é`` counts two).
    """
    if not isinstance(key, str):
        raise InvalidKeyError(repr(key), f"expected a string, got {type(key).__name__}")
    if not key:
        raise InvalidKeyError(key, "the key is empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise _refused(key, "is not valid text: it holds a lone surrogate") from None
    if size > MAX_KEY_BYTES:
        raise _refused(
            key, f"is {size} bytes long (UTF-8); a key may be at most {MAX_KEY_BYTES} bytes"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InvalidKeyError(key, "contains NUL or another control character")
    if "\\" in key:
        raise InvalidKeyError(key, "contains a backslash")
    if key.startswith("/"):
        raise InvalidKeyError(key, "is an absolute path")
    if len(key) >= 2 and key[1] == ":" and key[0].isalpha():
        raise InvalidKeyError(key, "starts with a drive letter")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            what = "an empty part ('//' or a trailing '/')" if part == "" else f"a {part!r} part"
            raise InvalidKeyError(key, f"has {what}, which could escape the store")
        part_size = len(part.encode("utf-8"))
        if part_size > MAX_PART_BYTES:
            raise _refused(
                key,
                f"has a part of {part_size} bytes (UTF-8), {_shorten(part, 20)!r}; a part "
                f"(a file name) may be at most {MAX_PART_BYTES} bytes",
            )
    return key


def _refused(key: str, reason: str) -> InvalidKeyError:
    """The error for ``key``, its message showing only the start of a long key (the whole
    key stays in ``InvalidKeyError.key``)."""
    error = InvalidKeyError(_shorten(key), reason)
    error.key = key
    return error


def _shorten(text: str, keep: int = 60) -> str:
    return text if len(text) <= keep else text[:keep] + "..."


def validate_prefix(prefix: str) -> str:
    """Like :func:`validate_key` for listing prefixes; '' and a trailing '/' are allowed."""
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


_SCHEMES: dict[str, str] = {
    "": "loopline.store.objects.local:LocalObjectStore",
    "file": "loopline.store.objects.local:LocalObjectStore",
    "memory": "loopline.store.objects.memory:MemoryObjectStore",
    "s3": "loopline.store.objects.s3:S3ObjectStore",
}


def open_object_store(url: str, s3: S3Settings | None = None) -> ObjectStore:
    """The store for ``url``: a folder path, ``file://``, ``s3://bucket/prefix``, ``memory://name``.

    The implementation is imported only now, so a local project never loads S3 libraries.
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    target = _SCHEMES.get(scheme)
    if target is None:
        raise StoreUnreachableError(
            url,
            f"unsupported scheme {scheme!r}",
            hint=f"Use a folder path or one of: {', '.join(s + '://' for s in _SCHEMES if s)}",
        )
    module_name, cls_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if (exc.name or "").startswith("loopline"):
            raise
        extra = {"s3": "s3"}.get(scheme, scheme)
        raise StoreUnreachableError(
            url,
            f"the {scheme}:// store needs a package that is not installed ({exc.name})",
            hint=f"Install it with: pip install 'loopline[{extra}]'",
        ) from exc
    factory = getattr(module, cls_name)
    store: ObjectStore = factory.from_url(url, s3=s3)
    return store
