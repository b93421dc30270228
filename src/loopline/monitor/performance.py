"""Realized performance: labels from feedback joined to their logged predictions.

Labels arrive by request id and row (``ll_feedback``), often long after the prediction.
A window's realized performance is computed from the labels known when it runs, so
running the window again after more labels arrived updates it (the series row is
replaced, not duplicated). The metrics are :mod:`loopline.evaluate.metrics`', the same as
evaluation and gates use.
"""

from __future__ import annotations

from typing import Any


def realized_metrics(
    task: str, y_true: Any, y_pred: Any, proba: Any | None, classes: list[str] | None
) -> dict[str, float | None]:
    """Metrics of predictions against their labels (labels and classes as text for
    classifiers)."""
    import numpy as np

    from loopline.evaluate.metrics import classification_metrics, regression_metrics

    if task == "regression":
        metrics, _ = regression_metrics(
            np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
        )
        return dict(metrics.values)
    labels = list(classes or sorted({str(v) for v in y_true} | {str(v) for v in y_pred}))
    kind = "binary" if len(labels) == 2 else "multiclass"
    metrics = classification_metrics(
        np.asarray([str(v) for v in y_true], dtype=object),
        np.asarray([str(v) for v in y_pred], dtype=object),
        proba,
        classes=labels,
        task=kind,  # type: ignore[arg-type]
        positive_label=labels[1] if kind == "binary" else None,
    )
    return dict(metrics.values)
