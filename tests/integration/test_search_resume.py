"""Searches across processes: a search killed with SIGKILL mid-trial and resumed (SQLite
and PostgreSQL), and two worker processes running one study at once (SQLite).

The study lives in the metadata database, so a new process continues it: trials already
complete are not redone, trial numbers continue, the earlier best stands unless beaten,
and the trial the dead process was running is marked FAIL once its heartbeat is stale.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loopline.config import settings_for
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores
from loopline.tracking import Tracker
from loopline.train import FloatRange, IntRange, search

HEARTBEAT_S = 1
GRACE_S = 2

OBJECTIVE = """
import os, time

def objective(params, report, run):
    value = -((params["x"] - 0.3) ** 2) - 0.01 * abs(params["k"] - 4)
    for step in range(3):
        time.sleep(0.03)
        report(value - (2 - step), step)
        if run.name == os.environ.get("HANG_IN"):
            time.sleep(600)  # the trial the test kills the process in
    return value
"""

WORKER = (
    """
import json, sys
from pathlib import Path
from loopline.config import settings_for
from loopline.store.stores import Stores
from loopline.train import FloatRange, IntRange, search
"""
    + OBJECTIVE
    + """
project, study, n_trials, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with Stores.open(settings_for(Path(project))) as stores:
    result = search(stores, objective, {"x": FloatRange(-1, 1), "k": IntRange(0, 8)},
                    study=study, n_trials=n_trials, seed=seed, pruner=None,
                    heartbeat_interval=1, grace_period=2)
