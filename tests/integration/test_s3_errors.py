"""The S3 store fails fast and clearly (endpoint down, missing bucket, refused credentials,
bad URL), an interrupted upload leaves nothing behind, and writes are visible at once."""

from __future__ import annotations

import io
import socket
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loopline.config import S3Settings
from loopline.store.errors import StoreUnreachableError
from loopline.store.objects import open_object_store
from loopline.store.objects.s3 import UPLOAD_BLOCK_SIZE, S3ObjectStore

pytestmark = pytest.mark.s3


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: connecting to it is refused


def _operations(store: S3ObjectStore) -> dict[str, Callable[[], object]]:
    return {
        "check": store.check,
        "put": lambda: store.put("k", b"v"),
        "put-stream": lambda: store.put("k", io.BytesIO(b"v")),
        "get": lambda: store.get("k"),
        "open": lambda: store.open("k"),
        "exists": lambda: store.exists("k"),
        "stat": lambda: store.stat("k"),
        "list": lambda: list(store.list()),
        "delete": lambda: store.delete("k"),
    }


def test_unreachable_endpoint_fails_fast_with_a_hint() -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    settings = S3Settings(
        endpoint_url=endpoint, region="us-east-1", access_key_id="k", secret_access_key="s"
    )
    store = open_object_store("s3://some-bucket/artifacts", s3=settings)
    started = time.monotonic()
    with pytest.raises(StoreUnreachableError) as info:
        store.check()
    # Generous bound: the point is "seconds, not a minute of retries".
    assert time.monotonic() - started < 10
    error = info.value
    assert error.url == "s3://some-bucket/artifacts"
    assert "did not answer" in error.reason
    assert error.hint is not None
    assert endpoint in error.hint


@pytest.mark.parametrize("operation", ["put", "get"])
def test_unreachable_endpoint_on_data_operations(operation: str) -> None:
    settings = S3Settings(
        endpoint_url=f"http://127.0.0.1:{_closed_port()}",
        region="us-east-1",
        access_key_id="k",
        secret_access_key="s",
    )
    store = S3ObjectStore("some-bucket", "p", settings)
    started = time.monotonic()
    with pytest.raises(StoreUnreachableError, match="did not answer"):
        _operations(store)[operation]()
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    "operation", ["check", "put", "put-stream", "get", "open", "exists", "stat", "list", "delete"]
)
def test_missing_bucket_is_named(s3_settings: S3Settings, operation: str) -> None:
    bucket = f"missing-{uuid.uuid4().hex[:12]}"
    store = S3ObjectStore(bucket, "artifacts", s3_settings)
    with pytest.raises(StoreUnreachableError) as info:
        _operations(store)[operation]()
    assert bucket in str(info.value)
    assert "does not exist" in info.value.reason
    assert info.value.hint is not None
    assert "Create the bucket" in info.value.hint


@pytest.fixture
def guarded_bucket(s3_endpoint: str, s3_bucket: str) -> Iterator[str]:
    """A bucket on a moto that checks credentials (off by default: moto accepts any key)."""

    def reset_auth(count: str) -> None:
        request = urllib.request.Request(
            f"{s3_endpoint}/moto-api/reset-auth",
            data=count.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form body would hide the value
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    reset_auth("0")
    try:
        yield s3_bucket
    finally:
        reset_auth("inf")


@pytest.mark.parametrize("operation", ["check", "put", "get", "list"])
def test_wrong_credentials_are_reported(
    guarded_bucket: str, s3_settings: S3Settings, operation: str
) -> None:
    wrong = S3Settings(
        endpoint_url=s3_settings.endpoint_url,
        region=s3_settings.region,
        access_key_id="AKIAWRONGWRONGWRONG0",
        secret_access_key="not-the-secret",
    )
    store = S3ObjectStore(guarded_bucket, "artifacts", wrong)
    with pytest.raises(StoreUnreachableError) as info:
        _operations(store)[operation]()
    assert "access denied" in info.value.reason
    assert info.value.hint is not None
    assert "AWS_ACCESS_KEY_ID" in info.value.hint


def test_no_credentials_at_all(
    s3_bucket: str, s3_settings: S3Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # A region unique to this test, so no client cached by an earlier test is reused.
    bare = S3Settings(endpoint_url=s3_settings.endpoint_url, region="eu-north-1")
    store = S3ObjectStore(s3_bucket, "artifacts", bare)
    with pytest.raises(StoreUnreachableError) as info:
        store.check()
    assert "no usable credentials" in info.value.reason
    assert info.value.hint is not None
    assert "AWS_SECRET_ACCESS_KEY" in info.value.hint


class FailingStream(io.RawIOBase):
    """Yields ``good`` zero bytes, then fails like a dropped network source would."""

    def __init__(self, good: int, error: Exception | None = None) -> None:
        super().__init__()
        self._left = good
        self._error = error or ConnectionResetError("source went away")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        if self._left <= 0:
            raise self._error
        n = min(len(buffer), self._left)
        buffer[:n] = bytes(n)
        self._left -= n
        return n


def test_failed_multipart_upload_is_aborted(s3_url: str, s3_settings: S3Settings) -> None:
    import boto3

    store = open_object_store(s3_url, s3=s3_settings)
    assert isinstance(store, S3ObjectStore)
    store.put("keep", b"old")
    with pytest.raises(ConnectionResetError):
        store.put("big", FailingStream(UPLOAD_BLOCK_SIZE + 1024))  # one part went up
    with pytest.raises(ConnectionResetError):
        store.put("keep", FailingStream(10))  # a small stream, never sent at all
    # The source's own errors pass through untranslated (not "missing bucket"...).
    with pytest.raises(FileNotFoundError, match="source file vanished"):
        store.put("gone", FailingStream(10, FileNotFoundError("source file vanished")))
    assert not store.exists("big")
    assert store.get("keep") == b"old"
    assert list(store.list()) == ["keep"]
    client = boto3.client(
        "s3",
        endpoint_url=s3_settings.endpoint_url,
        region_name=s3_settings.region,
        aws_access_key_id=s3_settings.access_key_id,
        aws_secret_access_key=s3_settings.secret_access_key,
    )
    uploads = client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
    assert uploads == []


def test_put_is_immediately_visible(s3_url: str, s3_settings: S3Settings) -> None:
    store = open_object_store(s3_url, s3=s3_settings)
    other = open_object_store(s3_url, s3=s3_settings)
    for i in range(5):
        store.put(f"k{i}", b"x")
        assert other.exists(f"k{i}")
        assert list(other.list()) == [f"k{j}" for j in range(i + 1)]
    store.delete("k0")
    assert not other.exists("k0")


def test_store_at_the_bucket_root(s3_bucket: str, s3_settings: S3Settings) -> None:
    root = open_object_store(f"s3://{s3_bucket}", s3=s3_settings)
    nested = open_object_store(f"s3://{s3_bucket}/team/artifacts/", s3=s3_settings)
    assert nested.url == f"s3://{s3_bucket}/team/artifacts"
    nested.put("model.bin", b"w")
    root.put("top", b"t")
    assert list(root.list()) == ["team/artifacts/model.bin", "top"]
    assert list(nested.list()) == ["model.bin"]
    assert root.get("team/artifacts/model.bin") == b"w"
    root.check()


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "s3://bucket/a//b", "s3://bucket/../x"])
def test_bad_urls_are_refused(url: str, s3_settings: S3Settings) -> None:
    with pytest.raises(StoreUnreachableError) as info:
        open_object_store(url, s3=s3_settings)
    assert info.value.url.startswith("s3://")
