"""The fit helper: params, fit time and training metrics in the run, for scikit-learn,
XGBoost and LightGBM estimators."""

from __future__ import annotations

from typing import Any

import pytest

from loopline.tracking import Tracker
from loopline.train import FitResult, fit, infer_task
from loopline.train.errors import TrainError

Data = tuple[Any, Any, Any, Any]


def test_classifier_logs_params_fit_time_and_metrics(
    tracker: Tracker, classification: Data
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, Xv, yv = classification
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.5))
    with tracker.start_run("fit") as run:
        result = fit(run, model, X, y, X_valid=Xv, y_valid=yv)
    assert isinstance(result, FitResult)
    assert result.estimator is model
    assert result.task == "classification"
    assert result.fit_seconds > 0
    assert set(result.train_metrics) == {
        "fit_time_s",
        "train_accuracy",
        "train_log_loss",
        "valid_accuracy",
        "valid_log_loss",
    }
    assert 0.7 < result.train_metrics["valid_accuracy"] <= 1.0
    record = tracker.get_run(run.id)
    assert record.params["logisticregression__C"] == "0.5"
    assert record.params["standardscaler__with_mean"] == "True"
    assert record.tags["estimator.class"] == "sklearn.pipeline.Pipeline"
    for key, value in result.train_metrics.items():
        assert record.metrics[key] == pytest.approx(value)


def test_regressor_logs_rmse_and_r2(sqlite_tracker: Tracker) -> None:
    import numpy as np
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=200)
    with sqlite_tracker.start_run("fit") as run:
        result = fit(
            run,
            Ridge(alpha=0.1),
            X[:150],
            y[:150],
            X_valid=X[150:],
            y_valid=y[150:],
            prefix="ridge.",
        )
    assert result.task == "regression"
    m = result.train_metrics
    assert set(m) == {
        "ridge.fit_time_s",
        "ridge.train_rmse",
        "ridge.train_r2",
        "ridge.valid_rmse",
        "ridge.valid_r2",
    }
    assert m["ridge.valid_rmse"] < 0.2
    assert m["ridge.valid_r2"] > 0.99
    record = sqlite_tracker.get_run(run.id)
    assert record.params["ridge.alpha"] == "0.1"


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_boosting_libraries(sqlite_tracker: Tracker, classification: Data, library: str) -> None:
    X, y, Xv, yv = classification
    if library == "xgboost":
        from xgboost import XGBClassifier

        model: Any = XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1)
    else:
        from lightgbm import LGBMClassifier

        model = LGBMClassifier(n_estimators=20, num_leaves=8, n_jobs=1, verbose=-1)
    with sqlite_tracker.start_run("fit") as run:
        result = fit(run, model, X, y, X_valid=Xv, y_valid=yv)
    assert result.task == "classification"
    assert result.train_metrics["valid_accuracy"] > 0.75
    assert "valid_log_loss" in result.train_metrics
    record = sqlite_tracker.get_run(run.id)
    assert record.params["n_estimators"] == "20"
    assert record.metrics["train_accuracy"] >= record.metrics["valid_accuracy"] - 0.1


def test_unsupervised_and_undeclared_estimators(sqlite_tracker: Tracker) -> None:
    import numpy as np
    from sklearn.cluster import KMeans

    X = np.random.default_rng(0).normal(size=(50, 2))
    with sqlite_tracker.start_run("fit") as run:
        result = fit(run, KMeans(n_clusters=2, n_init=2, random_state=0), X)
    assert result.task is None
    assert set(result.train_metrics) == {"fit_time_s"}

    class Plain:
        def get_params(self, deep: bool = True) -> dict[str, Any]:
            return {"k": 1}

        def fit(self, X: Any, y: Any) -> Plain:
            return self

        def predict(self, X: Any) -> Any:
            return np.zeros(len(X))

    assert infer_task(Plain()) is None
    with sqlite_tracker.start_run("fit") as run:
        result = fit(run, Plain(), X, np.zeros(50), task="regression")
    assert result.train_metrics["train_rmse"] == 0.0


def test_bad_arguments(sqlite_tracker: Tracker) -> None:
    with sqlite_tracker.start_run("fit") as run:
        with pytest.raises(TrainError, match="no fit"):
            fit(run, object(), [[1]], [1])
        from sklearn.linear_model import LinearRegression

        with pytest.raises(TrainError, match="both X_valid and y_valid"):
            fit(run, LinearRegression(), [[1], [2]], [1, 2], X_valid=[[3]])
        with pytest.raises(TrainError, match="task must be"):
            fit(run, LinearRegression(), [[1], [2]], [1, 2], task="ranking")  # type: ignore[arg-type]
