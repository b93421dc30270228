"""The content-addressed layer: dedupe, verification on every read path, digest rules."""

from __future__ import annotations

import hashlib
import io
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loopline.config import S3Settings
from loopline.errors import (
    IntegrityError,
    InvalidKeyError,
    ObjectNotFoundError,
    ObjectStoreError,
)
from loopline.store.objects import ContentStore, ObjectStore, open_object_store
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
    with pytest.raises(IntegrityError):
        cas.get(digest)
    with pytest.raises(IntegrityError):
        cas.verify(digest)
