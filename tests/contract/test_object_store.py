"""One contract for every ObjectStore: local folder, in-memory, and S3 (moto over HTTP)."""

from __future__ import annotations

import hashlib
import io
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopline.config import S3Settings
from loopline.store.errors import InvalidKeyError, ObjectNotFoundError
from loopline.store.objects import CHUNK_SIZE, ObjectInfo, ObjectStore, open_object_store
from loopline.store.objects.memory import MemoryObjectStore

MiB = 1024 * 1024


@pytest.fixture(params=["local", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield open_object_store(str(tmp_path / "objects"))
    elif request.param == "memory":
        name = f"contract-{uuid.uuid4().hex}"
        yield open_object_store(f"memory://{name}")
        MemoryObjectStore.release(name)
    else:
        url: str = request.getfixturevalue("s3_url")
        yield open_object_store(url, s3=request.getfixturevalue("s3_settings"))


class GeneratedStream(io.RawIOBase):
    """A stream of ``size`` pseudo-random bytes made on demand (never held whole)."""

    def __init__(self, size: int, seed: int = 7, chunk: int = MiB) -> None:
        super().__init__()
        self._left = size
        self._rng = random.Random(seed)
        self._chunk = chunk
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        if not self._pending and self._left:
            n = min(self._chunk, self._left)
            self._pending = self._rng.randbytes(n)
            self._left -= n
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def generated_digest(size: int, seed: int = 7, chunk: int = MiB) -> str:
    h = hashlib.sha256()
    stream = GeneratedStream(size, seed, chunk)
    while data := stream.read(CHUNK_SIZE):
        h.update(data)
    return h.hexdigest()


# -- round trips --------------------------------------------------------------------------


def test_put_get_bytes(store: ObjectStore) -> None:
    assert store.put("models/m1/model.bin", b"weights") == 7
    assert store.get("models/m1/model.bin") == b"weights"


def test_put_stream(store: ObjectStore) -> None:
    payload = bytes(range(256)) * 5000
    assert store.put("data/stream.bin", io.BytesIO(payload)) == len(payload)
    assert store.get("data/stream.bin") == payload


def test_put_empty_object(store: ObjectStore) -> None:
    assert store.put("empty", b"") == 0
    assert store.get("empty") == b""
    assert store.stat("empty").size == 0
    assert store.put("empty-stream", io.BytesIO(b"")) == 0
    assert store.exists("empty-stream")


def test_put_accepts_bytearray_and_memoryview(store: ObjectStore) -> None:
    store.put("ba", bytearray(b"abc"))
    store.put("mv", memoryview(b"defg"))
    assert store.get("ba") == b"abc"
    assert store.get("mv") == b"defg"


def test_overwrite_replaces_content(store: ObjectStore) -> None:
    store.put("k", b"first version")
    store.put("k", b"second")
    assert store.get("k") == b"second"
    assert list(store.list()) == ["k"]


def test_exists(store: ObjectStore) -> None:
    assert not store.exists("a/b")
    store.put("a/b", b"x")
    assert store.exists("a/b")
    assert not store.exists("a")  # a folder-like prefix is not an object
    assert not store.exists("a/b/c")


def test_stat(store: ObjectStore) -> None:
    store.put("s/obj", b"12345")
    info = store.stat("s/obj")
    assert isinstance(info, ObjectInfo)
    assert (info.key, info.size) == ("s/obj", 5)
    assert info.etag
    assert store.stat("s/obj").etag == info.etag  # stable while unchanged
    store.put("s/obj", b"123456789")
    assert store.stat("s/obj").etag != info.etag


def test_open_streams(store: ObjectStore) -> None:
    payload = b"0123456789" * 100_000
    store.put("o", payload)
    parts = []
    with store.open("o") as f:
        while chunk := f.read(65536):
            parts.append(chunk)
    assert b"".join(parts) == payload


@pytest.mark.slow
def test_large_object_streams_both_ways(store: ObjectStore) -> None:
    size = 40 * MiB + 123  # not a multiple of any part size
    assert store.put("big/blob", GeneratedStream(size)) == size
    assert store.stat("big/blob").size == size
    h = hashlib.sha256()
    with store.open("big/blob") as f:
        while chunk := f.read(CHUNK_SIZE):
            h.update(chunk)
    assert h.hexdigest() == generated_digest(size)


# -- listing -------------------------------------------------------------------------------

KEYS = ["b/2", "a/1", "a/10", "a-x", "a/sub/3", "ab", "a/2"]


@pytest.fixture
def filled(store: ObjectStore) -> ObjectStore:
    for key in KEYS:
        store.put(key, key.encode())
    return store


def test_list_everything_sorted(filled: ObjectStore) -> None:
    assert list(filled.list()) == sorted(KEYS)
    assert list(filled.list("")) == sorted(KEYS)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("a/", ["a/1", "a/10", "a/2", "a/sub/3"]),
        ("a", ["a-x", "a/1", "a/10", "a/2", "a/sub/3", "ab"]),  # not a folder boundary
        ("a/1", ["a/1", "a/10"]),
        ("a/sub/", ["a/sub/3"]),
        ("a/su", ["a/sub/3"]),
        ("b/2", ["b/2"]),
        ("zzz", []),
        ("nope/", []),
        ("a/sub/3/", []),
    ],
)
def test_list_prefix(filled: ObjectStore, prefix: str, expected: list[str]) -> None:
    assert list(filled.list(prefix)) == expected


