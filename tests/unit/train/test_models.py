"""A real, small search over RandomForest, XGBoost and LightGBM: each trial grows its
model in stages and reports the validation accuracy after each, so bad ones are pruned."""

from __future__ import annotations

from typing import Any

import pytest

from loopline.store.stores import Stores
from loopline.tracking import Run, Tracker
from loopline.train import Choice, FloatRange, IntRange, Report, fit, search

Data = tuple[Any, Any, Any, Any]

SPACE = {
    "model": Choice(
        {
            "rf": {"max_depth": IntRange(2, 8)},
            "xgb": {"max_depth": IntRange(2, 8), "learning_rate": FloatRange(0.05, 0.5, log=True)},
            "lgbm": {
                "num_leaves": IntRange(4, 32),
                "learning_rate": FloatRange(0.05, 0.5, log=True),
            },
        }
    ),
    "random_state": 0,
}


def make_model(params: dict[str, Any], n_estimators: int) -> Any:
    if params["model"] == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=n_estimators, max_depth=params["max_depth"], random_state=0, n_jobs=1
        )
    if params["model"] == "xgb":
        from xgboost import XGBClassifier

        return XGBClassifier(
            n_estimators=n_estimators,
            max_depth=params["max_depth"],
            learning_rate=params["learning_rate"],
            random_state=0,
            n_jobs=1,
        )
    from lightgbm import LGBMClassifier

    return LGBMClassifier(
        n_estimators=n_estimators,
        num_leaves=params["num_leaves"],
        learning_rate=params["learning_rate"],
        random_state=0,
        n_jobs=1,
        verbose=-1,
    )


@pytest.mark.slow
def test_search_over_three_libraries(sqlite_stores: Stores, classification: Data) -> None:
    X, y, Xv, yv = classification

    def objective(params: dict[str, Any], report: Report, run: Run) -> float:
        accuracy = 0.0
        for step, n in enumerate((10, 20, 40)):
            model = make_model(params, n)
            model.fit(X, y)
            accuracy = float(model.score(Xv, yv))
            if report(accuracy, step):
                return accuracy
        # The final model, fitted through the helper: params and metrics in the trial run.
        return fit(run, model, X, y, X_valid=Xv, y_valid=yv).train_metrics["valid_accuracy"]

    result = search(
        sqlite_stores, objective, SPACE, study="models", n_trials=8, sampler="random", seed=3
    )
    assert result.n_complete + result.n_pruned == 8
    assert result.best_value > 0.85
    assert result.best_params["random_state"] == 0

    tracker = Tracker(sqlite_stores)
    children = tracker.search_runs(parent_id=result.run_id, limit=None)
    models = {c.params["model"] for c in children}
    assert models == {"rf", "xgb", "lgbm"}
    completed = [c for c in children if c.tags["search.trial_state"] == "complete"]
    for child in completed:
        assert child.metrics["objective"] == child.metrics["valid_accuracy"]
        assert "fit_time_s" in child.metrics
        assert child.params["n_estimators"] == "40"
    best = tracker.get_run(result.best_trial_run_id or "")
    assert best.tags["estimator.class"].split(".")[0] in {"sklearn", "xgboost", "lightgbm"}
