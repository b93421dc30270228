"""The content-addressed layer: dedupe, verification on every read path, digest rules."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from loopline.config import S3Settings
from loopline.errors import IntegrityError
from loopline.store.errors import (
    InvalidKeyError,
    ObjectNotFoundError,
    ObjectStoreError,
    StoreFullError,
)
from loopline.store.objects import ContentStore, ObjectInfo, ObjectStore, open_object_store
from loopline.store.objects import cas as cas_module
from loopline.store.objects.memory import MemoryObjectStore

PAYLOAD = b"the quick brown fox jumps over the lazy dog\n" * 1000
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield open_object_store(str(tmp_path / "objects"))
    else:
        name = f"cas-{uuid.uuid4().hex}"
        yield open_object_store(f"memory://{name}")
        MemoryObjectStore.release(name)


@pytest.fixture
def cas(store: ObjectStore) -> ContentStore:
    return ContentStore(store)


def _tamper(cas: ContentStore, digest: str, content: bytes) -> None:
    """Replace the stored object behind the content store's back."""
    cas.store.put(cas.key_for(digest), content)


def test_put_returns_sha256_and_lays_out_keys(cas: ContentStore) -> None:
    digest = cas.put(PAYLOAD)
    assert digest == DIGEST
    assert cas.key_for(digest) == f"cas/sha256/{DIGEST[:2]}/{DIGEST[2:]}"
    assert list(cas.store.list()) == [cas.key_for(digest)]
    assert cas.get(digest) == PAYLOAD
    assert cas.exists(digest)
    assert list(cas.digests()) == [digest]


def test_same_content_is_stored_once(cas: ContentStore) -> None:
    first = cas.put(PAYLOAD)
    etag = cas.store.stat(cas.key_for(first)).etag
    assert cas.put(PAYLOAD) == first
    assert cas.put(io.BytesIO(PAYLOAD)) == first
    assert list(cas.store.list()) == [cas.key_for(first)]
    assert cas.store.stat(cas.key_for(first)).etag == etag  # not rewritten
    cas.put(b"other")
    assert len(list(cas.store.list())) == 2


def test_a_truncated_copy_is_repaired_by_the_next_put(cas: ContentStore) -> None:
    digest = cas.put(PAYLOAD)
    _tamper(cas, digest, PAYLOAD[:-10])
    assert cas.put(PAYLOAD) == digest
    assert cas.get(digest) == PAYLOAD


def test_empty_content(cas: ContentStore) -> None:
    digest = cas.put(b"")
    assert digest == hashlib.sha256(b"").hexdigest()
    assert cas.get(digest) == b""
    cas.verify(digest)