print("result " + json.dumps(result.as_dict()), flush=True)
"""
)

namespace: dict[str, Any] = {}
exec(OBJECTIVE, namespace)
objective = namespace["objective"]
SPACE = {"x": FloatRange(-1, 1), "k": IntRange(0, 8)}


def _project(tmp_path: Path, metadata_url: str) -> Iterator[tuple[Path, dict[str, str], Stores]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env["LOOPLINE_METADATA_URL"] = metadata_url
    env["LOOPLINE_ARTIFACTS_URL"] = str(tmp_path / "artifacts")
    (tmp_path / "artifacts").mkdir()
    settings = settings_for(tmp_path, environ=env)
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    with Stores.open(settings) as stores:
        yield tmp_path, env, stores


@pytest.fixture
def project(tmp_path: Path, metadata_url: str) -> Iterator[tuple[Path, dict[str, str], Stores]]:
    yield from _project(tmp_path, metadata_url)


@pytest.fixture
def sqlite_project(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], Stores]]:
    yield from _project(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}")


def spawn(project: Path, env: dict[str, str], *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WORKER), str(project), *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def trial_rows(stores: Stores, study: str) -> list[tuple[int, str, float | None]]:
    """(number, state, value) of every trial of the study, read with plain SQL."""
    query = sa.text(
        "SELECT t.number, t.state, v.value FROM trials t "
        "JOIN studies s ON s.study_id = t.study_id "
        "LEFT JOIN trial_values v ON v.trial_id = t.trial_id "
        "WHERE s.study_name = :study ORDER BY t.number"
    )
    try:
        with stores.db.read() as conn:
            rows = conn.execute(query, {"study": study}).all()
    except sa.exc.OperationalError:
        return []  # Optuna's tables do not exist yet
    except sa.exc.ProgrammingError:
        return []
    return [(int(n), str(s), None if v is None else float(v)) for n, s, v in rows]


def wait_for_hang(stores: Stores, study: str, number: int, timeout: float = 60) -> None:
    """Until trial ``number`` is running and has reported a value (then it hangs)."""
    query = sa.text(
        "SELECT count(*) FROM trial_intermediate_values iv "
        "JOIN trials t ON t.trial_id = iv.trial_id JOIN studies s ON s.study_id = t.study_id "
        "WHERE s.study_name = :study AND t.number = :number AND t.state = 'RUNNING'"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with stores.db.read() as conn:
                if conn.execute(query, {"study": study, "number": number}).scalar_one():
                    return
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            pass  # Optuna's tables do not exist yet
        time.sleep(0.02)
    pytest.fail(f"trial {number} of {study!r} never started")


def wait_stale(stores: Stores, number: int, timeout: float = 30) -> None:
    """Until the trial's last heartbeat is older than the grace period, by the database's
    clock (as Optuna compares them; SQLite's counts whole seconds)."""
    query = sa.text(
        "SELECT h.heartbeat, CURRENT_TIMESTAMP FROM trial_heartbeats h "
        "JOIN trials t ON t.trial_id = h.trial_id WHERE t.number = :number"
    ).columns(sa.column("heartbeat", sa.DateTime()), sa.column("now", sa.DateTime()))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with stores.db.read() as conn:
            beat, now = conn.execute(query, {"number": number}).one()
        if (now.replace(tzinfo=None) - beat).total_seconds() > GRACE_S:
            return
        time.sleep(0.1)
    pytest.fail(f"trial {number} kept its heartbeat fresh")


def test_a_killed_search_resumes_where_it_stopped(
    project: tuple[Path, dict[str, str], Stores],
) -> None:
    path, env, stores = project
    n_trials = 8
    proc = spawn(path, {**env, "HANG_IN": "trial-3"}, "resume", n_trials, 0)
    try:
        wait_for_hang(stores, "resume", 3)
        proc.kill()  # SIGKILL: no cleanup of any kind, mid-trial
    finally:
        proc.communicate(timeout=30)
    assert proc.returncode == -9

    before = trial_rows(stores, "resume")
    done_before = {n: v for n, s, v in before if s == "COMPLETE"}
    running = [n for n, s, _ in before if s == "RUNNING"]
    assert len(done_before) >= 3
    assert running == [3]  # the trial the process died in
    best_before = max(v for v in done_before.values() if v is not None)

    wait_stale(stores, running[0])
    tracker = Tracker(stores)
    result = search(
        stores,
        objective,
        SPACE,
        study="resume",
        n_trials=n_trials,
        pruner=None,
        tracker=tracker,
        heartbeat_interval=HEARTBEAT_S,
        grace_period=GRACE_S,
    )

    after = trial_rows(stores, "resume")
    states = {n: s for n, s, _ in after}
    assert result.n_complete == n_trials
    assert result.n_failed == 1
    assert states[running[0]] == "FAIL"  # reclaimed through its stale heartbeat, at the start
    assert tracker.get_run(result.run_id or "").tags["search.reclaimed_trials"] == "3"
    assert result.n_trials_run == n_trials - len(done_before)
    # Completed trials were kept as they were, not redone; numbers continue after them.
    for number, value in done_before.items():
        assert states[number] == "COMPLETE"
        assert dict((n, v) for n, _, v in after)[number] == value
    new_numbers = [n for n, _, _ in after if n not in done_before and n != running[0]]
    assert min(new_numbers) > max(n for n, _, _ in before)
    assert sorted(n for n, _, _ in after) == list(range(len(after)))
    # The earlier best stands unless a new trial beat it.
    best_new = max(v for n, _, v in after if n in new_numbers and v is not None)
    assert result.best_value == max(best_before, best_new)
    if best_before >= best_new:
        assert result.best_trial_number in done_before
    # The new trials are children of the new search run; the old ones keep theirs.
    new_children = tracker.search_runs(parent_id=result.run_id, limit=None)
    assert sorted(int(c.tags["search.trial"]) for c in new_children) == sorted(new_numbers)
    best_run = tracker.get_run(result.best_trial_run_id or "")
    assert int(best_run.tags["search.trial"]) == result.best_trial_number


def test_two_workers_share_one_study(
    sqlite_project: tuple[Path, dict[str, str], Stores],
) -> None:
    """On SQLite too: WAL lets readers run beside the writer, and each connection waits
    (the busy timeout) for its turn to write instead of failing."""
    path, env, stores = sqlite_project
    n_trials = 8
    workers = [spawn(path, env, "shared", n_trials, seed) for seed in (1, 2)]
    results = []
    for proc in workers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        line = next(x for x in out.splitlines() if x.startswith("result "))
        results.append(json.loads(line[len("result ") :]))

    rows = trial_rows(stores, "shared")
    numbers = [n for n, _, _ in rows]
    assert numbers == list(range(len(rows)))  # unique, gapless trial numbers
    complete = [n for n, s, _ in rows if s == "COMPLETE"]
    assert n_trials <= len(complete) <= n_trials + 1  # both may finish a last trial at once
    assert {s for _, s, _ in rows} == {"COMPLETE"}
    assert all(r["n_trials_run"] >= 1 for r in results)  # both did work
    assert sum(r["n_trials_run"] for r in results) == len(complete)
    # Each trial is a child of the search run of the worker that ran it.
    tracker = Tracker(stores)
    parents = {r["run_id"] for r in results}
    children = [c for p in parents for c in tracker.search_runs(parent_id=p, limit=None)]
    assert sorted(int(c.tags["search.trial"]) for c in children) == numbers
    best = max(v for _, _, v in rows if v is not None)
    assert max(r["best_value"] for r in results) == best
