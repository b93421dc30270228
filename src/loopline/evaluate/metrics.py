"""Metric values for classification and regression, on checked numpy arrays.

Scikit-learn's metric functions do the arithmetic (imported here, lazily). This module
adds what a report needs around them: a metric that is undefined on the rows given (a
single class, no positive predictions, fewer than two rows) is ``None`` with a sentence
in ``notes`` saying why, instead of NaN, a warning or an exception.

Names of the metrics (the keys gates and tracking see):

- binary: ``accuracy``, ``precision``, ``recall``, ``f1`` (of the positive class),
  ``precision_macro``, ``recall_macro``, ``f1_macro``, ``precision_weighted``,
  ``recall_weighted``, ``f1_weighted``, and with probabilities ``roc_auc``, ``pr_auc``
  (average precision), ``log_loss``, ``brier``, ``ece``;
- multi-class: the same, where ``precision``/``recall``/``f1`` are the macro averages,
  ``roc_auc`` and ``pr_auc`` are one-vs-rest macro averages, ``brier`` is the
  multi-class Brier score (range 0-2) and ``ece`` is the top-label calibration error;
- regression: ``rmse``, ``mae``, ``mape`` (rows with a zero target skipped), ``r2``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Sequence
from typing import Any

from loopline.evaluate.inputs import Label, Task
from loopline.evaluate.results import (
    Calibration,
    CalibrationBin,
    ConfusionMatrix,
    Curve,
    clean_float,
    thin,
)

CLASSIFICATION_AVERAGES = ("macro", "weighted")
PROBA_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")

#: Metrics where a smaller value is better (everything else: larger is better).
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece", "rmse", "mae", "mape"})


class MetricSet:
    """Metric values in a fixed order, with a note for each one that is ``None`` or caveated."""

    def __init__(self) -> None:
        self.values: dict[str, float | None] = {}
        self.notes: dict[str, str] = {}

    def skip(self, name: str, reason: str) -> None:
        self.values[name] = None
        self.notes[name] = reason

    def put(self, name: str, compute: Callable[[], Any]) -> None:
        """Store ``compute()``; an error or NaN becomes ``None`` with the reason, a warning
        becomes a note next to the value."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                value = clean_float(compute())
            except (ValueError, ZeroDivisionError) as exc:
                self.skip(name, f"undefined on these rows: {exc}")
                return
        self.values[name] = value
        messages = list(dict.fromkeys(str(w.message) for w in caught))
        if value is None:
            self.notes[name] = "undefined on these rows" + (
                f": {'; '.join(messages)}" if messages else ""
            )
        elif messages:
            self.notes[name] = "; ".join(messages)


def is_label(values: Any, label: Label) -> Any:
    """Boolean mask of the rows equal to ``label``."""
    import numpy as np

    mask = np.asarray(values == label, dtype=bool)
    return mask if mask.shape == values.shape else np.zeros(values.shape, dtype=bool)


def classification_metrics(
    y_true: Any,
    y_pred: Any,
    proba: Any,
    *,
    classes: Sequence[Label],
    task: Task,
    positive_label: Label | None,
    calibration_bins: int = 10,
    only: Collection[str] | None = None,
) -> MetricSet:
    """Every classification metric on these rows (or at least those in ``only``, which
    skips the costlier ones not asked for); ``proba`` (rows x classes, in the order of
    ``classes``) may be ``None``."""
    import numpy as np
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    out = MetricSet()
    n = len(y_true)
    if n == 0:
        for name in _classification_names(task, proba is not None):
            out.skip(name, "no rows")
        return out
    out.put("accuracy", lambda: accuracy_score(y_true, y_pred))
    present = set(np.unique(y_true).tolist()) | set(np.unique(y_pred).tolist())
    labels = [c for c in classes if c in present]

    if task == "binary":
        assert positive_label is not None
        _binary_prf(out, y_true, y_pred, positive_label)
    else:
        for kind in ("precision", "recall", "f1"):
            out.values[kind] = None  # filled from the macro average below, keeps the order

    averages: tuple[str, ...] = CLASSIFICATION_AVERAGES
    if only is not None and task == "binary":
        averages = tuple(a for a in averages if any(k.endswith(f"_{a}") for k in only))
    for average in averages:
        scores: tuple[Any, ...] | None = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = precision_recall_fscore_support(
                y_true, y_pred, labels=labels, average=average, zero_division=0.0
            )
        for kind, value in zip(("precision", "recall", "f1"), scores[:3], strict=True):
            out.values[f"{kind}_{average}"] = clean_float(value)
    if task != "binary":
        for kind in ("precision", "recall", "f1"):
            out.values[kind] = out.values[f"{kind}_macro"]
            out.notes[kind] = "macro average over the classes"

    if proba is None:
        for name in PROBA_METRICS:
            out.skip(name, "no probabilities (the model has no predict_proba)")
        return out
    if task == "binary":
        assert positive_label is not None
        _binary_proba_metrics(out, y_true, proba, classes, positive_label)
    else:
        _multiclass_proba_metrics(out, y_true, proba, classes)
    if only is None or "ece" in only:
        calibration = calibration_table(
            y_true,
            proba,
            classes=classes,
            task=task,
            positive_label=positive_label,
            n_bins=calibration_bins,
        )
        out.values["ece"] = calibration.ece
    return out