def _flip_one_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda d: _flip_one_byte(d, len(d) // 2), id="flipped-byte"),
        pytest.param(lambda d: d[:-1], id="truncated"),
        pytest.param(lambda d: d + b"\0", id="extended"),
        pytest.param(lambda d: b"", id="emptied"),
    ],
)
def test_corruption_is_detected_on_every_read_path(
    cas: ContentStore, tmp_path: Path, corrupt: Callable[[bytes], bytes]
) -> None:
    digest = cas.put(PAYLOAD)
    _tamper(cas, digest, corrupt(PAYLOAD))

    with pytest.raises(IntegrityError) as info:
        cas.get(digest)
    assert info.value.expected == digest
    assert info.value.key == cas.key_for(digest)
    assert info.value.store == cas.store.url

    with cas.open(digest) as reader:
        chunks = iter(lambda: reader.read(4096), b"")
        with pytest.raises(IntegrityError):
            list(chunks)

    with pytest.raises(IntegrityError):
        cas.verify(digest)

    target = tmp_path / "out" / "restored.bin"
    target.parent.mkdir()
    with pytest.raises(IntegrityError):
        cas.get_to_file(digest, target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary file left either


def test_get_to_file_keeps_the_previous_file_on_corruption(
    cas: ContentStore, tmp_path: Path
) -> None:
    digest = cas.put(PAYLOAD)
    target = tmp_path / "model.bin"
    target.write_bytes(b"previous")
    _tamper(cas, digest, _flip_one_byte(PAYLOAD, 0))
    with pytest.raises(IntegrityError):
        cas.get_to_file(digest, target)
    assert target.read_bytes() == b"previous"


def test_open_verifies_only_at_the_end(cas: ContentStore) -> None:
    digest = cas.put(PAYLOAD)
    _tamper(cas, digest, _flip_one_byte(PAYLOAD, len(PAYLOAD) - 1))
    with cas.open(digest) as reader:
        head = reader.read(100)  # unverified data: the documented contract
        assert head == PAYLOAD[:100]
        assert not reader.verified
        with pytest.raises(IntegrityError):
            reader.read()
        with pytest.raises(IntegrityError):  # and it keeps failing
            reader.read(1)


def test_open_of_intact_blob(cas: ContentStore) -> None:
    digest = cas.put(PAYLOAD)
    with cas.open(digest) as reader:
        assert reader.read() == PAYLOAD
        assert reader.verified
        assert reader.read() == b""
    buffer = bytearray(len(PAYLOAD) + 10)
    with cas.open(digest) as reader:
        n = reader.readinto(buffer)
        assert bytes(buffer[:n]) == PAYLOAD[:n]


def test_get_to_file(cas: ContentStore, tmp_path: Path) -> None:
    digest = cas.put(PAYLOAD)
    out = tmp_path / "out"
    out.mkdir()
    target = cas.get_to_file(digest, out / "copy.bin")
    assert target == out / "copy.bin"
    assert target.read_bytes() == PAYLOAD
    assert [p.name for p in out.iterdir()] == ["copy.bin"]


def test_missing_blob(cas: ContentStore, tmp_path: Path) -> None:
    assert not cas.exists(DIGEST)
    with pytest.raises(ObjectNotFoundError):
        cas.get(DIGEST)
    with pytest.raises(ObjectNotFoundError):
        cas.open(DIGEST)
    with pytest.raises(ObjectNotFoundError):
        cas.get_to_file(DIGEST, tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        DIGEST.upper(),
        DIGEST[:-1] + "g",
        DIGEST + "0",
        "../" + DIGEST[3:],
        DIGEST[:2] + "/" + DIGEST[3:],
    ],
)
def test_bad_digest_strings_are_refused(cas: ContentStore, bad: str) -> None:
    for call in (cas.get, cas.open, cas.exists, cas.verify, cas.key_for):
        with pytest.raises(InvalidKeyError) as info:
            call(bad)
        assert repr(bad) in str(info.value)
        assert "64" in str(info.value)


def test_bad_prefix_is_refused(store: ObjectStore) -> None:
    with pytest.raises(InvalidKeyError):
        ContentStore(store, prefix="../escape")


def test_custom_prefix(store: ObjectStore) -> None:
    cas = ContentStore(store, prefix="blobs/v1")
    digest = cas.put(b"x")
    assert list(store.list()) == [f"blobs/v1/sha256/{digest[:2]}/{digest[2:]}"]


