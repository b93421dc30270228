"""A pipeline killed with SIGKILL mid-step: its pipeline run and the killed step are reaped
(SQLite and PostgreSQL), and the run resumes from the steps that finished."""

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
from loopline.pipeline.reaper import reap_dead_pipeline_runs
from loopline.pipeline.tables import pipeline_runs, step_runs
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores
from loopline.tracking import Tracker

PIPELINE = """
import time
from pathlib import Path

from loopline.pipeline import Pipeline, step


@step
def first() -> dict:
    return {"n": 1}


@step
def slow(first: dict, marker: str = "") -> dict:
    Path(marker).write_text("in slow")
    time.sleep(600)
    return first


pipeline = Pipeline("killme", [first, slow])
"""

DRIVER = """
import sys
from pathlib import Path
from loopline.config import settings_for
from loopline.pipeline.loader import load_pipeline
from loopline.pipeline.runner import run_pipeline
from loopline.store.stores import Stores
from loopline.tracking import Tracker

project = Path(sys.argv[1])
stores = Stores.open(settings_for(project))
tracker = Tracker(stores, heartbeat_interval=0.1, dead_after=1.0)
pipe, _ = load_pipeline(str(project / "pipe.py"))
run_pipeline(pipe, stores, params={"marker": sys.argv[2]}, tracker=tracker)
"""


@pytest.fixture
def project(tmp_path: Path, metadata_url: str) -> Iterator[tuple[Path, dict[str, str], Stores]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env["LOOPLINE_METADATA_URL"] = metadata_url
    env["LOOPLINE_ARTIFACTS_URL"] = str(tmp_path / "artifacts")
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "pipe.py").write_text(PIPELINE)
    settings = settings_for(tmp_path, environ=env)
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    with Stores.open(settings) as stores:
        yield tmp_path, env, stores


def test_a_pipeline_killed_mid_step_is_reaped_with_its_step(
    project: tuple[Path, dict[str, str], Stores],
) -> None:
    path, env, stores = project
    marker = path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DRIVER), str(path), str(marker)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the slow step never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

    with stores.db.read() as conn:
        (before,) = conn.execute(sa.select(pipeline_runs.c.status)).scalars().all()
    assert before == "running"  # nothing ended it: the process died

    tracker = Tracker(stores, heartbeat_interval=0.1, dead_after=1.0)
    time.sleep(1.2)  # let its last heartbeat go stale
    reaped = reap_dead_pipeline_runs(stores, tracker)
    assert len(reaped) == 1
    assert reap_dead_pipeline_runs(stores, tracker) == []  # exactly once

    with stores.db.read() as conn:
        prun = conn.execute(sa.select(pipeline_runs)).one()
        steps = {
            r.step: r for r in conn.execute(sa.select(step_runs).order_by(step_runs.c.id)).all()
        }
    assert prun.status == "killed"
    assert prun.ended_at is not None
    assert "died" in prun.error
    assert steps["first"].status == "done"
    assert steps["slow"].status == "killed"
    assert steps["slow"].run_id is not None
    assert tracker.get_run(steps["slow"].run_id).status == "killed"
