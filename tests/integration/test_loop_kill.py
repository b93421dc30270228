"""A controller killed with SIGKILL at every step of a rollout, then another one started:
the rollout ends promoted, no finished step ran twice (one retraining, one new dataset
version, one promotion, one webhook run per transition) and none was lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from loopline.alarm.tables import action_runs
from loopline.data import Datasets
from loopline.loop.lease import current_lease
from loopline.loop.rollout import Rollouts
from loopline.loop.settings import loop_configs
from loopline.loop.tables import rollout_events
from loopline.registry import Registry
from loopline.store.stores import Stores
from unit.loop.support import CRASH_POINTS, LoopBed, bed_spec, make_bed, production

TESTS = Path(__file__).resolve().parents[1]
FULL = [
    "pending",
    "preparing",
    "training",
    "gating",
    "deploying",
    "baking",
    "promoting",
    "promoted",
]


def _prelog(bed: LoopBed) -> None:
    """All the traffic up front: labelled production rows in window 0, then both sides of
    the canary (the challenger will be version 2: the only registration) in 1 and 2."""
    bed.traffic(0, production(400, 50, shift=0.8), label=True)
    for window in (1, 2):
        frame = production(200, 60 + window, shift=0.8)
        bed.traffic(window, frame)
        bed.traffic(window, frame, role="canary", version=bed.trained.version + 1)


def _child(bed: LoopBed, crash: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["LOOPLINE_TEST_BED"] = json.dumps(bed_spec(bed, crash))
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", "from unit.loop.support import child_main; child_main()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _check_exactly_once(stores: Stores, rid: str, champion: int) -> None:
    rollout = Rollouts(stores).get(rid)
    assert rollout.state == "promoted", (rollout.state, rollout.reason, rollout.error)
    with stores.db.read() as conn:
        states = list(
            conn.execute(
                sa.select(rollout_events.c.to_state)
                .where(rollout_events.c.rollout_id == rid)
                .order_by(rollout_events.c.id)
            ).scalars()
        )
        triggers = list(
            conn.execute(
                sa.select(action_runs.c.trigger).where(
                    action_runs.c.trigger.startswith(f"rollout:{rid}:")
                )
            ).scalars()
        )
    assert states == FULL
    assert sorted(triggers) == sorted(f"rollout:{rid}:{s}" for s in FULL[1:])
    reg = Registry(stores)
    assert [v.version for v in reg.versions("churn")] == [champion, champion + 1]
    assert reg.aliases("churn")["production"] == champion + 1
    promotions = [m for m in reg.alias_history("churn", "production") if m.actor == "loopline-loop"]
    assert [(m.from_version, m.to_version) for m in promotions] == [(champion, champion + 1)]
    assert reg.traffic("churn", "production") is None
    ds = Datasets(stores)
    assert [v.version for v in ds.versions("customers")] == [1, 2]
    assert [v.version for v in ds.versions("customers.fresh-holdout")] == [1]


def _crash_and_resume(stores: Stores, tmp_path: Path, crash: str) -> None:
    bed = make_bed(stores, tmp_path, hook="http://127.0.0.1:9/hook")
    champion = bed.trained.version
    _prelog(bed)
    cfg = loop_configs(bed.settings)["churn"]
    rid = Rollouts(stores).start("churn", cfg, trigger="manual").id
    proc = _child(bed, crash)
    assert proc.returncode == -9, f"the child was not killed at {crash}:\n{proc.stderr[-3000:]}"
    lease = current_lease(stores)
    assert lease is not None  # the dead controller's lease is still there
    ctl = bed.controller()
    for window in range(4):
        bed.settle(ctl, window)
    ctl.shutdown(drain_s=0)
    _check_exactly_once(stores, rid, champion)


@pytest.mark.parametrize("crash", sorted(CRASH_POINTS))
def test_a_killed_controller_resumes_the_rollout_exactly_once(
    sqlite_stores: Stores, tmp_path: Path, crash: str
) -> None:
    _crash_and_resume(sqlite_stores, tmp_path, crash)


@pytest.mark.parametrize("crash", ["version-registered", "split-set", "alias-promoted"])
def test_a_killed_controller_resumes_exactly_once_on_postgres(
    postgres_url: str, tmp_path: Path, crash: str
) -> None:
    from conftest import open_stores

    with open_stores(tmp_path, postgres_url) as stores:
        _crash_and_resume(stores, tmp_path, crash)