def _classification_names(task: Task, with_proba: bool) -> list[str]:
    names = ["accuracy", "precision", "recall", "f1"]
    names += [f"{k}_{a}" for a in CLASSIFICATION_AVERAGES for k in ("precision", "recall", "f1")]
    return names + (list(PROBA_METRICS) if with_proba else [])


def _binary_prf(out: MetricSet, y_true: Any, y_pred: Any, positive: Label) -> None:
    actual = is_label(y_true, positive)
    predicted = is_label(y_pred, positive)
    tp = int((actual & predicted).sum())
    n_actual, n_predicted = int(actual.sum()), int(predicted.sum())
    # Computed from the counts (what precision_score does) so that an undefined value
    # gets a reason instead of scikit-learn's silent 0.
    if n_predicted:
        out.values["precision"] = tp / n_predicted
    else:
        out.skip("precision", f"undefined: no row was predicted as {positive!r}")
    if n_actual:
        out.values["recall"] = tp / n_actual
    else:
        out.skip("recall", f"undefined: no row of the positive class {positive!r}")
    if n_actual + n_predicted:
        out.values["f1"] = 2 * tp / (n_actual + n_predicted)
    else:
        out.skip("f1", f"undefined: {positive!r} neither occurs nor is predicted")


def _binary_proba_metrics(
    out: MetricSet, y_true: Any, proba: Any, classes: Sequence[Label], positive: Label
) -> None:
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    actual = is_label(y_true, positive).astype(int)
    score = proba[:, list(classes).index(positive)]
    n_pos = int(actual.sum())
    if 0 < n_pos < len(actual):
        out.put("roc_auc", lambda: roc_auc_score(actual, score))
        out.put("pr_auc", lambda: average_precision_score(actual, score))
    else:
        only = positive if n_pos else _other(classes, positive)
        reason = f"undefined: only one class ({only!r}) among these rows"
        out.skip("roc_auc", reason)
        out.skip("pr_auc", reason)
    out.put("log_loss", lambda: log_loss(y_true, proba, labels=list(classes)))
    out.put("brier", lambda: brier_score_loss(actual, score, labels=[0, 1]))


def _multiclass_proba_metrics(
    out: MetricSet, y_true: Any, proba: Any, classes: Sequence[Label]
) -> None:
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        log_loss,
        roc_auc_score,
    )

    aucs: list[float] = []
    aps: list[float] = []
    absent: list[Label] = []
    for k, label in enumerate(classes):
        actual = is_label(y_true, label)
        if actual.all() or not actual.any():
            absent.append(label)
            continue
        aucs.append(float(roc_auc_score(actual, proba[:, k])))
        aps.append(float(average_precision_score(actual, proba[:, k])))
    if not aucs:
        reason = "undefined: fewer than two classes among these rows"
        out.skip("roc_auc", reason)
        out.skip("pr_auc", reason)
    else:
        out.values["roc_auc"] = sum(aucs) / len(aucs)
        out.values["pr_auc"] = sum(aps) / len(aps)
        note = "one-vs-rest, macro average"
        if absent:
            note += f" over the {len(aucs)} classes present (absent: {absent!r})"
        out.notes["roc_auc"] = note
        out.notes["pr_auc"] = note
    out.put("log_loss", lambda: log_loss(y_true, proba, labels=list(classes)))
    out.put("brier", lambda: brier_score_loss(y_true, proba, labels=list(classes)))
    out.notes.setdefault("brier", "multi-class Brier score (range 0-2)")


def _other(classes: Sequence[Label], label: Label) -> Label:
    return next((c for c in classes if c != label), label)


