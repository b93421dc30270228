"""Autologging a scikit-learn pipeline: nested params by sklearn's names, and fit time."""

from __future__ import annotations

import pytest

from loopline.tracking import Tracker, autolog
from loopline.tracking.errors import ParamConflictError, TrackingError

sklearn = pytest.importorskip("sklearn")


def test_pipeline_params_and_fit_time(sqlite_tracker: Tracker) -> None:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=200, n_features=5, random_state=0)
    pipe = Pipeline(
        [("scaler", StandardScaler()), ("logisticregression", LogisticRegression(C=0.5))]
    )
    with sqlite_tracker.start_run("exp") as run:
        fitted = autolog.fit(run, pipe, X, y)
    assert fitted is pipe
    assert hasattr(pipe, "classes_")
    record = sqlite_tracker.get_run(run.id)
    assert record.params["logisticregression__C"] == "0.5"
    assert record.params["logisticregression"] == "LogisticRegression"
    assert record.params["scaler__with_mean"] == "True"
    assert (
        record.params["steps"]
        == "[('scaler', StandardScaler), ('logisticregression', LogisticRegression)]"
    )
    assert record.params["memory"] == "None"
    assert record.tags["estimator.class"] == "sklearn.pipeline.Pipeline"
    assert record.metrics["fit_time_s"] > 0


def test_make_pipeline_names_and_prefixes(sqlite_tracker: Tracker) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=2.0))
    with sqlite_tracker.start_run("exp") as run:
        logged = autolog.log_estimator_params(run, pipe)
        autolog.log_estimator_params(run, LogisticRegression(C=3.0), prefix="challenger.")
        with pytest.raises(ParamConflictError):
            autolog.log_estimator_params(run, make_pipeline(StandardScaler(), LogisticRegression()))
        with pytest.raises(TrackingError, match="get_params"):
            autolog.log_estimator_params(run, object())
    assert logged["logisticregression__C"] == "2.0"
    record = sqlite_tracker.get_run(run.id)
    assert record.params["standardscaler__with_std"] == "True"
    assert record.params["challenger.C"] == "3.0"
    assert record.tags["challenger.estimator.class"].endswith("LogisticRegression")


def test_a_failing_fit_keeps_its_params(sqlite_tracker: Tracker) -> None:
    from sklearn.linear_model import LogisticRegression

    run = sqlite_tracker.start_run("exp")
    with pytest.raises(ValueError, match="2"), run:
        autolog.fit(run, LogisticRegression(C=1.5), [[0.0], [1.0]], [0, 0])  # one class
    record = sqlite_tracker.get_run(run.id)
    assert record.status == "failed"
    assert record.params["C"] == "1.5"
    assert "fit_time_s" not in record.metrics
