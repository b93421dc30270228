"""The local store under stress: writers killed with SIGKILL, readers racing overwrites,
a full disk (simulated with RLIMIT_FSIZE), and paths that try to leave the root."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from loopline.store.errors import InvalidKeyError, StoreUnreachableError
from loopline.store.objects.local import TEMP_DIR, LocalObjectStore

MiB = 1024 * 1024

SLOW_WRITER = """
import io, sys, time
from loopline.store.objects.local import LocalObjectStore

class Slow(io.RawIOBase):
    def __init__(self, size):
        self.left = size
    def readable(self):
        return True
    def readinto(self, buffer):
        if not self.left:
            return 0
        time.sleep(0.02)
        n = min(len(buffer), self.left)
        buffer[:n] = b"\\xab" * n
        self.left -= n
        return n

LocalObjectStore(sys.argv[1]).put(sys.argv[2], Slow(int(sys.argv[3])))
print("finished")
"""


def _temp_files(root: Path) -> list[Path]:
    tmp = root / TEMP_DIR
    return sorted(tmp.iterdir()) if tmp.is_dir() else []


def _wait_for_partial_write(root: Path, proc: subprocess.Popen[str], at_least: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the writer finished before it could be killed"
        files = _temp_files(root)
        if files and files[0].stat().st_size >= at_least:
            return
        time.sleep(0.01)
    pytest.fail("the writer never got going")


@pytest.mark.parametrize("existing", [None, b"the previous version"])
def test_writer_killed_mid_put_leaves_no_object(tmp_path: Path, existing: bytes | None) -> None:
    root = tmp_path / "objects"
    store = LocalObjectStore(root)
    if existing is not None:
        store.put("models/big.bin", existing)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(root), "models/big.bin", str(200 * MiB)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_partial_write(root, proc, at_least=4 * MiB)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    if existing is None:
        assert not store.exists("models/big.bin")
        assert list(store.list()) == []
    else:
        assert store.get("models/big.bin") == existing  # the old version, whole
        assert list(store.list()) == ["models/big.bin"]
    [stray] = _temp_files(root)
    assert stray.stat().st_size >= 4 * MiB

    # The store is still usable, and the next writer sweeps the stray temporary file on
    # its first put: its name says its writer is gone, however young the file is.
    next_writer = LocalObjectStore(root)
    next_writer.put("models/big.bin", b"complete")
    assert store.get("models/big.bin") == b"complete"
    assert _temp_files(root) == []
    assert list(store.list()) == ["models/big.bin"]


def _version(i: int) -> bytes:
    body_size = 64 * 1024 + (i * 37_813) % (2 * MiB)
    body = bytes([i % 251]) * body_size
    return struct.pack(">QQ", i, body_size) + body


def _is_complete_version(data: bytes) -> bool:
    i, size = struct.unpack(">QQ", data[:16])
    return data == _version(i) and len(data) == 16 + size


def test_readers_only_ever_see_complete_versions(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.put("shared/key", _version(0))
    stop = threading.Event()
    failures: list[str] = []
    seen: set[int] = set()

    def read_forever(use_open: bool) -> None:
        while not stop.is_set():
            if use_open:
                with store.open("shared/key") as f:
                    data = f.read()
            else:
                data = store.get("shared/key")
            if not _is_complete_version(data):
                failures.append(f"torn read of {len(data)} bytes")
                return
            seen.add(struct.unpack(">Q", data[:8])[0])

    readers = [threading.Thread(target=read_forever, args=(n % 2 == 0,)) for n in range(3)]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 2.0
        i = 0
        while time.monotonic() < deadline and i < 300:
            i += 1
            store.put("shared/key", _version(i))
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=30)
    assert failures == []
    assert len(seen) > 3, "the readers did not overlap with the writer"
    assert list(store.list()) == ["shared/key"]
    assert _temp_files(tmp_path / "objects") == []


FULL_DISK_WRITER = """
import io, json, resource, signal, sys
from loopline.store.errors import StoreFullError
from loopline.store.objects.local import LocalObjectStore

# Writing past RLIMIT_FSIZE raises SIGXFSZ (which kills); ignored, write() fails with EFBIG,
# which is what a full disk or a quota looks like to the store.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, resource.RLIM_INFINITY))
store = LocalObjectStore(sys.argv[1])
results = []
attempts = [("big", b"x" * (4 * 1024 * 1024)), ("kept", io.BytesIO(b"y" * (3 * 1024 * 1024)))]
for key, data in attempts:
    try:
        store.put(key, data)
        results.append({"key": key, "error": None})
    except StoreFullError as exc:
        results.append({"key": key, "error": type(exc).__name__, "reason": exc.reason,
                        "message": str(exc)})
print(json.dumps(results))
"""


def test_full_disk_raises_store_full_and_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = LocalObjectStore(root)
    store.put("kept", b"the previous version")
    out = subprocess.run(
        [sys.executable, "-c", FULL_DISK_WRITER, str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    results = json.loads(out.stdout)
    assert [r["error"] for r in results] == ["StoreFullError", "StoreFullError"]
    assert "EFBIG" in results[0]["reason"]
    assert "'big'" in results[0]["message"]
    assert str(root) in results[0]["message"]
    assert not store.exists("big")
    assert store.get("kept") == b"the previous version"
    assert list(store.list()) == ["kept"]
    assert _temp_files(root) == []


# -- local specifics -------------------------------------------------------------------------


def test_symlinks_cannot_lead_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"do not read")
    root = tmp_path / "objects"
    store = LocalObjectStore(root)
    store.put("inside", b"ok")
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "filelink").symlink_to(outside / "secret")
    for call in (
        lambda: store.get("link/secret"),
        lambda: store.put("link/planted", b"evil"),
        lambda: store.exists("link/secret"),
        lambda: store.delete("link/secret"),
        lambda: store.get("filelink"),
        lambda: list(store.list("link/")),
    ):
        with pytest.raises(InvalidKeyError, match="outside the store"):
            call()
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert list(store.list()) == ["inside"]  # symbolic links are not objects


def test_missing_root(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "not-yet")
    assert list(store.list()) == []
    assert not store.exists("k")
    with pytest.raises(StoreUnreachableError, match="loopline init"):
        store.check()
    store.put("k", b"v")  # the parent exists: the root is created
    store.check()
    deep = LocalObjectStore(tmp_path / "no" / "such" / "folder")
    with pytest.raises(StoreUnreachableError, match="neither the folder nor its parent"):
        deep.put("k", b"v")
    assert not (tmp_path / "no").exists()


def test_a_key_cannot_be_both_object_and_folder(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("a", b"1")
    with pytest.raises(InvalidKeyError, match="conflicts"):
        store.put("a/b", b"2")
    store.put("c/d", b"3")
    with pytest.raises(InvalidKeyError, match="conflicts"):
        store.put("c", b"4")
    assert list(store.list()) == ["a", "c/d"]
    assert _temp_files(tmp_path) == []


def test_files_are_written_where_the_key_says(tmp_path: Path) -> None:
    store = LocalObjectStore.from_url(f"file://{tmp_path}")
    store.put("runs/1/metrics.json", b"{}")
    assert (tmp_path / "runs" / "1" / "metrics.json").read_bytes() == b"{}"
    umask = os.umask(0o022)
    os.umask(umask)
    mode = (tmp_path / "runs" / "1" / "metrics.json").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask  # like any file the user creates, not mkstemp's 0600
    assert os.listdir(tmp_path / TEMP_DIR) == []
