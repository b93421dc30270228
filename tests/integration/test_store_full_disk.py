"""The stores on a disk that is really full, or really read-only: small tmpfs mounts.

Mounting needs root (or CAP_SYS_ADMIN); elsewhere these tests are skipped. What they
check: the content store raises StoreFullError and leaves nothing partial, SQLite's full
disk becomes one line naming the database file (no SQL, no traceback) and leaves runs
consistent, and a read-only artifact store is reported as such.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from e2e.cli import one_line_error
from e2e.cli import run as cli
from loopline.store.errors import DatabaseFullError, StoreFullError
from loopline.store.objects import ContentStore, open_object_store

MiB = 1024 * 1024


def _mount(target: Path, options: str) -> bool:
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
        capture_output=True,
        timeout=30,
    )
    return done.returncode == 0


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``tmpfs("size=1m")`` mounts a new tmpfs and returns its folder (unmounted after)."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        target = tmp_path / f"fs-{uuid.uuid4().hex[:8]}"
        target.mkdir()
        if not _mount(target, options):
            pytest.skip("mounting a tmpfs needs root")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def _fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte; returns the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for block in (65536, 1):
            try:
                while os.write(fd, b"\0" * block):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    assert shutil.disk_usage(folder).free == 0
    return filler


def test_the_content_store_on_a_full_disk(tmpfs: Callable[[str], Path], tmp_path: Path) -> None:
    root = tmpfs("size=1m") / "objects"
    cas = ContentStore(open_object_store(str(root)))
    kept = cas.put(b"stored while there was room")
    big = os.urandom(2 * MiB)
    source = tmp_path / "big.bin"
    source.write_bytes(big)
    for put in (
        lambda: cas.put(big),
        lambda: cas.put(io.BytesIO(big)),
        lambda: cas.put_file(source),
    ):
        with pytest.raises(StoreFullError) as info:
            put()
        assert "ENOSPC" in info.value.reason
        assert str(root) in str(info.value)
        assert list(cas.digests()) == [kept]  # nothing partial is visible
        assert os.listdir(root / ".tmp") == []  # and no temporary file is left
    assert cas.get(kept) == b"stored while there was room"
    small = cas.put(b"a small blob still fits")
    assert sorted(cas.digests()) == sorted([kept, small])


@pytest.fixture
def project_on_a_small_disk(tmpfs: Callable[[str], Path], tmp_path: Path) -> tuple[Path, Path]:
    disk = tmpfs("size=4m")
    cli("init", "p", "--metadata-url", f"sqlite:///{disk}/meta.db", "--json", cwd=tmp_path)
    project = tmp_path / "p"
    (project / "x.csv").write_text("a,b\n1,2\n3,4\n")
    cli("data", "add", "x", "x.csv", "--json", cwd=project)
    return project, disk


def test_a_full_disk_under_sqlite_is_one_clear_line(
    project_on_a_small_disk: tuple[Path, Path],
) -> None:
    project, disk = project_on_a_small_disk
    filler = _fill(disk)
    for args in (("runs", "ls"), ("data", "add", "y", "x.csv"), ("data", "ls")):
        line = one_line_error(cli(*args, cwd=project, code=3))
        assert f"Metadata database {disk / 'meta.db'} is full" in line
        assert f"the disk holding {disk} has 0 bytes free" in line
        assert "Free some space" in line
        assert "SELECT" not in line
        assert "INSERT" not in line
    filler.unlink()
    cli("data", "add", "y", "x.csv", "--json", cwd=project)
    names = [d["name"] for d in json.loads(cli("data", "ls", "--json", cwd=project).stdout)]
    assert names == ["x", "y"]


def test_runs_stay_consistent_when_the_disk_fills(
    project_on_a_small_disk: tuple[Path, Path],
) -> None:
    from loopline.config import settings_for
    from loopline.store.stores import Stores
    from loopline.tracking import Tracker

    project, disk = project_on_a_small_disk
    settings = settings_for(project, environ={})
    with Stores.open(settings) as stores:
        tracker = Tracker(stores)
        started = tracker.start_run("exp", capture_git=False)
        started.log_metric("loss", 0.5, step=1)
        started.flush()
        filler = _fill(disk)
        # SQLite still writes into the space its files already hold; runs start until
        # that is used up too, and each one that starts is whole.
        more: list[str] = []

        def start_until_full() -> None:
            for _ in range(5000):
                more.append(tracker.start_run("exp", capture_git=False, params=PARAMS).id)

        with pytest.raises(DatabaseFullError) as info:
            start_until_full()
        message = str(info.value)
        assert "PARAM-VALUE" not in message
        assert "[SQL" not in message
        assert len(message) < 500
        assert str(disk / "meta.db") in message
        points = {f"m{i}": float(i) for i in range(1000)}
        started.log_metrics(points, step=2)
        with pytest.raises(DatabaseFullError):
            started.flush()
        filler.unlink()
        started.finish()
        for run_id in more:
            tracker.get_run(run_id)  # whole: readable, with its params
        runs = {r.id: r for r in tracker.search_runs()}
        assert set(runs) == {started.id, *more}  # the run that failed to start left nothing
        assert runs[started.id].status == "finished"
        assert [p.value for p in tracker.metric_history(started.id, "loss")] == [0.5]
        assert tracker.metric_history(started.id, "m999")[0].value == 999.0
        for run_id in more:
            assert tracker.get_run(run_id).params == {"secret": "PARAM-VALUE" * 20}


PARAMS = {"secret": "PARAM-VALUE" * 20}


def test_a_read_only_artifact_store_is_reported_not_a_traceback(
    tmpfs: Callable[[str], Path], tmp_path: Path
) -> None:
    artifacts = tmpfs("size=4m")
    cli("init", "p", "--artifacts-url", str(artifacts), "--json", cwd=tmp_path)
    project = tmp_path / "p"
    (project / "x.csv").write_text("a,b\n1,2\n3,4\n")
    remount = subprocess.run(
        ["mount", "-o", "remount,ro", str(artifacts)], capture_output=True, timeout=30
    )
    assert remount.returncode == 0, remount.stderr
    line = one_line_error(cli("data", "add", "x", "x.csv", cwd=project, code=3))
    assert f"Cannot use the object store {artifacts}" in line
    assert "mounted read-only" in line
    assert "EROFS" in line
    assert json.loads(cli("data", "ls", "--json", cwd=project).stdout) == []
