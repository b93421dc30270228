"""``evaluate`` on real scikit-learn models, and on duck-typed wrappers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.svm import LinearSVC

from loopline.evaluate import evaluate, evaluate_gates
from loopline.evaluate.errors import EvaluationError


@pytest.fixture(scope="module")
def churn() -> tuple[pd.DataFrame, np.ndarray, LogisticRegression]:
    X, y = make_classification(n_samples=800, n_features=5, n_informative=3, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    model = LogisticRegression().fit(frame, y)
    return frame, y, model


def test_binary_classifier_end_to_end(
    churn: tuple[pd.DataFrame, np.ndarray, LogisticRegression],
) -> None:
    frame, y, model = churn
    plan = np.where(frame["f0"] > 0, "pro", "basic")
    ev = evaluate(
        model,
        frame,
        y,
        slices=["plan", ("f1", 4)],
        slice_data=frame.assign(plan=plan),
    )
    assert ev.task == "binary"
    assert ev.threshold is None  # the model's own predict
    assert ev.metrics["f1"] == pytest.approx(f1_score(y, model.predict(frame)))
    assert ev.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(y, model.predict_proba(frame)[:, 1])
    )
    assert ev.info["model"].endswith("LogisticRegression")
    assert {s.level for s in ev.slices_of("plan")} == {"pro", "basic"}
    assert sum(s.n_rows for s in ev.slices_of("f1")) == 800

    tuned = evaluate(model, frame, y, threshold="f1")
    assert tuned.threshold is not None
    assert tuned.metrics["f1"] is not None
    assert ev.metrics["f1"] is not None
    assert tuned.metrics["f1"] >= ev.metrics["f1"] - 1e-12

    verdict = evaluate_gates(["f1 >= 0.5", "roc_auc >= champion.roc_auc - 0.01"], tuned, ev)
    assert verdict.passed, verdict.rows()


def test_multiclass_classifier() -> None:
    X, y = make_classification(
        n_samples=600, n_features=6, n_informative=4, n_classes=3, random_state=1
    )
    labels = np.array(["a", "b", "c"])[y]
    model = LogisticRegression(max_iter=300).fit(X, labels)
    ev = evaluate(model, X, labels)
    assert ev.task == "multiclass"
    assert ev.classes == ["a", "b", "c"]
    assert ev.metrics["roc_auc"] is not None
    assert ev.metrics["roc_auc"] > 0.7
    assert ev.calibration is not None
    assert "top label" in ev.calibration.of


def test_regressor_on_a_numpy_array_slices_from_a_mapping() -> None:
    X, y = make_regression(n_samples=500, n_features=4, noise=5.0, random_state=2)
    model = LinearRegression().fit(X, y)
    ev = evaluate(model, X, y, slices=[("x0", 3)], slice_data={"x0": X[:, 0]})
    assert ev.task == "regression"
    assert ev.metrics["r2"] is not None
    assert ev.metrics["r2"] > 0.95
    assert len(ev.slices) == 3


def test_classifier_without_predict_proba() -> None:
    X, y = make_classification(n_samples=200, n_features=4, random_state=3)
    ev = evaluate(LinearSVC().fit(X, y), X, y)
    assert ev.task == "binary"
    assert ev.metrics["accuracy"] is not None
    assert ev.metrics["roc_auc"] is None
    with pytest.raises(EvaluationError, match="needs probabilities"):
        evaluate(LinearSVC().fit(X, y), X, y, threshold="f1")


class Wrapper:
    """A registry-style wrapper: predict_proba and classes_, nothing from sklearn."""

    classes_ = ["stay", "churn"]

    def predict(self, X: Any) -> np.ndarray:
        return np.where(np.asarray(X)[:, 0] > 0.5, "churn", "stay")

    def predict_proba(self, X: Any) -> np.ndarray:
        p = np.asarray(X, dtype=float)[:, 0]
        return np.column_stack([1 - p, p])


def test_duck_typed_wrapper_with_unsorted_classes() -> None:
    X = np.array([[0.9], [0.2], [0.7], [0.4]])
    y = np.array(["churn", "stay", "stay", "churn"])
    ev = evaluate(Wrapper(), X, y, positive_label="churn")
    assert ev.classes == ["stay", "churn"]
    assert ev.metrics["roc_auc"] == pytest.approx(3 / 4)  # 0.4 < 0.7 is the one bad pair
    assert ev.metrics["accuracy"] == pytest.approx(0.5)
    assert ev.confusion is not None
    assert ev.confusion.labels == ["stay", "churn"]


def test_not_a_model() -> None:
    with pytest.raises(EvaluationError, match="has no predict method"):
        evaluate(object(), [[1]], [1])
