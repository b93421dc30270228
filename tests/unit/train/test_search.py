"""Hyperparameter search: a seeded toy problem, trials as child runs with their states,
pruning, failures, continuing a study, and the arguments that are refused."""

from __future__ import annotations

import re
from typing import Any

import pytest

from loopline.store.stores import Stores
from loopline.tracking import Run, Tracker
from loopline.train import (
    Choice,
    FloatRange,
    IntRange,
    Report,
    SearchProgress,
    load_search,
    search,
)
from loopline.train.errors import (
    SearchFailedError,
    SearchNotFoundError,
    SearchSpaceError,
    TrainError,
)


def quadratic(params: dict[str, Any], report: Report, run: Run) -> float:
    """Best at x = 3, y = -1 with kind "good": value 0."""
    penalty = 0.0 if params["kind"] == "good" else 4.0
    return -((params["x"] - 3.0) ** 2) - (params["y"] + 1) ** 2 - penalty


QUADRATIC_SPACE = {
    "x": FloatRange(-10.0, 10.0),
    "y": IntRange(-5, 5),
    "kind": Choice(["good", "bad"]),
}


def test_finds_the_optimum_and_tracks_each_trial(stores: Stores, tracker: Tracker) -> None:
    seen: list[SearchProgress] = []
    result = search(
        stores,
        quadratic,
        QUADRATIC_SPACE,
        study="quadratic",
        n_trials=15,
        tracker=tracker,
        pruner=None,
        progress=seen.append,
    )
    assert result.study_name == "quadratic"
    assert (result.n_complete, result.n_pruned, result.n_failed) == (15, 0, 0)
    assert result.n_trials_run == 15
    assert result.best_value > -1.5
    assert result.best_params["kind"] == "good"
    assert abs(result.best_params["x"] - 3.0) < 1.2
    assert result.best_value == pytest.approx(
        quadratic(result.best_params, lambda v, s: False, None)
    )  # type: ignore[arg-type]

    assert result.run_id is not None
    parent = tracker.get_run(result.run_id)
    assert parent.status == "finished"
    assert parent.experiment == "quadratic"
    assert parent.params["n_trials"] == "15"
    assert parent.params["sampler"] == "tpe"
    assert parent.metrics["best_objective"] == pytest.approx(result.best_value)
    assert parent.tags["search.best_run_id"] == result.best_trial_run_id
    assert parent.tags["search.best.kind"] == "good"

    children = tracker.search_runs(parent_id=result.run_id, limit=None)
    assert len(children) == 15
    assert {c.status for c in children} == {"finished"}
    assert {c.tags["search.trial_state"] for c in children} == {"complete"}
    assert sorted(int(c.tags["search.trial"]) for c in children) == list(range(15))
    best = tracker.get_run(result.best_trial_run_id or "")
    assert best.parent_id == result.run_id
    assert best.metrics["objective"] == pytest.approx(result.best_value)
    assert float(best.params["x"]) == pytest.approx(result.best_params["x"])

    assert seen[0].trial is None
    assert seen[0].n_done == 0
    assert [p.trial for p in seen[1:]] == list(range(15))
    assert seen[-1].n_done == 15
    assert seen[-1].best_value == pytest.approx(result.best_value)


def test_a_seeded_search_is_reproducible(sqlite_stores: Stores) -> None:
    first = search(sqlite_stores, quadratic, QUADRATIC_SPACE, study="a", n_trials=6, seed=5)
    second = search(sqlite_stores, quadratic, QUADRATIC_SPACE, study="b", n_trials=6, seed=5)
    assert first.best_params == second.best_params
    assert first.best_value == second.best_value


def staged(params: dict[str, Any], report: Report, run: Run) -> float:
    """Scores that grow over 4 steps; the "bad" branch stays low (and should be pruned);
    x above 0.8 crashes, like a configuration the model library refuses."""
    if params["x"] > 0.8:
        raise RuntimeError(f"x={params['x']:.3f} is out of what the model accepts")
    ceiling = 1.0 if params["branch"] == "good" else 0.2
    score = 0.0
    for step in range(4):
        score = ceiling * (step + 1) / 4
        if report(score, step):
            return score
    return score + params["x"] / 100


def test_pruning_and_failures(stores: Stores, tracker: Tracker) -> None:
    check_pruning(stores, tracker, "median")


@pytest.mark.slow
def test_successive_halving(sqlite_stores: Stores, sqlite_tracker: Tracker) -> None:
    check_pruning(sqlite_stores, sqlite_tracker, "halving")


