"""Hyperparameter search fanned out over Ray: the trials of one study run in Ray workers
(other processes), sharing the study in the metadata database (SQLite and PostgreSQL),
pruning against each other's intermediate values; a driver killed mid-search leaves a
study that the next call continues."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from loopline.execute import Executor
from loopline.execute.base import register_user_code
from loopline.store.stores import Stores
from loopline.tracking import Tracker
from loopline.train import FloatRange, IntRange, search

pytestmark = pytest.mark.ray

SPACE = {"x": FloatRange(-1, 1), "k": IntRange(0, 8)}

# Ray workers cannot import this test module: like a pipeline file, it is shipped.
register_user_code(Path(__file__).parent)


def objective(params: dict, report, run) -> float:  # type: ignore[no-untyped-def]
    run.set_tag("pid", str(os.getpid()))
    value = -((params["x"] - 0.3) ** 2) - 0.01 * abs(params["k"] - 4)
    for step in range(3):
        time.sleep(0.02)
        if report(value - (2 - step), step):
            break
    return value


def _trials(stores: Stores, study: str) -> list[tuple[int, str]]:
    query = sa.text(
        "SELECT t.number, t.state FROM trials t JOIN studies s ON s.study_id = t.study_id "
        "WHERE s.study_name = :study ORDER BY t.number"
    )
    try:
        with stores.db.read() as conn:
            return [(int(n), str(s)) for n, s in conn.execute(query, {"study": study})]
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        return []  # Optuna's tables do not exist yet


def test_trials_fan_out_over_ray_workers_sharing_one_study(
    stores: Stores, ray_executor: Executor
) -> None:
    tracker = Tracker(stores)
    seen: list[int] = []
    result = search(
        stores,
        objective,
        SPACE,
        study="fan-out",
        n_trials=16,
        seed=0,
        tracker=tracker,
        executor=ray_executor,
        progress=lambda p: seen.append(p.n_done),
    )
    assert result.n_complete + result.n_pruned >= 16
    assert result.n_failed == 0
    assert result.n_pruned > 0  # the median pruner saw the other workers' trials
    numbers = sorted(result.trial_states)
    assert numbers == list(range(len(numbers)))  # one numbering across the workers
    parent = tracker.get_run(result.run_id or "")
    assert parent.tags["search.executor"] == "ray"
    children = tracker.search_runs(experiment=parent.experiment, parent_id=parent.id, limit=100)
    assert len(children) == len(numbers)
    pids = {int(c.tags["pid"]) for c in children}
    assert os.getpid() not in pids
    assert len(pids) == 2  # both workers ran trials
    # The best is the best of what the workers stored, and the driver's curve ends on it.
    complete = [c.metrics["objective"] for c in children if "objective" in c.metrics]
    assert result.best_value == max(complete)
    assert parent.metrics["best_objective"] == result.best_value
    # Progress was followed from the driver, up to the whole study.
    assert seen[0] == 0
    assert seen[-1] >= 16
    assert seen == sorted(seen)


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != "Z":  # session id, and not a zombie
            pids.append(int(entry.name))
    return pids


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (Ray's workers have process groups of
    their own) until none is left."""
    deadline = time.monotonic() + 30
    while pids := _session_pids(sid):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert time.monotonic() < deadline, f"processes {pids} outlived SIGKILL"
        time.sleep(0.1)


DRIVER = """
import sys, time
from pathlib import Path
from loopline.config import settings_for
from loopline.execute.ray import RayExecutor
from loopline.store.stores import Stores
from loopline.train import FloatRange, search

def slow(params, report, run):
    for step in range(4):
        time.sleep(0.25)
        report(params["x"] * step, step)
    return params["x"]

project = Path(sys.argv[1])
with Stores.open(settings_for(project)) as stores:
    executor = RayExecutor(num_cpus=2)
    print("started", flush=True)
    search(stores, slow, {"x": FloatRange(0, 1)}, study="killed", n_trials=12, pruner=None,
           executor=executor, heartbeat_interval=1, grace_period=2)
"""


def test_a_killed_driver_leaves_a_study_the_next_search_continues(
    tmp_path: Path, ray_executor: Executor
) -> None:
    from loopline.config import settings_for
    from loopline.store.db import migrate
    from loopline.store.db.engine import Database

    (tmp_path / "loopline.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    with Database(settings_for(tmp_path, environ=env).metadata_url, create=True) as db:
        migrate.upgrade(db)
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DRIVER), str(tmp_path)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        with Stores.open(settings_for(tmp_path, environ=env)) as stores:
            deadline = time.monotonic() + 120
            while sum(s == "COMPLETE" for _, s in _trials(stores, "killed")) < 3:
                assert proc.poll() is None, proc.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "no trial completed on Ray"
                time.sleep(0.1)
            _kill_session(proc.pid)  # the driver and the Ray it started: the machine is lost
            proc.communicate(timeout=60)
            before = _trials(stores, "killed")
            done = [n for n, s in before if s == "COMPLETE"]
            assert 3 <= len(done) < 12
            time.sleep(3)  # past the grace period: the killed trials' heartbeats are stale
            result = search(
                stores,
                lambda params, report, run: params["x"],
                {"x": FloatRange(0, 1)},
                study="killed",
                n_trials=12,
                pruner=None,
                executor=ray_executor,
                heartbeat_interval=1,
                grace_period=2,
            )
            after = dict(_trials(stores, "killed"))
    finally:
        if proc.poll() is None:
            _kill_session(proc.pid)
            proc.communicate(timeout=60)
    # Workers finishing their last trials together may add one more than asked.
    assert 12 <= result.n_complete <= 13
    assert all(after[n] == "COMPLETE" for n in done)  # kept, not redone
    running_before = [n for n, s in before if s == "RUNNING"]
    assert all(after[n] == "FAIL" for n in running_before)  # reclaimed by heartbeat
    assert result.n_trials_run >= 12 - len(done)
    assert "RUNNING" not in after.values()
    json.dumps(result.as_dict())  # the result is plain data
