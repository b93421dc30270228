"""Runs in real processes: SIGTERM, SIGINT and SIGKILL mid-loop, exit without finishing,
and several processes logging at once (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from loopline.config import settings_for
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores
from loopline.tracking import Tracker
from loopline.tracking.tables import metrics

PRELUDE = """
import os, sys, time
from pathlib import Path
from loopline.config import settings_for
from loopline.store.stores import Stores
from loopline.tracking import Tracker

stores = Stores.open(settings_for(Path(sys.argv[1])))
tracker = Tracker(stores, heartbeat_interval=0.1, dead_after=1.0, batch_size=500)
"""

LOGGING_LOOP = (
    PRELUDE
    + """
run = tracker.start_run("signals", params={"child": os.getpid()})
print("run", run.id, flush=True)
logged = 0
try:
    with run:
        i = 0
        while True:
            run.log_metric("x", float(i), step=i)
            logged = i + 1
            i += 1
            if i == 3_000:
                print("going", flush=True)
            if i % 100 == 0:
                time.sleep(0.001)  # let the keeper write batches as it would in training
finally:
    print("logged", logged, flush=True)
"""
)

KILLED_CHILD = (
    PRELUDE
    + """
run = tracker.start_run("sigkill")
for i in range(100):
    run.log_metric("x", float(i))
run.flush()
print("run", run.id, flush=True)
time.sleep(600)
"""
)

NO_WITH = (
    PRELUDE
    + """
run = tracker.start_run("atexit")
print("run", run.id, flush=True)
for i in range(250):
    run.log_metric("x", float(i))
run.log_param("p", 1)
if sys.argv[2] == "raise":
    raise RuntimeError("boom")
"""
)

WORKER = (
    PRELUDE
    + """
with tracker.start_run("concurrent", f"worker-{sys.argv[2]}") as run:
    print("run", run.id, flush=True)
    for i in range(2_000):
        run.log_metric("x", float(i), step=i)
    run.log_metric("y", float(sys.argv[2]))
"""
)


def _env(url: str, project: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env["LOOPLINE_METADATA_URL"] = url
    env["LOOPLINE_ARTIFACTS_URL"] = str(project / "artifacts")
    return env


@pytest.fixture
def project(tmp_path: Path, metadata_url: str) -> Iterator[tuple[Path, dict[str, str], Stores]]:
    env = _env(metadata_url, tmp_path)
    (tmp_path / "artifacts").mkdir()
    settings = settings_for(tmp_path, environ=env)
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    with Stores.open(settings) as stores:
        yield tmp_path, env, stores


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], Stores]]:
    env = _env(f"sqlite:///{tmp_path / 'meta.db'}", tmp_path)
    (tmp_path / "artifacts").mkdir()
    settings = settings_for(tmp_path, environ=env)
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    with Stores.open(settings) as stores:
        yield tmp_path, env, stores


def spawn(code: str, project: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), str(project), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(proc: subprocess.Popen[str], prefix: str, timeout: float = 30) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            assert proc.stderr is not None
            pytest.fail(f"child ended before printing {prefix!r}: {proc.stderr.read()}")
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    pytest.fail(f"child never printed {prefix!r}")


def points(stores: Stores, run_id: str) -> int:
    with stores.db.read() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).select_from(metrics).where(metrics.c.run_id == run_id)
            ).scalar_one()
        )


@pytest.mark.parametrize(
    ("signum", "returncode", "error"),
    [
        (signal.SIGTERM, 128 + signal.SIGTERM, "terminated by SIGTERM"),
        (signal.SIGINT, -signal.SIGINT, "interrupted (KeyboardInterrupt)"),
    ],
)
def test_a_signal_mid_loop_keeps_every_logged_point(
    sqlite_project: tuple[Path, dict[str, str], Stores],
    signum: int,
    returncode: int,
    error: str,
) -> None:
    path, env, stores = sqlite_project
    proc = spawn(LOGGING_LOOP, path, env)
    run_id = read_until(proc, "run ")
    read_until(proc, "going")
    time.sleep(0.3)  # a few batches written by the keeper, more in the buffer
    proc.send_signal(signum)
    logged = int(read_until(proc, "logged "))
    proc.communicate(timeout=30)
    assert proc.returncode == returncode
    record = Tracker(stores).get_run(run_id)
    assert record.status == "killed"
    assert record.error == error
    assert logged >= 3_000
    assert points(stores, run_id) == logged  # the buffer was flushed, nothing more
    assert record.metric_summaries["x"].points == logged
    assert record.metrics["x"] == logged - 1


def test_sigkill_leaves_a_run_that_the_reaper_marks_killed(
    project: tuple[Path, dict[str, str], Stores],
) -> None:
    path, env, stores = project
    tracker = Tracker(stores, heartbeat_interval=0.1, dead_after=1.0)
    proc = spawn(KILLED_CHILD, path, env)
    run_id = read_until(proc, "run ")
    time.sleep(0.3)
    assert tracker.reap_dead_runs(timeout_s=1.0) == []  # heartbeats keep it alive
    assert tracker.get_run(run_id).status == "running"
    proc.kill()
    proc.communicate(timeout=10)
    time.sleep(0.7)
    assert tracker.reap_dead_runs(timeout_s=0.5) == [run_id]
    record = tracker.get_run(run_id)
    assert record.status == "killed"
    assert record.end_time == record.heartbeat_at
    assert points(stores, run_id) == 100  # what was flushed before the kill


@pytest.mark.parametrize(("mode", "status"), [("ok", "finished"), ("raise", "failed")])
def test_runs_never_finished_are_flushed_at_exit(
    sqlite_project: tuple[Path, dict[str, str], Stores], mode: str, status: str
) -> None:
    path, env, stores = sqlite_project
    proc = spawn(NO_WITH, path, env, mode)
    run_id = read_until(proc, "run ")
    proc.communicate(timeout=30)
    record = Tracker(stores).get_run(run_id)
    assert record.status == status
    assert points(stores, run_id) == 250
    assert record.params == {"p": "1"}
    if mode == "raise":
        assert record.error == "RuntimeError: boom"


def test_four_processes_log_at_once(project: tuple[Path, dict[str, str], Stores]) -> None:
    path, env, stores = project
    procs = [spawn(WORKER, path, env, str(n)) for n in range(4)]
    ids = [read_until(p, "run ") for p in procs]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    tracker = Tracker(stores)
    for n, run_id in enumerate(ids):
        record = tracker.get_run(run_id)
        assert record.status == "finished"
        assert points(stores, run_id) == 2_001
        assert record.metric_summaries["x"].points == 2_000
        assert record.metrics == {"x": 1_999.0, "y": float(n)}
    found = tracker.search_runs(experiment="concurrent", order_by=["name"])
    assert [r.name for r in found] == [f"worker-{n}" for n in range(4)]