def check_pruning(stores: Stores, tracker: Tracker, pruner: str) -> None:
    result = search(
        stores,
        staged,
        {"branch": Choice(["good", "bad"]), "x": FloatRange(0.0, 1.0)},
        study=f"staged-{pruner}",
        n_trials=12,
        pruner=pruner,  # type: ignore[arg-type]
        sampler="random",
        seed=1,
        tracker=tracker,
    )
    assert result.n_complete + result.n_pruned == 12
    assert result.n_pruned >= 1
    assert result.n_failed >= 1
    assert result.best_params["branch"] == "good"
    assert result.best_value >= 1.0

    children = tracker.search_runs(parent_id=result.run_id, limit=None)
    assert len(children) == 12 + result.n_failed
    states = {c.tags["search.trial_state"] for c in children}
    assert states == {"complete", "pruned", "failed"}
    pruned = [c for c in children if c.tags["search.trial_state"] == "pruned"]
    assert any(c.params["branch"] == "bad" for c in pruned)
    for child in children:
        state = child.tags["search.trial_state"]
        if state == "pruned":
            assert child.status == "finished"
            if pruner == "median":  # good trials are never below the median
                assert child.params["branch"] == "bad"
            assert "objective" not in child.metrics
            history = tracker.metric_history(child.id, "objective.intermediate")
            assert [p.step for p in history] == list(range(len(history)))
            assert len(history) < 4
        elif state == "failed":
            assert child.status == "failed"
            assert "out of what the model accepts" in (child.error or "")
        else:
            assert child.status == "finished"
            assert len(tracker.metric_history(child.id, "objective.intermediate")) == 4
            assert "objective" in child.metrics


@pytest.mark.slow
def test_continuing_a_study_runs_only_the_missing_trials(sqlite_stores: Stores) -> None:
    tracker = Tracker(sqlite_stores)
    first = search(sqlite_stores, quadratic, QUADRATIC_SPACE, study="q", n_trials=5)
    again = search(sqlite_stores, quadratic, QUADRATIC_SPACE, study="q", n_trials=5)
    assert again.n_trials_run == 0
    assert again.best_value == first.best_value
    more = search(sqlite_stores, quadratic, QUADRATIC_SPACE, study="q", n_trials=8)
    assert more.n_trials_run == 3
    assert more.n_complete == 8
    assert sorted(more.trial_states) == list(range(8))
    assert more.best_value >= first.best_value
    assert more.run_id != first.run_id
    new_children = tracker.search_runs(parent_id=more.run_id, limit=None)
    assert sorted(int(c.tags["search.trial"]) for c in new_children) == [5, 6, 7]
    loaded = load_search(sqlite_stores, "q")
    assert loaded.best_value == more.best_value
    assert loaded.best_trial_run_id == more.best_trial_run_id
    assert loaded.run_id is None

    with pytest.raises(TrainError, match="directed maximize, not minimize"):
        search(
            sqlite_stores, quadratic, QUADRATIC_SPACE, study="q", n_trials=9, direction="minimize"
        )


def test_a_given_run_is_the_parent(sqlite_stores: Stores) -> None:
    tracker = Tracker(sqlite_stores)
    with tracker.start_run("pipeline", "train-step") as step_run:
        result = search(
            sqlite_stores,
            quadratic,
            QUADRATIC_SPACE,
            study="in-step",
            n_trials=3,
            run=step_run,
            tracker=tracker,
            metric="score",
            direction="maximize",
        )
        assert step_run.status == "running"  # the caller owns it
    assert result.run_id == step_run.id
    record = tracker.get_run(step_run.id)
    assert record.tags["search.study"] == "in-step"
    assert record.metrics["best_score"] == pytest.approx(result.best_value)
    children = tracker.search_runs(parent_id=step_run.id, limit=None)
    assert {c.experiment for c in children} == {"pipeline"}
    assert all("score" in c.metrics for c in children)


def test_threads(sqlite_stores: Stores) -> None:
    result = search(
        sqlite_stores,
        staged,
        {"branch": "good", "x": FloatRange(0.0, 0.5)},
        study="threads",
        n_trials=6,
        n_jobs=2,
        pruner=None,
    )
    assert result.n_complete >= 6
    assert sorted(result.trial_states) == list(range(len(result.trial_states)))


def test_when_every_trial_fails(sqlite_stores: Stores) -> None:
    def broken(params: dict[str, Any], report: Report, run: Run) -> float:
        raise ValueError("no data")

    with pytest.raises(SearchFailedError, match=r"no completed trial.*no data") as info:
        search(
            sqlite_stores,
            broken,
            {"x": FloatRange(0, 1)},
            study="broken",
            n_trials=10,
            max_failures=3,
        )
    assert info.value.n_failed == 3
    failed_runs = Tracker(sqlite_stores).search_runs(experiment="broken", status="failed")
    assert len(failed_runs) == 4  # 3 trials and the search run itself
    with pytest.raises(SearchFailedError):
        load_search(sqlite_stores, "broken")