@pytest.mark.parametrize(
    ("prefix", "after", "expected"),
    [
        ("a/", "a/10", ["a/2", "a/sub/3"]),
        ("a/", "a/1", ["a/10", "a/2", "a/sub/3"]),  # strictly after
        ("a/", "a/0", ["a/1", "a/10", "a/2", "a/sub/3"]),  # not a key itself
        ("", "a/sub/3", ["ab", "b/2"]),
        ("a/", "zzz", []),
    ],
)
def test_list_after_a_key(
    filled: ObjectStore, prefix: str, after: str, expected: list[str]
) -> None:
    assert list(filled.list(prefix, start_after=after)) == expected


def test_list_of_empty_store(store: ObjectStore) -> None:
    assert list(store.list()) == []


@pytest.mark.parametrize("prefix", ["../", "/abs", "a//", "a\\b", "a/../"])
def test_list_refuses_bad_prefix(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(InvalidKeyError):
        list(store.list(prefix))


# -- deleting ------------------------------------------------------------------------------


def test_delete(store: ObjectStore) -> None:
    store.put("d/1", b"x")
    store.put("d/2", b"y")
    store.delete("d/1")
    assert not store.exists("d/1")
    assert list(store.list()) == ["d/2"]
    with pytest.raises(ObjectNotFoundError):
        store.get("d/1")


def test_delete_missing_key_is_fine(store: ObjectStore) -> None:
    store.delete("never/there")
    store.put("x", b"1")
    store.delete("x")
    store.delete("x")


# -- errors --------------------------------------------------------------------------------

BAD_KEYS = ["../x", "a/../../b", "/abs", "a\x00b", "a//b", "a\\b", "", "./a", "a/", ".tmp/x"]


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize("operation", ["put", "get", "open", "exists", "stat", "delete"])
def test_invalid_keys_refused(store: ObjectStore, key: str, operation: str) -> None:
    calls = {
        "put": lambda: store.put(key, b"evil"),
        "get": lambda: store.get(key),
        "open": lambda: store.open(key),
        "exists": lambda: store.exists(key),
        "stat": lambda: store.stat(key),
        "delete": lambda: store.delete(key),
    }
    with pytest.raises(InvalidKeyError) as info:
        calls[operation]()
    assert repr(key) in str(info.value)
    assert list(store.list()) == []


@pytest.mark.parametrize("operation", ["get", "open", "stat"])
def test_missing_key_raises_not_found(store: ObjectStore, operation: str) -> None:
    store.put("other", b"x")
    with pytest.raises(ObjectNotFoundError) as info:
        getattr(store, operation)("missing/key")
    assert info.value.key == "missing/key"
    assert info.value.store == store.url
    assert "missing/key" in str(info.value)


def test_check_passes_on_a_usable_store(store: ObjectStore) -> None:
    store.put("k", b"v")  # the local store creates its folder on first put
    store.check()
    assert list(store.list()) == ["k"]  # check() leaves nothing visible behind


def test_is_an_object_store(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)
    assert store.url


# -- opening by URL --------------------------------------------------------------------------


def test_memory_url_shares_one_store_per_name() -> None:
    name = f"shared-{uuid.uuid4().hex}"
    try:
        first = open_object_store(f"memory://{name}")
        first.put("k", b"v")
        assert open_object_store(f"memory://{name}").get("k") == b"v"
        assert not open_object_store(f"memory://{name}-other").exists("k")
        assert not open_object_store("memory://").exists("k")
    finally:
        MemoryObjectStore.release(name)
        MemoryObjectStore.release(f"{name}-other")


def test_file_url_and_plain_path_open_the_same_folder(tmp_path: Path) -> None:
    open_object_store(f"file://{tmp_path}").put("k", b"v")
    assert open_object_store(str(tmp_path)).get("k") == b"v"
    assert (tmp_path / "k").read_bytes() == b"v"


# -- length limits (in bytes of UTF-8, not characters) ---------------------------------------

TOO_LONG_KEYS = [
    pytest.param("x" * 256, "255 bytes", id="part-of-256-ascii"),
    pytest.param("x" * 300, "255 bytes", id="part-of-300-ascii"),
    pytest.param("data/" + "é" * 128, "255 bytes", id="part-of-128-e-acute"),  # 256 bytes
    pytest.param("é" * 250, "255 bytes", id="part-of-250-e-acute"),  # 500 bytes
    pytest.param("/".join(["é" * 100] * 6), "1024 bytes", id="key-of-1205-bytes"),
]


@pytest.mark.parametrize(("key", "limit"), TOO_LONG_KEYS)
@pytest.mark.parametrize("operation", ["put", "get", "open", "exists", "stat", "delete"])
def test_keys_over_the_byte_limits_are_refused(
    store: ObjectStore, key: str, limit: str, operation: str
) -> None:
    calls = {
        "put": lambda: store.put(key, b"x"),
        "get": lambda: store.get(key),
        "open": lambda: store.open(key),
        "exists": lambda: store.exists(key),
        "stat": lambda: store.stat(key),
        "delete": lambda: store.delete(key),
    }
    with pytest.raises(InvalidKeyError) as info:
        calls[operation]()
    assert info.value.key == key  # the whole key, though the message shows its start
    assert limit in str(info.value)
    assert len(str(info.value)) < 500
    assert list(store.list()) == []


def test_keys_at_the_byte_limits_work(store: ObjectStore) -> None:
    longest_part = "é" * 127 + "x"  # 255 bytes
    long_key = "/".join(["p" * 250, "q" * 250, "r" * 250, longest_part])  # 1008 bytes
    for key in (longest_part, "a/" + longest_part, long_key[:-1]):
        store.put(key, key.encode())
        assert store.get(key) == key.encode()
        assert store.exists(key)
    assert longest_part in list(store.list())


def test_a_key_that_is_not_utf8_is_refused(store: ObjectStore) -> None:
    key = "bad-\udcff-name"  # what os.fsdecode makes of an undecodable byte
    with pytest.raises(InvalidKeyError, match="surrogate"):
        store.put(key, b"x")
    assert list(store.list()) == []


@pytest.mark.s3
def test_s3_counts_its_prefix_in_the_key_limit(s3_bucket: str, s3_settings: S3Settings) -> None:
    store = open_object_store(f"s3://{s3_bucket}/{'p' * 100}", s3=s3_settings)
    key = "/".join(["k" * 250] * 4)  # 1003 bytes: a valid key, too long under the prefix
    with pytest.raises(InvalidKeyError, match="1024 bytes") as info:
        store.put(key, b"x")
    assert info.value.key == key
    assert list(store.list()) == []
