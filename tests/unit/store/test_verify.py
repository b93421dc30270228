"""Verifying a whole content store: corrupt, unreadable, missing and orphan blobs; repair."""

from __future__ import annotations

import errno
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopline.store.objects import ContentStore, ObjectStore, open_object_store
from loopline.store.objects import verify as verify_module
from loopline.store.objects.local import TEMP_DIR
from loopline.store.objects.memory import MemoryObjectStore
from loopline.store.objects.verify import BlobRef, verify_store


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield open_object_store(str(tmp_path / "objects"))
    else:
        name = f"verify-{uuid.uuid4().hex}"
        yield open_object_store(f"memory://{name}")
        MemoryObjectStore.release(name)


@pytest.fixture
def cas(store: ObjectStore) -> ContentStore:
    return ContentStore(store)


def _corrupt(cas: ContentStore, digest: str) -> None:
    data = bytearray(cas.store.get(cas.key_for(digest)))
    data[len(data) // 2] ^= 0xFF
    cas.store.put(cas.key_for(digest), bytes(data))


def test_an_intact_store(cas: ContentStore) -> None:
    digests = [cas.put(f"blob {i}".encode() * 100) for i in range(5)]
    calls: list[tuple[int, int, int]] = []
    report = verify_store(
        cas,
        [BlobRef(d, f"dataset d{i}@1") for i, d in enumerate(digests)],
        progress=lambda *a: calls.append(a),
    )
    assert (report.blobs, report.intact, report.referenced) == (5, 5, 5)
    assert report.bytes == sum(len(f"blob {i}".encode() * 100) for i in range(5))
    assert report.findings == []
    assert not report.damaged
    assert [c[:2] for c in calls] == [(i, 5) for i in range(1, 6)]
    assert calls[-1][2] == report.bytes


def test_corrupt_missing_and_orphan_blobs_are_told_apart(cas: ContentStore) -> None:
    good = cas.put(b"good" * 100)
    bad = cas.put(b"bad" * 100)
    orphan = cas.put(b"nobody names me")
    lost = hashlib.sha256(b"never stored").hexdigest()
    _corrupt(cas, bad)
    refs = [
        BlobRef(good, "dataset churn@1 (data)"),
        BlobRef(bad, "dataset churn@2 (data)"),
        BlobRef(bad, "model churn/1 file 'model.skops'"),
        BlobRef(lost, "run 0123456789ab artifact 'report.html'"),
        BlobRef("not-a-digest", "ignored"),
    ]
    report = verify_store(cas, refs)
    assert [(f.problem, f.digest) for f in report.findings] == [
        ("corrupt", bad),
        ("missing", lost),
        ("orphan", orphan),
    ]
    corrupt, missing, _ = report.findings
    assert corrupt.referenced_by == (
        "dataset churn@2 (data)",
        "model churn/1 file 'model.skops'",
    )
    assert corrupt.detail.startswith("content hashes to sha256 ")
    assert missing.referenced_by == ("run 0123456789ab artifact 'report.html'",)
    assert report.damaged
    assert report.to_dict()["counts"] == {"corrupt": 1, "unreadable": 0, "missing": 1, "orphan": 1}
    assert not corrupt.repaired
    assert cas.store.exists(cas.key_for(bad))  # without repair nothing changes


def test_without_references_there_are_no_orphans(cas: ContentStore) -> None:
    cas.put(b"x")
    report = verify_store(cas)
    assert report.referenced is None
    assert report.findings == []


def test_repair_removes_corrupt_blobs_so_the_next_put_rewrites_them(cas: ContentStore) -> None:
    bad = cas.put(b"content" * 1000)
    good = cas.put(b"other")
    _corrupt(cas, bad)
    report = verify_store(cas, [BlobRef(bad, "dataset a@1 (data)")], repair=True)
    [corrupt, orphan] = report.findings
    assert (corrupt.problem, corrupt.repaired) == ("corrupt", True)
    assert (orphan.problem, orphan.digest) == ("orphan", good)
    assert not cas.exists(bad)
    assert cas.exists(good)  # orphans are reported, never removed

    again = verify_store(cas, [BlobRef(bad, "dataset a@1 (data)")])
    assert [(f.problem, f.digest) for f in again.findings] == [("missing", bad), ("orphan", good)]
    cas.put(b"content" * 1000)
    assert not verify_store(cas, [BlobRef(bad, "dataset a@1 (data)")]).damaged


def test_repair_leaves_a_blob_that_a_put_rewrote_meanwhile(
    cas: ContentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"rewritten while verify ran" * 100
    digest = cas.put(content)
    _corrupt(cas, digest)
    real_hash = verify_module._hash
    calls = [0]

    def hash_then_race(store_cas: ContentStore, key: str) -> tuple[str, int]:
        calls[0] += 1
        result = real_hash(store_cas, key)
        if calls[0] == 1:
            ContentStore(cas.store).put(content)  # another process repairs it
        return result

    monkeypatch.setattr(verify_module, "_hash", hash_then_race)
    report = verify_store(cas, repair=True)
    assert [f.problem for f in report.findings] == ["corrupt"]
    assert cas.get(digest) == content  # the good copy was not removed


def test_a_blob_that_cannot_be_read_is_unreadable_and_kept(
    cas: ContentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = cas.put(b"on a failing disk")
    real_open = cas.store.open

    class Failing:
        def __init__(self, key: str) -> None:
            self._f = real_open(key)

        def __enter__(self) -> Failing:
            return self

        def __exit__(self, *exc: object) -> None:
            self._f.close()

        def read(self, size: int = -1) -> bytes:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(cas.store, "open", Failing)
    report = verify_store(cas, [BlobRef(digest, "dataset x@1 (data)")], repair=True)
    [finding] = report.findings
    assert finding.problem == "unreadable"
    assert "Input/output error" in finding.detail
    assert finding.referenced_by == ("dataset x@1 (data)",)
    assert not finding.repaired
    assert report.damaged
    monkeypatch.undo()
    assert cas.get(digest) == b"on a failing disk"


def test_stale_temporary_files_are_reported_and_removed_on_repair(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    cas = ContentStore(open_object_store(str(root)))
    cas.put(b"x")
    stale = root / TEMP_DIR / "put-00000000-1-0123456789ab.part"  # another host's, old
    stale.write_bytes(b"y" * 5000)
    os.utime(stale, (1_000_000, 1_000_000))
    report = verify_store(cas)
    assert [(t.path, t.size) for t in report.temp_files] == [(stale, 5000)]
    assert not report.temp_removed
    assert stale.exists()
    report = verify_store(cas, repair=True)
    assert report.temp_removed
    assert not stale.exists()
    assert not report.damaged  # leftovers are not damage
