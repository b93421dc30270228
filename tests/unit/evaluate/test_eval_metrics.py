"""Metric values: small cases computed by hand, and agreement with scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from loopline.evaluate import evaluate_predictions
from loopline.evaluate.errors import EvaluationError

Y = [0, 0, 1, 1, 1, 0]
PRED = [0, 1, 1, 1, 0, 0]
P = [0.1, 0.6, 0.8, 0.7, 0.4, 0.2]


def test_binary_metrics_by_hand() -> None:
    ev = evaluate_predictions(Y, PRED, P)
    m = ev.metrics
    assert ev.task == "binary"
    assert ev.classes == [0, 1]
    assert ev.positive_label == 1
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    # 8 of the 9 (positive, negative) pairs are ordered correctly.
    assert m["roc_auc"] == pytest.approx(8 / 9)
    # Precision at each positive, by decreasing score: 1, 1, 3/4.
    assert m["pr_auc"] == pytest.approx((1 + 1 + 0.75) / 3)
    assert m["brier"] == pytest.approx(0.9 / 6)
    expected_log_loss = -np.mean(np.log([0.9, 0.4, 0.8, 0.7, 0.4, 0.8]))
    assert m["log_loss"] == pytest.approx(expected_log_loss)
    assert ev.confusion is not None
    assert ev.confusion.labels == [0, 1]
    assert ev.confusion.matrix == [[2, 1], [1, 2]]


def test_binary_metrics_match_sklearn_with_string_labels() -> None:
    rng = np.random.default_rng(3)
    y = rng.choice(["no", "yes"], size=300)
    p_yes = np.clip(np.where(y == "yes", 0.65, 0.35) + rng.normal(0, 0.25, 300), 0, 1)
    pred = np.where(p_yes >= 0.5, "yes", "no")
    proba = np.column_stack([1 - p_yes, p_yes])
    ev = evaluate_predictions(y, pred, proba, classes=["no", "yes"])
    m = ev.metrics
    assert ev.positive_label == "yes"
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, pos_label="yes"))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label="yes"))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label="yes"))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "yes", p_yes))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y == "yes", p_yes))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=["no", "yes"]))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y == "yes", p_yes))


def test_positive_label_can_be_the_first_class() -> None:
    ev = evaluate_predictions(Y, PRED, P, positive_label=0)
    assert ev.positive_label == 0
    # Class 0: predicted 0 at rows 0, 4, 5; truly 0 at rows 0, 1, 5.
    assert ev.metrics["precision"] == pytest.approx(2 / 3)
    # A 1-D proba is the positive class's probability: here P(0), which ranks the rows
    # in the opposite order of the 0s, so only 1 of the 9 pairs is ordered correctly.
    assert ev.metrics["roc_auc"] == pytest.approx(1 / 9)


def test_multiclass_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 400)
    logits = rng.normal(size=(400, 3)) + 1.5 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    ev = evaluate_predictions(y, proba=proba)
    m = ev.metrics
    assert ev.task == "multiclass"
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["f1_weighted"] == pytest.approx(skm.f1_score(y, pred, average="weighted"))
    assert m["recall_macro"] == pytest.approx(skm.recall_score(y, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, proba, labels=[0, 1, 2]))
    onehot = np.eye(3)[y]
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(onehot, proba))
    assert ev.confusion is not None
    assert ev.confusion.matrix == skm.confusion_matrix(y, pred).tolist()
    assert len(ev.roc_curves) == 3


def test_regression_metrics_by_hand_and_mape_skips_zero_targets() -> None:
    ev = evaluate_predictions([1.0, 2.0, 0.0, 4.0], [1.5, 2.0, 1.0, 3.0], task="regression")
    m = ev.metrics
    assert m["mae"] == pytest.approx(0.625)
    assert m["rmse"] == pytest.approx(0.75)
    assert m["mape"] == pytest.approx((0.5 + 0 + 0.25) / 3)
    assert m["r2"] == pytest.approx(1 - 2.25 / 8.75)
    assert ev.info["mape_skipped_rows"] == 1
    assert "1 of 4 rows skipped" in ev.notes["mape"]


def test_regression_matches_sklearn_and_auto_detects_task() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(10, 3, 200)
    pred = y + rng.normal(0, 1, 200)
    ev = evaluate_predictions(y, pred)
    assert ev.task == "regression"
    assert ev.metrics["rmse"] == pytest.approx(skm.root_mean_squared_error(y, pred))
    assert ev.metrics["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert ev.metrics["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))
    assert ev.residuals is not None
    assert ev.residuals.total_rows == 200


def test_mape_is_none_when_every_target_is_zero() -> None:
    ev = evaluate_predictions([0.0, 0.0, 0.0], [1.0, 0.0, 2.0], task="regression")
    assert ev.metrics["mape"] is None
    assert "all 3 targets are 0" in ev.notes["mape"]


def test_calibration_by_hand_and_against_sklearn() -> None:
    ev = evaluate_predictions([0, 0, 1, 1], proba=[0.05, 0.15, 0.15, 0.95])
    cal = ev.calibration
    assert cal is not None
    used = [b for b in cal.bins if b.count]
    assert [b.count for b in used] == [1, 2, 1]
    assert [b.mean_predicted for b in used] == pytest.approx([0.05, 0.15, 0.95])
    assert [b.observed for b in used] == [0.0, 0.5, 1.0]
    assert cal.ece == pytest.approx((0.05 + 2 * 0.35 + 0.05) / 4)
    assert ev.metrics["ece"] == pytest.approx(cal.ece)

    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 500)
    y = (rng.uniform(0, 1, 500) < p).astype(int)
    ev = evaluate_predictions(y, proba=p)
    assert ev.calibration is not None
    observed, predicted = calibration_curve(y, p, n_bins=10)
    bins = [b for b in ev.calibration.bins if b.count]
    assert [b.observed for b in bins] == pytest.approx(list(observed))
    assert [b.mean_predicted for b in bins] == pytest.approx(list(predicted))
    assert sum(b.count for b in ev.calibration.bins) == 500


def test_undefined_metrics_are_none_with_a_reason() -> None:
    ev = evaluate_predictions([0, 0, 0], [0, 0, 0], [0.1, 0.2, 0.3], classes=[0, 1])
    m = ev.metrics
    assert m["accuracy"] == 1.0
    assert m["precision"] is None
    assert "no row was predicted as 1" in ev.notes["precision"]
    assert m["recall"] is None
    assert m["roc_auc"] is None
    assert "only one class (0)" in ev.notes["roc_auc"]
    assert m["log_loss"] is not None
    assert not any(isinstance(v, float) and math.isnan(v) for v in m.values())


def test_labels_only_gives_no_probability_metrics() -> None:
    ev = evaluate_predictions(["a", "b", "a", "b"], ["a", "b", "b", "b"])
    assert ev.metrics["accuracy"] == 0.75
    assert ev.metrics["roc_auc"] is None
    assert "no probabilities" in ev.notes["roc_auc"]
    assert ev.calibration is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"y_true": [0, 1], "y_pred": [0, 1, 1]}, "y_pred has 3 rows but y_true has 2"),
        ({"y_true": [0, 1], "proba": [[0.2, 0.8, 0.0]] * 2, "classes": [0, 1]}, "3 columns"),
        ({"y_true": [0, 1], "y_pred": [0, 2], "classes": [0, 1]}, "not among the classes"),
        ({"y_true": [0, 1], "proba": [0.5, 1.5]}, "probabilities in [0, 1]"),
        ({"y_true": [0.5, 1.5], "y_pred": [np.nan, 1.0]}, "missing or infinite"),
        ({"y_true": [], "y_pred": []}, "empty"),
        ({"y_true": [0, 1], "y_pred": [0, 1], "task": "ranking"}, "unknown task"),
        ({"y_true": [0, 1, 2], "y_pred": [0, 1, 2], "task": "binary"}, "exactly two classes"),
        ({"y_true": [0, 1], "y_pred": [0, 1], "threshold": 0.5}, "needs probabilities"),
    ],
)
def test_bad_input_raises_a_clear_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(EvaluationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        evaluate_predictions(**kwargs)  # type: ignore[arg-type]
