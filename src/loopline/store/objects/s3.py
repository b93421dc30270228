"""The S3 object store (AWS S3, MinIO, moto, any S3-compatible server) over s3fs.

Key ``k`` of the store ``s3://bucket/prefix`` is the S3 object ``prefix/k`` in ``bucket``.
Whole ``bytes`` go up in one PUT; a stream goes up as a multipart upload in parts of
:data:`UPLOAD_BLOCK_SIZE`, so memory stays bounded. S3 makes an object visible only when
its PUT or multipart upload completes, which gives the atomicity the protocol promises;
a failed upload is aborted so no part lingers (a *killed* process cannot abort: configure
an ``AbortIncompleteMultipartUpload`` lifecycle rule on the bucket to reclaim those).

s3fs and botocore errors are translated once, here: a missing key becomes
:class:`~loopline.store.errors.ObjectNotFoundError`; a missing bucket, refused credentials or
an endpoint that does not answer become :class:`~loopline.store.errors.StoreUnreachableError`
with a hint. Listing caches are off, so a put is visible to ``exists``/``list`` at once
(S3 itself has been strongly consistent since December 2020).

This module imports s3fs at import time; the registry in ``base`` imports it only when an
``s3://`` URL is opened.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from typing import IO, Any, NoReturn, cast

import botocore.exceptions
import s3fs

from loopline.config import S3Settings
from loopline.store.errors import (
    InvalidKeyError,
    ObjectNotFoundError,
    ObjectStoreError,
    StoreUnreachableError,
)
from loopline.store.objects.base import (
    CHUNK_SIZE,
    MAX_KEY_BYTES,
    ObjectInfo,
    validate_key,
    validate_prefix,
)

#: Part size of multipart uploads (S3 allows 5 MiB to 5 GiB and at most 10,000 parts).
UPLOAD_BLOCK_SIZE = 16 * 1024 * 1024
#: Size of the ranged reads behind :meth:`S3ObjectStore.open`.
READ_BLOCK_SIZE = 8 * 1024 * 1024
#: Largest object S3 accepts in a single PUT.
MAX_SINGLE_PUT = 5 * 1024**3
#: First key part reserved for the probe objects of :meth:`S3ObjectStore.check`.
RESERVED_PART = ".tmp"

_CREDENTIALS_HINT = (
    "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or access_key_id and "
    "secret_access_key under [s3] in loopline.toml)"
)
_CONNECTION_ERRORS = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    TimeoutError,
)
_FILESYSTEMS: dict[tuple[int, S3Settings, bool], Any] = {}
_FILESYSTEMS_LOCK = threading.Lock()
_CREDENTIAL_ERRORS = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
)


class S3ObjectStore:
    """Objects under ``prefix/`` in an S3 bucket."""

    remote = True

    def __init__(self, bucket: str, prefix: str = "", s3: S3Settings | None = None) -> None:
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._settings = s3 if s3 is not None else S3Settings()
        if not bucket:
            raise StoreUnreachableError(
                self.url, "the URL names no bucket", hint="Use s3://bucket/prefix"
            )
        if self._prefix:
            try:
                validate_key(self._prefix)
            except InvalidKeyError as exc:
                raise StoreUnreachableError(
                    self.url,
                    f"the prefix {self._prefix!r} {exc.reason}",
                    hint="Use s3://bucket/prefix with a prefix of '/'-separated names",
                ) from exc
        # Data operations may retry a little; check() must answer fast (see _make_fs).
        self._fs: Any = _filesystem(self._settings, quick=False)
        self._bucket_seen = False

    @classmethod
    def from_url(cls, url: str, s3: S3Settings | None = None) -> S3ObjectStore:
        """The store for ``s3://bucket`` or ``s3://bucket/prefix``."""
        if not url.startswith("s3://"):
            raise StoreUnreachableError(url, "not an s3:// URL", hint="Use s3://bucket/prefix")
        bucket, _, prefix = url[len("s3://") :].partition("/")
        return cls(bucket, prefix, s3)

    @property
    def url(self) -> str:
        return f"s3://{self._bucket}/{self._prefix}" if self._prefix else f"s3://{self._bucket}"

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        return self._prefix

    def __repr__(self) -> str:
        return f"S3ObjectStore({self.url!r}, endpoint_url={self._settings.endpoint_url!r})"

    def arrow_filesystem(self) -> tuple[Any, str]:
        """A pyarrow filesystem over this bucket (the same s3fs client and settings) and
        the path of the store's root in it, for pyarrow.dataset scans."""
        from pyarrow.fs import FSSpecHandler, PyFileSystem

        root = f"{self._bucket}/{self._prefix}" if self._prefix else self._bucket
        return PyFileSystem(FSSpecHandler(self._fs)), root

    # -- writing ---------------------------------------------------------------------------

    def put(self, key: str, data: bytes | memoryview | IO[bytes]) -> int:
        s3_key = self._s3_key(key)
        if not isinstance(data, bytes | bytearray | memoryview):
            return self._put_stream(key, s3_key, data)
        if len(data) > MAX_SINGLE_PUT:
            return self._put_stream(key, s3_key, _MemoryReader(memoryview(data)))
        body = bytes(data)
        try:
            self._fs.call_s3("put_object", Bucket=self._bucket, Key=s3_key, Body=body)
        except Exception as exc:
            self._reraise(exc, key)
        return len(body)

    def _put_stream(self, key: str, s3_key: str, data: IO[bytes] | _MemoryReader) -> int:
        """Multipart upload from ``data``; errors of ``data`` itself pass through as they are."""
        try:
            f = self._fs.open(f"{self._bucket}/{s3_key}", "wb", block_size=UPLOAD_BLOCK_SIZE)
        except Exception as exc:
            self._reraise(exc, key)
        total = 0
        try:
            while chunk := data.read(CHUNK_SIZE):
                try:
                    f.write(chunk)  # uploads a part whenever a block is full
                except Exception as exc:
                    self._reraise(exc, key)
                total += len(chunk)
            try:
                f.close()  # completes the multipart upload (or does one PUT if small)
            except Exception as exc:
                self._reraise(exc, key)
        except BaseException:
            # Abort the multipart upload; never let close() (or __del__) commit a
            # partial object.
            with contextlib.suppress(Exception):
                f.discard()
            f.closed = True
            raise
        return total

    def delete(self, key: str) -> None:
        s3_key = self._s3_key(key)
        try:
            self._fs.call_s3("delete_object", Bucket=self._bucket, Key=s3_key)
        except Exception as exc:
            self._reraise(exc, key)

    # -- reading ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        s3_key = self._s3_key(key)
        try:
            # One GET: no HEAD first, and one version of the object even if it is
            # replaced meanwhile (parallel ranged GETs could mix two versions).
            data: bytes = self._fs.cat_file(f"{self._bucket}/{s3_key}", max_concurrency=1)
        except Exception as exc:
            self._reraise(exc, key)
        return data

    def open(self, key: str) -> IO[bytes]:
        """A reader doing ranged GETs of :data:`READ_BLOCK_SIZE`.

        The reader is pinned to the object's ETag: if the object is replaced while it
        is being read, reading raises ``s3fs.utils.FileExpired`` instead of mixing two
        versions.
        """
        s3_key = self._s3_key(key)
        try:
            f = self._fs.open(
                f"{self._bucket}/{s3_key}", "rb", block_size=READ_BLOCK_SIZE, cache_type="readahead"
            )
        except Exception as exc:
            self._reraise(exc, key)
        return cast("IO[bytes]", f)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFoundError:
            return False
        return True

    def stat(self, key: str) -> ObjectInfo:
        s3_key = self._s3_key(key)
        try:
            head = self._fs.call_s3("head_object", Bucket=self._bucket, Key=s3_key)
        except Exception as exc:
            self._reraise(exc, key)
        return ObjectInfo(
            key=key, size=int(head["ContentLength"]), etag=str(head["ETag"]).strip('"')
        )

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[str]:
        validate_prefix(prefix)
        base = f"{self._prefix}/" if self._prefix else ""
        keys: list[str] = []
        request: dict[str, str] = {"Bucket": self._bucket, "Prefix": base + prefix}
        if start_after is not None:
            request["StartAfter"] = base + start_after
        while True:
            try:
                page = self._fs.call_s3("list_objects_v2", **request)
            except Exception as exc:
                self._reraise(exc, None)
            for item in page.get("Contents", ()):
                key = str(item["Key"])[len(base) :]
                # Skip folder markers made by consoles, and our own probes.
                if (
                    key
                    and not key.endswith("/")
                    and not _is_reserved(key)
                    and (start_after is None or key > start_after)
                ):
                    keys.append(key)
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                break
            request["ContinuationToken"] = token
        keys.sort()
        return iter(keys)

    # -- health ----------------------------------------------------------------------------

    def check(self) -> None:
        """Reach the bucket, then write and delete a probe object under ``prefix/.tmp/``.

        Uses a client with a short connect timeout and no retries, so a wrong endpoint
        fails in about a second instead of after a minute of retrying.
        """
        fs = _filesystem(self._settings, quick=True)
        probe = f"{self._prefix}/{RESERVED_PART}/check-{uuid.uuid4().hex}".lstrip("/")
        try:
            fs.call_s3("head_bucket", Bucket=self._bucket)
            fs.call_s3("put_object", Bucket=self._bucket, Key=probe, Body=b"")
            fs.call_s3("delete_object", Bucket=self._bucket, Key=probe)
        except Exception as exc:
            self._reraise(exc, None)
        self._bucket_seen = True

    # -- helpers ---------------------------------------------------------------------------

    def _s3_key(self, key: str) -> str:
        validate_key(key)
        if _is_reserved(key):
            raise InvalidKeyError(key, f"the first part {RESERVED_PART!r} is reserved by the store")
        s3_key = f"{self._prefix}/{key}" if self._prefix else key
        size = len(s3_key.encode("utf-8"))
        if size > MAX_KEY_BYTES:
            error = InvalidKeyError(
                key if len(key) <= 60 else key[:60] + "...",
                f"under the store's prefix {self._prefix!r} it makes an S3 key of {size} bytes; "
                f"S3 keys are at most {MAX_KEY_BYTES} bytes",
            )
            error.key = key
            raise error
        return s3_key

    def _reraise(self, exc: Exception, key: str | None) -> NoReturn:
        """Raise the loopline error for an s3fs/botocore error about ``key`` (None: the bucket)."""
        if isinstance(exc, ObjectStoreError):
            raise exc
        if isinstance(exc, FileNotFoundError):
            if _error_code(exc) == "NoSuchBucket" or key is None or not self._bucket_exists():
                raise StoreUnreachableError(
                    self.url,
                    f"the bucket {self._bucket!r} does not exist",
                    hint=f"Create the bucket (e.g. aws s3 mb s3://{self._bucket}) "
                    "or fix artifacts_url",
                ) from exc
            raise ObjectNotFoundError(key, self.url) from exc
        if isinstance(exc, PermissionError):
            raise StoreUnreachableError(
                self.url,
                f"access denied ({_describe(exc)})",
                hint=_CREDENTIALS_HINT + ", for an identity allowed to use this bucket",
            ) from exc
        if isinstance(exc, _CREDENTIAL_ERRORS):
            raise StoreUnreachableError(
                self.url, f"no usable credentials ({exc})", hint=_CREDENTIALS_HINT
            ) from exc
        if isinstance(exc, _CONNECTION_ERRORS):
            raise StoreUnreachableError(
                self.url, f"the endpoint did not answer ({exc})", hint=self._endpoint_hint()
            ) from exc
        if isinstance(exc, OSError) and _error_code(exc) is not None:
            what = f"object {key!r}" if key is not None else "the bucket"
            raise ObjectStoreError(
                f"S3 refused a request on {what} in store {self.url}: {_describe(exc)}"
            ) from exc
        raise exc

    def _bucket_exists(self) -> bool:
        """Whether the bucket exists; a 404 on HEAD object does not say which is missing."""
        if self._bucket_seen:
            return True
        try:
            self._fs.call_s3("head_bucket", Bucket=self._bucket)
        except FileNotFoundError:
            return False
        except Exception:
            return True  # cannot tell: let the original error speak
        self._bucket_seen = True
        return True

    def _endpoint_hint(self) -> str:
        if self._settings.endpoint_url:
            return (
                f"Check that a server listens at {self._settings.endpoint_url} "
                "([s3] endpoint_url in loopline.toml, or LOOPLINE_S3_ENDPOINT_URL)"
            )
        return "Check the network, or set [s3] endpoint_url for an S3-compatible server"