def test_objective_mistakes_fail_the_trial_with_a_clear_error(sqlite_stores: Stores) -> None:
    def twice(params: dict[str, Any], report: Report, run: Run) -> float:
        report(0.5, 0)
        report(0.6, 0)
        return 1.0

    def not_a_number(params: dict[str, Any], report: Report, run: Run) -> float:
        return "high"  # type: ignore[return-value]

    def uncaught(params: dict[str, Any], report: Report, run: Run) -> float:
        raise KeyError("missing column")

    tracker = Tracker(sqlite_stores)
    for study, objective, message in [
        ("twice", twice, "reported step 0 twice"),
        ("nan", not_a_number, "gave 'high' (str) as its value; expected a number"),
    ]:
        with pytest.raises(SearchFailedError, match=re.escape(message)):
            search(sqlite_stores, objective, {"x": FloatRange(0, 1)}, study=study, n_trials=1)
        failed = tracker.search_runs(experiment=study, filters=["tags.search.trial_state = failed"])
        assert failed
        assert message.split(" (")[0] in (failed[0].error or "")
    with pytest.raises(KeyError, match="missing column"):
        search(
            sqlite_stores, uncaught, {"x": FloatRange(0, 1)}, study="uncaught", n_trials=3, catch=()
        )
    parent = tracker.search_runs(experiment="uncaught", filters=["tags.search.study = uncaught"])
    assert {r.status for r in parent} == {"failed"}


def test_refused_arguments(sqlite_stores: Stores) -> None:
    space = {"x": FloatRange(0, 1)}
    for kwargs, match in [
        ({"study": "", "n_trials": 1}, "Invalid study name"),
        ({"study": "s", "n_trials": 0}, "n_trials must be an int >= 1"),
        ({"study": "s", "n_trials": 1, "direction": "up"}, "direction must be"),
        ({"study": "s", "n_trials": 1, "timeout_s": 0}, "timeout_s must be > 0"),
        ({"study": "s", "n_trials": 1, "n_jobs": 0}, "n_jobs must be"),
        ({"study": "s", "n_trials": 1, "sampler": "grid"}, "Unknown sampler 'grid'"),
        ({"study": "s", "n_trials": 1, "pruner": "hyper"}, "Unknown pruner 'hyper'"),
        ({"study": "s", "n_trials": 1, "heartbeat_interval": 5, "grace_period": 5}, "grace_period"),
    ]:
        with pytest.raises(TrainError, match=match):
            search(sqlite_stores, quadratic, space, **kwargs)
    with pytest.raises(SearchSpaceError):
        search(sqlite_stores, quadratic, {"x": FloatRange(1, 0)}, study="s", n_trials=1)
    with pytest.raises(SearchNotFoundError, match="no search has run"):
        load_search(sqlite_stores, "nothing")
    search(sqlite_stores, quadratic, QUADRATIC_SPACE, study="exists", n_trials=1)
    with pytest.raises(SearchNotFoundError, match="known studies: exists"):
        load_search(sqlite_stores, "exits")


def test_timeout_stops_early(sqlite_stores: Stores) -> None:
    import time

    def slow(params: dict[str, Any], report: Report, run: Run) -> float:
        time.sleep(0.15)
        return float(params["x"])

    result = search(
        sqlite_stores, slow, {"x": FloatRange(0, 1)}, study="slow", n_trials=100, timeout_s=0.5
    )
    assert 1 <= result.n_complete < 10


def test_a_trial_that_died_before_its_first_heartbeat_is_reclaimed(sqlite_stores: Stores) -> None:
    """Optuna's heartbeat check skips a trial that never wrote a heartbeat (its process
    died right after creating it): loopline reclaims it by its start time."""
    from datetime import datetime, timedelta

    import optuna
    import sqlalchemy as sa

    from loopline.train.storage import close_storage, open_storage

    storage = open_storage(sqlite_stores.settings.metadata_url)
    try:
        study = optuna.create_study(storage=storage, study_name="orphan", direction="maximize")
        study.ask()  # RUNNING, no heartbeat: as if its process was killed right here
    finally:
        close_storage(storage)
    started = datetime.now() - timedelta(seconds=30)
    with sqlite_stores.db.write() as conn:
        conn.execute(
            sa.text("UPDATE trials SET datetime_start = :t").bindparams(
                sa.bindparam("t", type_=sa.DateTime())
            ),
            {"t": started},
        )
    result = search(
        sqlite_stores,
        quadratic,
        QUADRATIC_SPACE,
        study="orphan",
        n_trials=2,
        heartbeat_interval=1,
        grace_period=5,
    )
    assert result.trial_states == {0: "failed", 1: "complete", 2: "complete"}
    assert (result.n_failed, result.n_running) == (1, 0)
    parent = Tracker(sqlite_stores).get_run(result.run_id or "")
    assert parent.tags["search.reclaimed_trials"] == "0"