def regression_metrics(y_true: Any, y_pred: Any) -> tuple[MetricSet, int]:
    """RMSE, MAE, MAPE and R²; also returns how many zero targets MAPE skipped."""
    from sklearn.metrics import (
        mean_absolute_error,
        mean_absolute_percentage_error,
        r2_score,
        root_mean_squared_error,
    )

    out = MetricSet()
    n = len(y_true)
    if n == 0:
        for name in ("rmse", "mae", "mape", "r2"):
            out.skip(name, "no rows")
        return out, 0
    out.put("rmse", lambda: root_mean_squared_error(y_true, y_pred))
    out.put("mae", lambda: mean_absolute_error(y_true, y_pred))
    nonzero = y_true != 0
    skipped = int(n - nonzero.sum())
    if skipped == n:
        out.skip("mape", f"undefined: all {n} targets are 0")
    else:
        out.put("mape", lambda: mean_absolute_percentage_error(y_true[nonzero], y_pred[nonzero]))
        if skipped:
            out.notes["mape"] = (
                f"{skipped} of {n} rows skipped: their target is 0 (percentage undefined)"
            )
    if n < 2:
        out.skip("r2", "undefined: fewer than two rows")
    else:
        out.put("r2", lambda: r2_score(y_true, y_pred))
    return out, skipped


def confusion(y_true: Any, y_pred: Any, classes: Sequence[Label]) -> ConfusionMatrix:
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y_true, y_pred, labels=list(classes))
    return ConfusionMatrix(list(classes), [[int(v) for v in row] for row in matrix])


def calibration_table(
    y_true: Any,
    proba: Any,
    *,
    classes: Sequence[Label],
    task: Task,
    positive_label: Label | None,
    n_bins: int = 10,
) -> Calibration:
    """The reliability curve over ``n_bins`` equal-width bins of [0, 1] and the ECE.

    Bins are ``(lower, upper]`` (the first includes 0), the same bins as scikit-learn's
    ``calibration_curve(strategy="uniform")``, which gives no counts (ECE needs them).
    """
    import numpy as np

    if task == "binary":
        assert positive_label is not None
        score = proba[:, list(classes).index(positive_label)]
        hit = is_label(y_true, positive_label).astype(float)
        of = f"positive class {positive_label!r}"
    else:
        top = proba.argmax(axis=1)
        score = proba[np.arange(len(proba)), top]
        class_array = np.asarray(list(classes), dtype=object)
        hit = (class_array[top] == np.asarray(y_true, dtype=object)).astype(float)
        of = "top label (confidence of the predicted class)"
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], score)
    counts = np.bincount(ids, minlength=n_bins)
    sum_score = np.bincount(ids, weights=score, minlength=n_bins)
    sum_hit = np.bincount(ids, weights=hit, minlength=n_bins)
    bins = []
    for i in range(n_bins):
        count = int(counts[i])
        bins.append(
            CalibrationBin(
                lower=float(edges[i]),
                upper=float(edges[i + 1]),
                count=count,
                mean_predicted=float(sum_score[i] / count) if count else None,
                observed=float(sum_hit[i] / count) if count else None,
            )
        )
    n = len(score)
    ece = float(np.abs(sum_hit - sum_score).sum() / n) if n else 0.0
    return Calibration(of, bins, ece)


def curves(
    y_true: Any,
    proba: Any,
    *,
    classes: Sequence[Label],
    task: Task,
    positive_label: Label | None,
    max_classes: int = 20,
) -> tuple[list[Curve], list[Curve]]:
    """ROC and precision-recall curves: the positive class's, or one-vs-rest per class."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    if task == "binary":
        assert positive_label is not None
        targets = [positive_label]
    else:
        targets = list(classes)[:max_classes]
    roc: list[Curve] = []
    pr: list[Curve] = []
    for label in targets:
        actual = is_label(y_true, label).astype(int)
        if actual.all() or not actual.any():
            continue
        score = proba[:, list(classes).index(label)]
        fpr, tpr, _ = roc_curve(actual, score)
        precision, recall, _ = precision_recall_curve(actual, score)
        # precision_recall_curve returns decreasing recall; plot by increasing recall.
        precision, recall = precision[::-1], recall[::-1]
        keep = thin(len(fpr))
        roc.append(
            Curve(
                str(label),
                [float(fpr[i]) for i in keep],
                [float(tpr[i]) for i in keep],
                clean_float(auc(fpr, tpr)),
            )
        )
        keep = thin(len(recall))
        pr.append(
            Curve(
                str(label),
                [float(recall[i]) for i in keep],
                [float(precision[i]) for i in keep],
                clean_float(average_precision_score(actual, score)),
            )
        )
    return roc, pr
