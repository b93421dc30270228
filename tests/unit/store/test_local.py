"""The local store's own rules: temporary files of dead writers are swept, never those of
live ones, and every OSError becomes a loopline error that says what to do."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopline.store import tempfiles
from loopline.store.errors import (
    InvalidKeyError,
    ObjectStoreError,
    StoreFullError,
    StoreUnreachableError,
)
from loopline.store.objects.local import TEMP_DIR, LocalObjectStore

DEAD_WRITER = """
import os, sys
from loopline.store import tempfiles
fd, name = tempfiles.create(sys.argv[1], sys.argv[2], sys.argv[3])
os.write(fd, b"half of an object")
print(name)
os._exit(0)  # like a writer killed mid-put: the file stays
"""

LIVE_WRITER = """
import os, sys, time
from loopline.store import tempfiles
fd, name = tempfiles.create(sys.argv[1], sys.argv[2], sys.argv[3])
print(name, flush=True)
time.sleep(120)
"""


def _dead_writers_file(folder: Path, prefix: str = "put-", suffix: str = ".part") -> Path:
    """A temporary file left by a process that has exited (and was reaped)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [sys.executable, "-c", DEAD_WRITER, str(folder), prefix, suffix],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    path = Path(out.stdout.strip())
    assert path.exists()
    return path


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _temp_files(root: Path) -> list[str]:
    return sorted(os.listdir(root / TEMP_DIR)) if (root / TEMP_DIR).is_dir() else []


# -- temporary files ---------------------------------------------------------------------


def test_temporary_names_carry_their_writer(tmp_path: Path) -> None:
    fd, name = tempfiles.create(tmp_path, "put-", ".part")
    os.close(fd)
    assert Path(name).name.startswith(f"put-{tempfiles.owner()}-{os.getpid()}-")
    assert name.endswith(".part")


def test_the_first_put_of_the_next_writer_sweeps_what_dead_writers_left(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    LocalObjectStore(root).put("k", b"v")
    left = [_dead_writers_file(root / TEMP_DIR) for _ in range(2)]  # young, but writer gone
    assert _temp_files(root) == sorted(p.name for p in left)

    store = LocalObjectStore(root)
    assert _temp_files(root) == sorted(p.name for p in left)  # opening alone touches nothing
    store.put("k2", b"v2")
    assert _temp_files(root) == []
    assert sorted(store.list()) == ["k", "k2"]


def test_a_live_writers_file_is_never_swept_however_old(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    (root / TEMP_DIR).mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", LIVE_WRITER, str(root / TEMP_DIR), "put-", ".part"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        live = Path(proc.stdout.readline().strip())
        _age(live, 10 * 24 * 3600)
        own_fd, own = tempfiles.create(root / TEMP_DIR, "put-", ".part")  # this process's
        os.close(own_fd)
        _age(Path(own), 10 * 24 * 3600)
        store = LocalObjectStore(root)
        store.put("k", b"v")
        assert store.cleanup_temp(0) == 0
        assert store.stale_temp_files(0) == []
        assert live.exists()
        assert Path(own).exists()
    finally:
        proc.kill()
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()
    # Its writer is gone now: the file is a leftover.
    [stale] = LocalObjectStore(root).stale_temp_files()
    assert (stale.path, stale.why) == (live, "writer gone")
    assert LocalObjectStore(root).cleanup_temp() == 1
    assert not live.exists()


@pytest.mark.parametrize(
    "name",
    [
        "put-0123456789abcdef.part",  # a name from before writers were named
        "put-00000000-12345-0123456789ab.part",  # another host or container
    ],
)
def test_files_whose_writer_cannot_be_asked_are_swept_after_the_grace_period(
    tmp_path: Path, name: str
) -> None:
    root = tmp_path / "objects"
    (root / TEMP_DIR).mkdir(parents=True)
    path = root / TEMP_DIR / name
    path.write_bytes(b"x" * 1000)
    store = LocalObjectStore(root)
    store.put("k", b"v")
    assert path.exists()  # young: it may belong to a writer at work elsewhere
    assert store.cleanup_temp() == 0
    _age(path, tempfiles.DEFAULT_GRACE_S + 60)
    [stale] = store.stale_temp_files()
    assert stale.size == 1000
    assert stale.why.startswith("untouched for ")
    assert store.cleanup_temp() == 1
    assert not path.exists()


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_a_zombie_writer_counts_as_gone(tmp_path: Path) -> None:
    folder = tmp_path / "tmp"
    folder.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", DEAD_WRITER, str(folder), "put-", ".part"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    name = Path(proc.stdout.readline().strip())
    proc.stdout.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # exited, not yet reaped
        with open(f"/proc/{proc.pid}/stat", "rb") as f:
            if f.read().rpartition(b")")[2].split()[0] == b"Z":
                break
        time.sleep(0.01)
    try:
        assert [t.path for t in tempfiles.sweep(folder, prefix="put-")] == [name]
    finally:
        proc.wait(timeout=30)


def test_sweeping_only_touches_names_of_its_prefix_and_suffix(tmp_path: Path) -> None:
    mine = _dead_writers_file(tmp_path, "loopline-watch-", ".tmp")
    other = _dead_writers_file(tmp_path, "someone-else-", ".tmp")
    removed = tempfiles.sweep(tmp_path, prefix="loopline-watch-", suffix=".tmp")
    assert [t.path for t in removed] == [mine]
    assert other.exists()
    assert tempfiles.sweep(tmp_path / "missing", prefix="x") == []


# -- OSErrors become loopline errors ----------------------------------------------------------


def _fail(monkeypatch: pytest.MonkeyPatch, target: object, name: str, err: int) -> None:
    def failing(*args: object, **kwargs: object) -> object:
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(target, name, failing)


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (errno.EACCES, "not writable by this user"),
        (errno.EPERM, "not writable by this user"),
        (errno.EROFS, "mounted read-only"),
    ],
)
def test_a_store_that_cannot_be_written_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int, expected: str
) -> None:
    root = tmp_path / "objects"
    root.mkdir()
    store = LocalObjectStore(root)
    _fail(monkeypatch, Path, "mkdir", err)  # the temporary folder cannot be made
    with pytest.raises(StoreUnreachableError) as info:
        store.put("data/k", b"v")
    message = str(info.value)
    assert expected in message
    assert str(root) in message
    assert "'data/k'" in message
    assert errno.errorcode[err] in message


