"""Rollouts driven by a controller through simulated monitor windows, on both databases:
retrain on the newest data, gate, canary, bake, promote; a canary that fails its bake is
rolled back; a pipeline that raises fails the rollout with its traceback; a person
promoting by hand during the bake wins and the rollout stands down; broken production
rows are never trained on; two controllers, one acts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from loopline.alarm.tables import action_runs
from loopline.alarm.webhook import verify_signature
from loopline.loop.lease import Lease, current_lease
from loopline.loop.rollout import Rollouts
from loopline.loop.settings import loop_configs
from loopline.loop.tables import rollout_events
from loopline.monitor.failures import FailureLog
from loopline.registry import Registry
from loopline.store.stores import Stores
from unit.alarm.test_webhook import Receiver

from .support import LoopBed, make_bed, production


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _start(bed: LoopBed, **kwargs: object) -> str:
    cfg = loop_configs(bed.settings)["churn"]
    return Rollouts(bed.stores).start("churn", cfg, trigger="manual", **kwargs).id  # type: ignore[arg-type]


def _labelled_production(bed: LoopBed, window: int, n: int = 400, seed: int = 50) -> None:
    """Production traffic of the champion in ``window``, every row labelled."""
    bed.traffic(window, production(n, seed, shift=0.8), label=True)


def _states(stores: Stores, rollout_id: str) -> list[str]:
    with stores.db.read() as conn:
        return list(
            conn.execute(
                sa.select(rollout_events.c.to_state)
                .where(rollout_events.c.rollout_id == rollout_id)
                .order_by(rollout_events.c.id)
            ).scalars()
        )


def _bake_traffic(bed: LoopBed, window: int, challenger: int, *, seed: int) -> None:
    """Both sides of the canary answer in ``window``."""
    reg = Registry(bed.stores)
    model = reg.load(f"churn/{challenger}").model
    frame = production(200, seed, shift=0.8)
    bed.traffic(window, frame)
    bed.traffic(window, frame, role="canary", version=challenger, model=model)


def test_a_rollout_retrains_gates_bakes_and_promotes(
    stores: Stores, tmp_path: Path, receiver: Receiver
) -> None:
    bed = make_bed(stores, tmp_path, hook=receiver.url)
    champion = bed.trained.version
    _labelled_production(bed, 0)
    ctl = bed.controller()
    rid = _start(bed)
    bed.settle(ctl, 0)
    rollout = Rollouts(stores).get(rid)
    assert rollout.state == "baking", rollout.reason
    challenger = rollout.challenger_version
    assert challenger is not None
    assert challenger != champion
    # The training data: the dataset's newest version plus the labelled production rows,
    # the newest 30% of them kept out as the fresh holdout the gates also judged on.
    assert rollout.data is not None
    assert rollout.data["production_rows"] == 280
    assert rollout.data["holdout_rows"] == 120
    assert [c["on"] for c in rollout.verdict["checks"]] == ["gate holdout", "fresh holdout"]
    trained_on = Registry(stores).get("churn", challenger).datasets[0]
    assert (trained_on.name, trained_on.version) == ("customers", rollout.data["version"])
    split = Registry(stores).traffic("churn", "production")
    assert split is not None
    assert split.candidate == f"churn/{challenger}"

    for window in (1, 2):
        _bake_traffic(bed, window, challenger, seed=60 + window)
        bed.settle(ctl, window)
    rollout = Rollouts(stores).get(rid)
    assert rollout.state == "promoted", rollout.reason
    # (Window 0, simulated after the split's real time, was judged empty.)
    assert [w["passed"] for w in rollout.bake if not w["empty"]] == [True, True]
    assert Registry(stores).aliases("churn")["production"] == challenger
    assert Registry(stores).traffic("churn", "production") is None
    assert _states(stores, rid) == [
        "pending",
        "preparing",
        "training",
        "gating",
        "deploying",
        "baking",
        "promoting",
        "promoted",
    ]
    # A webhook per transition, signed, each delivered once.
    for fut in ctl.runner.dispatch():
        fut.result()
    ctl.runner.shutdown(wait=True)  # and the deliveries started by earlier ticks
    kinds = sorted(json.loads(body)["kind"] for _, body in receiver.received)
    assert kinds == sorted(
        f"rollout.{s}"
        for s in ("preparing", "training", "gating", "deploying", "baking", "promoting", "promoted")
    )
    for headers, body in receiver.received:
        assert verify_signature("s3cret", body, headers)
    assert Rollouts(stores).models()["churn"]["active_rollout"] is None


def test_a_canary_that_fails_its_bake_is_rolled_back(stores: Stores, tmp_path: Path) -> None:
    bed = make_bed(stores, tmp_path)
    champion = bed.trained.version
    _labelled_production(bed, 0)
    ctl = bed.controller()
    rid = _start(bed)
    bed.settle(ctl, 0)
    rollout = Rollouts(stores).get(rid)
    assert rollout.state == "baking", rollout.reason
    challenger = rollout.challenger_version
    assert challenger is not None
    # The canary answers some requests and fails a third of them (the primary answered
    # those instead, as the server does).
    _bake_traffic(bed, 1, challenger, seed=71)
    failures = FailureLog(stores.db, "churn")
    start, _ = bed.window(1)
    for _ in range(30):
        failures.add(challenger, "canary", "model_error", rows=4, at=start.timestamp() + 7)
    failures.flush()
    bed.settle(ctl, 1)
    rollout = Rollouts(stores).get(rid)
    assert rollout.state == "rolled_back", rollout.reason
    assert "health.error_share" in (rollout.reason or "")
    assert Registry(stores).aliases("churn")["production"] == champion
    assert Registry(stores).traffic("churn", "production") is None
    assert [w["passed"] for w in rollout.bake if not w["empty"]] == [False]


def test_a_failing_pipeline_fails_the_rollout_with_its_traceback(
    stores: Stores, tmp_path: Path
) -> None:
    bed = make_bed(stores, tmp_path, params={"fail": True})
    _labelled_production(bed, 0)
    ctl = bed.controller()
    rid = _start(bed)
    bed.settle(ctl, 0)
    rollout = Rollouts(stores).get(rid)
    assert rollout.state == "failed"
    assert "the retraining pipeline failed" in (rollout.reason or "")
    assert "RuntimeError: the feature store is down" in (rollout.error or "")
    assert "Traceback" in (rollout.error or "") or "line" in (rollout.error or "")
    assert Registry(stores).aliases("churn")["production"] == bed.trained.version
    assert Registry(stores).traffic("churn", "production") is None
    assert [v.version for v in Registry(stores).versions("churn")] == [bed.trained.version]


def test_a_promotion_by_hand_during_the_bake_wins(stores: Stores, tmp_path: Path) -> None:
    bed = make_bed(stores, tmp_path)
    _labelled_production(bed, 0)
    ctl = bed.controller()
    rid = _start(bed)
    bed.settle(ctl, 0)
    rollout = Rollouts(stores).get(rid)
    challenger = rollout.challenger_version
    assert rollout.state == "baking"
    assert challenger is not None
    reg = Registry(stores)
    reg.set_alias("churn", "production", challenger, reason="looks good to me")
    _bake_traffic(bed, 1, challenger, seed=81)
    bed.settle(ctl, 1)
    rollout = Rollouts(stores).get(rid)
    assert rollout.state == "stood_down"
    assert "moved to version" in (rollout.reason or "")
    # The person's move stands, and the rollout's own split is gone.
    assert reg.aliases("churn")["production"] == challenger
    assert reg.traffic("churn", "production") is None
    moves = [m for m in reg.alias_history("churn", "production") if m.actor == "loopline-loop"]
    assert moves == []


def test_broken_production_rows_are_never_trained_on(stores: Stores, tmp_path: Path) -> None:
    bed = make_bed(stores, tmp_path)
    frame = production(300, 90)
    frame["num_0"] = None  # an upstream feature went null
    bed.traffic(0, frame, label=True)
    ctl = bed.controller()
    rid = _start(bed)
    bed.settle(ctl, 0)
    rollout = Rollouts(stores).get(rid)
    assert rollout.state == "refused"
    assert "not retrained on broken data" in (rollout.reason or "")
    assert "num_0" in (rollout.reason or "")
    assert [v.version for v in Registry(stores).versions("churn")] == [bed.trained.version]


def test_a_rollout_with_no_new_data_is_refused(stores: Stores, tmp_path: Path) -> None:
    bed = make_bed(stores, tmp_path)
    ctl = bed.controller()
    rid = _start(bed)
    bed.settle(ctl, 0)
    rollout = Rollouts(stores).get(rid)
    assert rollout.state == "refused"
    assert "no new data" in (rollout.reason or "")


def test_one_rollout_per_model_and_starting_is_idempotent(stores: Stores, tmp_path: Path) -> None:
    from loopline.loop.errors import RolloutActiveError

    bed = make_bed(stores, tmp_path)
    first = _start(bed, trigger_key="run-1")
    assert _start(bed, trigger_key="run-1") == first
    with pytest.raises(RolloutActiveError, match="already has a rollout in progress"):
        _start(bed, trigger_key="run-2")


def test_two_controllers_one_acts_and_the_other_takes_over(stores: Stores, tmp_path: Path) -> None:
    bed = make_bed(stores, tmp_path)
    first = bed.controller()
    second = bed.controller()
    assert bed.tick(first, 0)["leader"] is True
    assert bed.tick(second, 0)["leader"] is False
    lease = current_lease(stores)
    assert lease is not None
    assert lease.holder == first.holder
    # The first one "dies" on this machine (its holder names a process that is gone):
    # the second takes over at once, without waiting for the lease to expire.
    dead = f"{lease.holder.split(':')[0]}:999999999:dead"
    with stores.db.write() as conn:
        from loopline.loop.tables import leases

        conn.execute(leases.update().values(holder=dead))
    assert bed.tick(second, 1)["leader"] is True
    assert current_lease(stores).holder == second.holder  # type: ignore[union-attr]
    # The first one wakes up: its writes are fenced off by the new token.
    first.lease.token = "stale"
    from loopline.loop.errors import LeaseLostError

    with pytest.raises(LeaseLostError), stores.db.write() as conn:
        first.lease.check(conn)


def test_a_paused_model_waits_and_resumes(stores: Stores, tmp_path: Path) -> None:
    bed = make_bed(stores, tmp_path)
    _labelled_production(bed, 0)
    ctl = bed.controller()
    rid = _start(bed)
    rollouts = Rollouts(stores)
    assert rollouts.set_paused("churn", True, reason="holiday freeze") is True
    bed.settle(ctl, 0)
    assert rollouts.get(rid).state == "pending"
    assert rollouts.set_paused("churn", False) is True
    bed.settle(ctl, 0)
    assert rollouts.get(rid).state == "baking"


def test_the_lease_expires_when_not_renewed(sqlite_stores: Stores) -> None:
    a = Lease(sqlite_stores, ttl_s=1.0, holder="elsewhere:1:a")
    b = Lease(sqlite_stores, ttl_s=1.0, holder="elsewhere:2:b")
    assert a.acquire()
    assert not b.acquire()
    import time

    time.sleep(1.2)
    assert b.acquire()
    assert not a.acquire()


def test_action_runs_of_a_rollout_are_recorded(stores: Stores, tmp_path: Path) -> None:
    bed = make_bed(stores, tmp_path, hook="http://127.0.0.1:9/unreachable")
    ctl = bed.controller()
    rid = _start(bed)
    bed.settle(ctl, 0)
    with stores.db.read() as conn:
        triggers = list(conn.execute(sa.select(action_runs.c.trigger)).scalars())
    assert f"rollout:{rid}:refused" in triggers


def test_a_feature_that_changed_unit_is_not_trained_on(stores: Stores, tmp_path: Path) -> None:
    bed = make_bed(stores, tmp_path)
    frame = production(300, 91)
    frame["num_1"] = frame["num_1"] * 100  # upstream now sends it in other units
    bed.traffic(0, frame, label=True)
    ctl = bed.controller()
    rid = _start(bed)
    bed.settle(ctl, 0)
    rollout = Rollouts(stores).get(rid)
    assert rollout.state == "refused"
    assert "num_1" in (rollout.reason or "")
    assert "max_suspect_share" in (rollout.reason or "")


def test_champion_comparisons_are_made_on_the_fresh_holdout(stores: Stores, tmp_path: Path) -> None:
    bed = make_bed(stores, tmp_path)
    _labelled_production(bed, 0)
    ctl = bed.controller()
    rid = _start(bed)
    bed.settle(ctl, 0)
    verdict = Rollouts(stores).get(rid).verdict
    assert verdict is not None
    on = {c["on"]: [r["criterion"] for r in c["verdict"]["results"]] for c in verdict["checks"]}
    assert "roc_auc >= champion.roc_auc - 0.05" not in on["gate holdout"]
    assert "roc_auc >= 0.6" in on["gate holdout"]
    assert "roc_auc >= champion.roc_auc - 0.05" in on["fresh holdout"]
