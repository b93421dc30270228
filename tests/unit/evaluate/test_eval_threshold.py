"""Decision threshold selection for binary classifiers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from loopline.evaluate import evaluate_predictions, select_threshold
from loopline.evaluate.errors import EvaluationError

Y = [0, 0, 1, 1]
P = [0.1, 0.4, 0.35, 0.8]


def test_f1_by_hand() -> None:
    choice = select_threshold(Y, P, "f1")
    assert choice.threshold == pytest.approx(0.35)
    assert choice.value == pytest.approx(0.8)
    assert choice.metric == "f1"
    assert choice.positive_label == 1
    thresholds = [t for t, _ in choice.curve]
    assert thresholds == sorted(thresholds)


def test_youden_ties_go_to_the_highest_threshold() -> None:
    choice = select_threshold(Y, P, "youden")
    assert choice.threshold == pytest.approx(0.8)
    assert choice.value == pytest.approx(0.5)


def test_cost_precision_at_recall_and_recall_at_precision() -> None:
    cost = select_threshold(Y, P, ("cost", 1, 5))
    assert (cost.threshold, cost.value) == pytest.approx((0.35, 1.0))
    assert cost.metric == "cost(fp=1, fn=5)"
    # The highest score is a negative's: predicting no positive at all is cheapest.
    cheap_misses = select_threshold([1, 0], [0.2, 0.9], ("cost", 10, 1))
    assert cheap_misses.threshold > 0.9
    assert cheap_misses.value == pytest.approx(1.0)
    par = select_threshold(Y, P, ("precision_at_recall", 1.0))
    assert (par.threshold, par.value) == pytest.approx((0.35, 2 / 3))
    rap = select_threshold(Y, P, ("recall_at_precision", 1.0))
    assert (rap.threshold, rap.value) == pytest.approx((0.8, 0.5))


def test_f1_choice_is_optimal_against_sklearn() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.4 * y + rng.uniform(0, 0.7, 500), 0, 1)
    choice = select_threshold(y, np.column_stack([1 - p, p]), "f1")
    best = max(f1_score(y, (p >= t).astype(int)) for t in np.unique(p))
    assert choice.value == pytest.approx(best)
    assert f1_score(y, (p >= choice.threshold).astype(int)) == pytest.approx(best)
    assert len(choice.curve) <= 200


def test_evaluate_applies_and_records_the_threshold() -> None:
    ev = evaluate_predictions(Y, proba=P, threshold="f1")
    assert ev.threshold == pytest.approx(0.35)
    assert ev.threshold_choice is not None
    assert ev.threshold_choice.metric == "f1"
    assert ev.metrics["f1"] == pytest.approx(0.8)
    fixed = evaluate_predictions(Y, proba=P, threshold=0.9)
    assert fixed.threshold == 0.9
    assert fixed.threshold_choice is None
    assert fixed.metrics["precision"] is None  # nothing predicted positive
    assert fixed.confusion is not None
    assert fixed.confusion.matrix == [[2, 0], [2, 0]]


def test_string_labels_and_positive_label() -> None:
    y = ["churn", "stay", "churn", "stay"]
    p_churn = [0.9, 0.2, 0.6, 0.7]
    choice = select_threshold(y, p_churn, "f1", positive_label="churn")
    assert choice.positive_label == "churn"
    assert choice.value == pytest.approx(0.8)


@pytest.mark.parametrize(
    ("y", "p", "metric", "message"),
    [
        ([1, 0], [0.2, 0.9], ("recall_at_precision", 0.9), "no threshold satisfies"),
        ([1, 1], [0.2, 0.9], "f1", "needs rows of both classes|exactly|classes"),
        ([0, 1, 2], [0.2, 0.9, 0.5], "f1", "binary classifiers"),
        (Y, P, "accuracy", "unknown threshold criterion"),
        (Y, P, ("precision_at_recall", 1.5), "between 0 and 1"),
        (Y, P, ("cost", -1, 1), "costs must be >= 0"),
    ],
)
def test_errors(y: list[int], p: list[float], metric: object, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        select_threshold(y, p, metric)  # type: ignore[arg-type]


def test_multiclass_threshold_is_refused() -> None:
    proba = np.full((3, 3), 1 / 3)
    with pytest.raises(EvaluationError, match="binary classification only"):
        evaluate_predictions([0, 1, 2], proba=proba, threshold=0.5)