def test_stream_larger_than_the_spool_goes_to_disk(
    cas: ContentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    spools: list[tempfile.SpooledTemporaryFile[bytes]] = []
    real = tempfile.SpooledTemporaryFile

    def recording(*args: object, **kwargs: object) -> tempfile.SpooledTemporaryFile[bytes]:
        spool: tempfile.SpooledTemporaryFile[bytes] = real(*args, **kwargs)
        spools.append(spool)
        return spool

    monkeypatch.setattr(cas_module, "SPOOL_MAX_MEMORY", 64 * 1024)
    monkeypatch.setattr(cas_module.tempfile, "SpooledTemporaryFile", recording)
    payload = bytes(range(256)) * 4096 * 3  # 3 MiB, more than a CHUNK_SIZE too
    digest = cas.put(io.BytesIO(payload))
    assert digest == hashlib.sha256(payload).hexdigest()
    assert cas.get(digest) == payload
    assert len(spools) == 1
    assert spools[0]._rolled  # it went to disk instead of growing in memory


def test_put_file(cas: ContentStore, tmp_path: Path) -> None:
    source = tmp_path / "data.bin"
    source.write_bytes(PAYLOAD)
    assert cas.put_file(source) == DIGEST
    assert cas.put_file(source) == DIGEST
    assert cas.get(DIGEST) == PAYLOAD
    assert len(list(cas.digests())) == 1


def test_put_file_refuses_a_file_changed_while_stored(
    cas: ContentStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "growing.log"
    source.write_bytes(PAYLOAD)

    def absent_and_meanwhile_appended(key: str, size: int) -> bool:
        with source.open("ab") as f:
            f.write(b"one more line")
        return False

    monkeypatch.setattr(cas, "_present", absent_and_meanwhile_appended)
    with pytest.raises(ObjectStoreError, match="changed while it was stored"):
        cas.put_file(source)
    assert list(cas.store.list()) == []


@pytest.mark.s3
def test_over_s3(s3_url: str, s3_settings: S3Settings, tmp_path: Path) -> None:
    cas = ContentStore(open_object_store(s3_url, s3=s3_settings))
    digest = cas.put(io.BytesIO(PAYLOAD))
    assert cas.put(PAYLOAD) == digest
    assert cas.get(digest) == PAYLOAD
    cas.get_to_file(digest, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == PAYLOAD
    _tamper(cas, digest, _flip_one_byte(PAYLOAD, 10))
    # A put of existing content of the right size costs no download on S3 ...
    assert cas.put(PAYLOAD) == digest
    # ... the read finds the corruption, and removes the copy so the next put repairs it.
    with pytest.raises(IntegrityError):
        cas.get(digest)
    assert not cas.exists(digest)
    assert cas.put(PAYLOAD) == digest
    assert cas.get(digest) == PAYLOAD
    _tamper(cas, digest, _flip_one_byte(PAYLOAD, 11))
    with pytest.raises(IntegrityError):
        cas.verify(digest)
    assert not cas.exists(digest)


# -- repair by the next put, at the cost of a read ------------------------------------------


def _put_by(how: str, cas: ContentStore, tmp_path: Path) -> str:
    if how == "bytes":
        return cas.put(PAYLOAD)
    if how == "stream":
        return cas.put(io.BytesIO(PAYLOAD))
    source = tmp_path / "payload.bin"
    source.write_bytes(PAYLOAD)
    return cas.put_file(source)


@pytest.mark.parametrize("how", ["bytes", "stream", "file"])
def test_a_corrupt_copy_of_the_right_size_is_repaired_by_the_next_put(
    cas: ContentStore, tmp_path: Path, how: str
) -> None:
    digest = cas.put(PAYLOAD)
    _tamper(cas, digest, _flip_one_byte(PAYLOAD, len(PAYLOAD) // 2))  # same size
    again = ContentStore(cas.store)  # another process: nothing remembered
    assert _put_by(how, again, tmp_path) == digest
    assert again.get(digest) == PAYLOAD
    assert cas.get(digest) == PAYLOAD


class CountingStore:
    """An ObjectStore that counts writes and reads, and can report a frozen etag."""

    def __init__(self, inner: ObjectStore, frozen_etag: str | None = None) -> None:
        self.inner = inner
        self.frozen_etag = frozen_etag
        self.puts = 0
        self.opens = 0

    @property
    def url(self) -> str:
        return self.inner.url

    def put(self, key: str, data: bytes | memoryview | IO[bytes]) -> int:
        self.puts += 1
        return self.inner.put(key, data)

    def open(self, key: str) -> IO[bytes]:
        self.opens += 1
        return self.inner.open(key)

    def stat(self, key: str) -> ObjectInfo:
        info = self.inner.stat(key)
        if self.frozen_etag is None:
            return info
        return ObjectInfo(info.key, info.size, self.frozen_etag)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_an_intact_copy_costs_a_read_once_and_never_a_write(store: ObjectStore) -> None:
    digest = ContentStore(store).put(PAYLOAD)
    counting = CountingStore(store)
    cas = ContentStore(counting)
    assert cas.put(PAYLOAD) == digest
    assert (counting.puts, counting.opens) == (0, 1)  # verified by reading, not rewritten
    assert cas.put(io.BytesIO(PAYLOAD)) == digest
    assert cas.put(PAYLOAD) == digest
    assert (counting.puts, counting.opens) == (0, 1)  # remembered as intact: a stat only


def test_a_copy_changed_after_it_was_verified_is_checked_again(store: ObjectStore) -> None:
    cas = ContentStore(store)
    digest = cas.put(PAYLOAD)
    assert cas.put(PAYLOAD) == digest  # verified and remembered
    _tamper(cas, digest, _flip_one_byte(PAYLOAD, 3))  # a new etag
    assert cas.put(PAYLOAD) == digest
    assert cas.get(digest) == PAYLOAD


def _read_through(cas: ContentStore, digest: str, how: str) -> None:
    if how == "get":
        cas.get(digest)
    elif how == "verify":
        cas.verify(digest)
    else:
        with cas.open(digest) as reader:
            reader.read()


@pytest.mark.parametrize("read", ["get", "open", "verify"])
def test_a_failed_read_forgets_that_the_copy_was_intact(store: ObjectStore, read: str) -> None:
    # Bit rot that leaves the etag as it was: only reading the content can tell.
    counting = CountingStore(store, frozen_etag="unchanged")
    cas = ContentStore(counting)
    digest = cas.put(PAYLOAD)
    assert cas.put(PAYLOAD) == digest  # remembered as intact under the etag "unchanged"
    store.put(cas.key_for(digest), _flip_one_byte(PAYLOAD, 7))
    with pytest.raises(IntegrityError):
        _read_through(cas, digest, read)
    writes = counting.puts
    assert cas.put(PAYLOAD) == digest
    assert counting.puts == writes + 1  # checked again, found corrupt, rewritten
    assert cas.get(digest) == PAYLOAD


def test_discard_removes_a_blob_so_the_next_put_writes_it(cas: ContentStore) -> None:
    digest = cas.put(PAYLOAD)
    cas.discard(digest)
    assert not cas.exists(digest)
    assert cas.put(PAYLOAD) == digest
    assert cas.get(digest) == PAYLOAD


# -- a full disk ---------------------------------------------------------------------------


def _local_cas(tmp_path: Path) -> tuple[ContentStore, Path]:
    root = tmp_path / "objects"
    return ContentStore(open_object_store(str(root))), root


def test_a_full_disk_raises_store_full_and_leaves_nothing_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline.store.objects import local

    cas, root = _local_cas(tmp_path)
    kept = cas.put(b"written before the disk filled up")
    real_write = local._write_chunk
    budget = [64 * 1024]

    def write_until_full(fd: int, view: memoryview) -> int:
        if len(view) > budget[0]:
            real_write(fd, view[: budget[0]])  # a partial temporary file, then ENOSPC
            raise OSError(errno.ENOSPC, "No space left on device")
        budget[0] -= len(view)
        return real_write(fd, view)

    monkeypatch.setattr(local, "_write_chunk", write_until_full)
    for data in (PAYLOAD * 4, io.BytesIO(PAYLOAD * 4)):
        with pytest.raises(StoreFullError) as info:
            cas.put(data)
        assert "ENOSPC" in info.value.reason
        assert str(root) in str(info.value)
        assert not cas.exists(hashlib.sha256(PAYLOAD * 4).hexdigest())
        assert list(cas.digests()) == [kept]
        assert os.listdir(root / ".tmp") == []
    monkeypatch.setattr(local, "_write_chunk", real_write)
    assert cas.get(kept) == b"written before the disk filled up"
    digest = cas.put(PAYLOAD * 4)  # space again: it works
    assert cas.get(digest) == PAYLOAD * 4


def test_a_full_temporary_folder_raises_store_full(
    cas: ContentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FullSpool(io.BytesIO):
        def __init__(self, max_size: int = 0) -> None:
            super().__init__()

        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cas_module.tempfile, "SpooledTemporaryFile", FullSpool)
    with pytest.raises(StoreFullError) as info:
        cas.put(io.BytesIO(PAYLOAD))
    message = str(info.value)
    for part in ("temporary folder", "ENOSPC", "TMPDIR", "nothing was stored"):
        assert part in message
    assert list(cas.store.list()) == []


def test_an_unreadable_copy_is_written_afresh(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    cas = ContentStore(store)
    digest = cas.put(PAYLOAD)
    real_open = store.open

    class FailingRead(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(store, "open", lambda key: FailingRead())
    counting = CountingStore(store)
    assert ContentStore(counting).put(PAYLOAD) == digest
    assert counting.puts == 1
    monkeypatch.setattr(store, "open", real_open)
    assert cas.get(digest) == PAYLOAD
