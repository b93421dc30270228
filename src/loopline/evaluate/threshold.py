"""Choosing the decision threshold of a binary classifier.

A row is predicted positive when its positive-class probability is ``>= threshold``.
Every distinct score is a candidate (plus one just above the highest, "predict no
positive"); the counts at all candidates come from one sort, so this is O(n log n).

Criteria:

- ``"f1"``: maximise F1 of the positive class;
- ``"youden"``: maximise Youden's J = TPR - FPR (the ROC point farthest above chance);
- ``("precision_at_recall", r)``: the highest precision among thresholds with recall >= r;
- ``("recall_at_precision", p)``: the highest recall among thresholds with precision >= p;
- ``("cost", fp_cost, fn_cost)``: the lowest total cost ``fp * fp_cost + fn * fn_cost``.

Ties go to the highest threshold. Choose the threshold on validation data, not on the
holdout you report: a threshold tuned on the evaluation rows flatters the metrics there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from loopline.evaluate.errors import EvaluationArgumentError, EvaluationInputError
from loopline.evaluate.inputs import Label, as_1d, as_proba, sorted_labels
from loopline.evaluate.metrics import is_label
from loopline.evaluate.results import ThresholdChoice, clean_float, thin

ThresholdMetric = str | tuple[str, float] | tuple[str, float, float]

METRICS_HELP = (
    '"f1", "youden", ("precision_at_recall", 0.8), ("recall_at_precision", 0.9) '
    'or ("cost", fp_cost, fn_cost)'
)


def select_threshold(
    y_true: Any,
    proba: Any,
    metric: ThresholdMetric = "f1",
    *,
    positive_label: Label | None = None,
    classes: Sequence[Label] | None = None,
) -> ThresholdChoice:
    """The threshold on the positive-class probability that is best for ``metric``.

    ``proba`` is the positive class's probability (1-D) or ``predict_proba``'s two
    columns (in the order of ``classes``, by default the sorted labels of ``y_true``).
    ``positive_label`` defaults to the second class, as in scikit-learn.
    """
    import numpy as np

    y = as_1d(y_true, "y_true")
    scores = as_proba(proba, len(y))
    labels = list(classes) if classes is not None else sorted_labels(y)
    if len(labels) != 2:
        raise EvaluationInputError(
            f"threshold selection is for binary classifiers; found {len(labels)} "
            f"classes {labels!r}",
            hint="Pass classes=[negative, positive] when y_true holds only one class",
            argument="classes",
        )
    positive = labels[1] if positive_label is None else positive_label
    if positive not in labels:
        raise EvaluationArgumentError(
            f"positive_label {positive!r} is not one of the classes {labels!r}",
            argument="positive_label",
            value=positive,
        )
    if scores.ndim == 2:
        if scores.shape[1] != 2:
            raise EvaluationInputError(
                f"proba has {scores.shape[1]} columns; threshold selection needs the "
                "positive class's probability or two columns",
                argument="proba",
            )
        scores = scores[:, labels.index(positive)]
    name, objective = _objective(metric)
    actual = is_label(y, positive).astype(np.int64)
    n_pos = int(actual.sum())
    n_neg = len(actual) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise EvaluationInputError(
            f"threshold selection needs rows of both classes; y_true has {n_pos} "
            f"positive ({positive!r}) and {n_neg} negative rows",
            argument="y_true",
        )

    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]
    tp = np.r_[0, np.cumsum(actual[order])[last_of_run]].astype(float)
    fp = np.r_[0, last_of_run + 1].astype(float) - tp
    thresholds = np.r_[np.nextafter(sorted_scores[0], np.inf), sorted_scores[last_of_run]]
    values, maximise = objective(tp, fp, float(n_pos), float(n_neg))

    feasible = np.isfinite(values)
    if not feasible.any():
        raise EvaluationArgumentError(
            f"no threshold satisfies {name} on these rows",
            hint="Lower the required level, or choose another criterion",
            argument="criterion",
            value=name,
        )
    masked = np.where(feasible, values, -np.inf if maximise else np.inf)
    best = int(np.argmax(masked) if maximise else np.argmin(masked))

    ascending = list(range(len(thresholds)))[::-1]
    keep = [ascending[i] for i in thin(len(ascending))]
    return ThresholdChoice(
        metric=name,
        threshold=float(thresholds[best]),
        value=float(values[best]),
        curve_thresholds=[float(thresholds[i]) for i in keep],
        curve_values=[clean_float(values[i]) for i in keep],
        positive_label=positive,
    )


def _objective(metric: ThresholdMetric) -> tuple[str, Any]:
    """The criterion's display name and a function of the counts -> (values, maximise)."""
    import numpy as np

    if isinstance(metric, str):
        kind, args = metric, cast(tuple[float, ...], ())
    elif isinstance(metric, tuple) and metric and isinstance(metric[0], str):
        kind, args = metric[0], tuple(float(a) for a in metric[1:])
    else:
        raise EvaluationArgumentError(
            f"unknown threshold criterion {metric!r}; use {METRICS_HELP}",
            argument="criterion",
            value=metric,
        )

    def precision(tp: Any, fp: Any) -> Any:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1.0), np.nan)

    if kind == "f1" and not args:
        return "f1", lambda tp, fp, p, n: (2 * tp / (tp + fp + p), True)
    if kind == "youden" and not args:
        return "youden", lambda tp, fp, p, n: (tp / p - fp / n, True)
    if kind == "precision_at_recall" and len(args) == 1:
        level = _level(kind, args[0])
        return f"precision_at_recall({level:g})", lambda tp, fp, p, n: (
            np.where(tp / p >= level, precision(tp, fp), np.nan),
            True,
        )
    if kind == "recall_at_precision" and len(args) == 1:
        level = _level(kind, args[0])
        return f"recall_at_precision({level:g})", lambda tp, fp, p, n: (
            np.where(np.nan_to_num(precision(tp, fp)) >= level, tp / p, np.nan),
            True,
        )
    if kind == "cost" and len(args) == 2:
        fp_cost, fn_cost = args
        if fp_cost < 0 or fn_cost < 0:
            raise EvaluationArgumentError(
                f"costs must be >= 0, got fp_cost={fp_cost}, fn_cost={fn_cost}",
                argument="cost",
                value=(fp_cost, fn_cost),
            )
        return f"cost(fp={fp_cost:g}, fn={fn_cost:g})", lambda tp, fp, p, n: (
            fp * fp_cost + (p - tp) * fn_cost,
            False,
        )
    raise EvaluationArgumentError(
        f"unknown threshold criterion {metric!r}; use {METRICS_HELP}",
        argument="criterion",
        value=metric,
    )


def _level(kind: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise EvaluationArgumentError(
            f"{kind} needs a level between 0 and 1, got {value}", argument=kind, value=value
        )
    return value
