"""Object storage: a byte-level ``ObjectStore`` protocol (local folder, S3, in-memory)
and the content-addressed layer above it.

Importing this package loads only the protocol and the content-addressed layer; the
local, S3 and memory implementations are imported by :func:`open_object_store` when a
URL of their scheme is opened, and the Parquet helpers live in
``loopline.store.objects.tables`` (which imports pyarrow only when called).
"""

from __future__ import annotations

from loopline.store.errors import InvalidDigestError
from loopline.store.objects.base import (
    CHUNK_SIZE,
    ObjectInfo,
    ObjectStore,
    open_object_store,
    validate_key,
    validate_prefix,
)
from loopline.store.objects.cas import (
    ContentStore,
    VerifyingReader,
    digest_bytes,
    validate_digest,
)

__all__ = [
    "CHUNK_SIZE",
    "ContentStore",
    "InvalidDigestError",
    "ObjectInfo",
    "ObjectStore",
    "VerifyingReader",
    "digest_bytes",
    "open_object_store",
    "validate_digest",
    "validate_key",
    "validate_prefix",
]