def _filesystem(settings: S3Settings, *, quick: bool) -> Any:
    """One s3fs filesystem per settings: creating its client costs ~0.3 s, so share it.

    Sharing is safe because listing caches are off and every call names its bucket.
    """
    cache_key = (os.getpid(), settings, quick)  # a forked child needs its own client
    with _FILESYSTEMS_LOCK:
        fs = _FILESYSTEMS.get(cache_key)
        if fs is None:
            fs = _FILESYSTEMS[cache_key] = _make_fs(settings, quick=quick)
        return fs


def _make_fs(settings: S3Settings, *, quick: bool) -> Any:
    client_kwargs: dict[str, Any] = {}
    if settings.region:
        client_kwargs["region_name"] = settings.region
    if quick:
        config = {
            "connect_timeout": 2,
            "read_timeout": 10,
            "retries": {"max_attempts": 1, "mode": "standard"},
        }
    else:
        config = {
            "connect_timeout": 5,
            "read_timeout": 60,
            "retries": {"max_attempts": 2, "mode": "standard"},
        }
    fs = s3fs.S3FileSystem(
        endpoint_url=settings.endpoint_url,
        key=settings.access_key_id,
        secret=settings.secret_access_key,
        token=settings.session_token,
        client_kwargs=client_kwargs,
        config_kwargs=config,
        skip_instance_cache=True,
        use_listings_cache=False,
    )
    # s3fs retries connection errors itself, on top of botocore; keep the product small.
    fs.retries = 1 if quick else 2
    return fs


def _is_reserved(key: str) -> bool:
    return key.split("/", 1)[0] == RESERVED_PART


def _client_error(exc: BaseException) -> Any:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, botocore.exceptions.ClientError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _error_code(exc: BaseException) -> str | None:
    error = _client_error(exc)
    if error is None:
        return None
    code = error.response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def _describe(exc: BaseException) -> str:
    error = _client_error(exc)
    if error is None:
        return str(exc) or type(exc).__name__
    info = error.response.get("Error", {})
    code = info.get("Code", "?")
    message = info.get("Message") or ""
    return f"{code}: {message}" if message and message != code else str(code)


class _MemoryReader:
    """A minimal stream over a buffer too large for a single PUT, without copying it."""

    def __init__(self, view: memoryview) -> None:
        self._view = view.cast("B")
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else min(len(self._view), self._pos + size)
        chunk = bytes(self._view[self._pos : end])
        self._pos = end
        return chunk