def test_write_errors_of_the_disk_become_store_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline.store.objects import local

    store = LocalObjectStore(tmp_path)
    store.put("kept", b"old")
    _fail(monkeypatch, local.os, "fsync", errno.EIO)
    with pytest.raises(ObjectStoreError) as info:
        store.put("kept", b"new")
    assert type(info.value) is ObjectStoreError
    assert "EIO" in str(info.value)
    assert "loopline store verify" in str(info.value)
    monkeypatch.undo()
    assert store.get("kept") == b"old"
    assert _temp_files(tmp_path) == []


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EDQUOT])
def test_full_disk_or_quota_when_making_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int
) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("first", b"1")  # the root and its temporary folder exist
    _fail(monkeypatch, Path, "mkdir", err)
    with pytest.raises(StoreFullError) as info:
        store.put("new/folder/k", b"v")
    assert info.value.key == "new/folder/k"
    assert errno.errorcode[err] in info.value.reason
    monkeypatch.undo()
    assert list(store.list()) == ["first"]
    assert _temp_files(tmp_path) == []


def test_read_errors_become_store_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("a/k", b"v")
    _fail(monkeypatch, Path, "open", errno.EACCES)
    with pytest.raises(StoreUnreachableError, match="not readable by this user"):
        store.get("a/k")
    with pytest.raises(StoreUnreachableError, match="not readable"):
        store.open("a/k")
    monkeypatch.undo()
    _fail(monkeypatch, Path, "stat", errno.EIO)
    with pytest.raises(ObjectStoreError, match="EIO"):
        store.stat("a/k")
    monkeypatch.undo()
    from loopline.store.objects import local

    _fail(monkeypatch, local.os, "scandir", errno.EACCES)
    with pytest.raises(StoreUnreachableError, match="cannot list the store"):
        list(store.list())


def test_delete_errors_become_store_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("k", b"v")
    _fail(monkeypatch, Path, "unlink", errno.EROFS)
    with pytest.raises(StoreUnreachableError, match="cannot delete 'k'"):
        store.delete("k")


@pytest.mark.skipif(sys.platform != "linux", reason="needs Linux's 4096-byte path limit")
def test_a_path_too_long_for_the_filesystem_is_an_invalid_key(tmp_path: Path) -> None:
    # Each part is a legal name, but root + key passes the system's path limit.
    # The root itself stays within the limit (4,096) whatever tmp_path's length.
    root = tmp_path
    while len(str(root)) < 3900:
        root = root / ("d" * max(1, min(200, 3900 - len(str(root)) - 1)))
    root.mkdir(parents=True)
    store = LocalObjectStore(root)
    key = "k" * 250
    with pytest.raises(InvalidKeyError, match="too long for this filesystem") as info:
        store.put(key, b"v")
    assert info.value.key == key
    assert _temp_files(root) == []


def test_errors_of_the_stream_being_stored_pass_through(tmp_path: Path) -> None:
    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:
            raise OSError(errno.EIO, "the source disk failed")

    store = LocalObjectStore(tmp_path)
    with pytest.raises(OSError, match="the source disk failed") as info:
        store.put("k", Broken())
    assert not isinstance(info.value, ObjectStoreError)
    assert not store.exists("k")
    assert _temp_files(tmp_path) == []
