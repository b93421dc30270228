"""Evaluating a model (or its predictions) on labelled data: the :class:`Evaluation`.

``evaluate(model, X, y)`` works on anything with ``predict`` and, for classifiers,
``predict_proba`` and ``classes_`` (scikit-learn estimators, XGBoost/LightGBM's
scikit-learn wrappers, a registry model wrapper); ``evaluate_predictions`` on arrays.
An Evaluation holds the metrics (see :mod:`loopline.evaluate.metrics` for the names),
the confusion matrix, calibration, curves, per-slice metrics and the decision threshold,
and renders itself as JSON (round-trips) or one self-contained HTML page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from loopline.evaluate.errors import (
    EvaluationArgumentError,
    EvaluationDocumentError,
    EvaluationInputError,
)
from loopline.evaluate.inputs import (
    TASKS,
    Label,
    Task,
    as_1d,
    as_float,
    as_proba,
    check_length,
    infer_task,
    sorted_labels,
    to_label,
)
from loopline.evaluate.results import (
    Calibration,
    ConfusionMatrix,
    Curve,
    Residuals,
    SliceResult,
    ThresholdChoice,
)
from loopline.evaluate.slices import SliceSpec
from loopline.evaluate.threshold import ThresholdMetric

#: Version of the JSON layout written by ``Evaluation.to_dict``.
FORMAT_VERSION = 1

#: The metrics kept per slice (the full set is kept for the whole data).
SLICE_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss", "brier"),
    "multiclass": ("accuracy", "f1", "f1_weighted", "roc_auc", "log_loss"),
    "regression": ("rmse", "mae", "mape", "r2"),
}

#: The metric a report leads with, and plots per slice.
PRIMARY_METRIC: dict[str, str] = {"binary": "f1", "multiclass": "f1", "regression": "rmse"}

#: Regression rows kept (a seeded sample) for the residual plots.
RESIDUAL_SAMPLE = 500


class RunLike(Protocol):
    """What :meth:`Evaluation.log_to` needs of a tracking run (``loopline.tracking``'s
    ``Run`` or anything shaped like it)."""

    def log_metrics(self, metrics: Mapping[str, float], /) -> object: ...

    def log_artifact(self, name: str, data: bytes, /) -> object: ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Evaluation:
    """The result of evaluating one model on one labelled data set.

    ``metrics`` maps metric names to values; a value is ``None`` when the metric is
    undefined here and ``notes[name]`` says why (notes also carry caveats, such as how
    many zero targets MAPE skipped). ``threshold`` is the decision threshold applied to
    the positive-class probability (``None``: the model's own ``predict``), and
    ``threshold_choice`` how it was chosen, when it was. ``data_id`` names the data
    evaluated on (a dataset version), so champion comparisons can check it is the same.
    """

    task: Task
    n_rows: int
    metrics: dict[str, float | None]
    notes: dict[str, str] = field(default_factory=dict)
    classes: list[Label] | None = None
    positive_label: Label | None = None
    threshold: float | None = None
    threshold_choice: ThresholdChoice | None = None
    confusion: ConfusionMatrix | None = None
    calibration: Calibration | None = None
    roc_curves: list[Curve] = field(default_factory=list)
    pr_curves: list[Curve] = field(default_factory=list)
    residuals: Residuals | None = None
    slices: list[SliceResult] = field(default_factory=list)
    data_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    created_at: str = field(default_factory=_now)

    @property
    def primary_metric(self) -> str:
        return PRIMARY_METRIC[self.task]

    def summary(self) -> str:
        """One line: the task, the row count and the headline metrics."""
        keys = ("rmse", "mae", "r2") if self.task == "regression" else ("accuracy", "f1", "roc_auc")
        shown = ", ".join(
            f"{k}={self.metrics[k]:.4f}" for k in keys if self.metrics.get(k) is not None
        )
        return f"{self.task}, {self.n_rows} rows: {shown or 'no metric available'}"

    def slices_of(self, column: str) -> list[SliceResult]:
        return [s for s in self.slices if s.column == column]

    # -- JSON -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "task": self.task,
            "n_rows": self.n_rows,
            "metrics": dict(self.metrics),
            "notes": dict(self.notes),
            "classes": self.classes,
            "positive_label": self.positive_label,
            "threshold": self.threshold,
            "threshold_choice": self.threshold_choice.to_dict() if self.threshold_choice else None,
            "confusion": self.confusion.to_dict() if self.confusion else None,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "roc_curves": [c.to_dict() for c in self.roc_curves],
            "pr_curves": [c.to_dict() for c in self.pr_curves],
            "residuals": self.residuals.to_dict() if self.residuals else None,
            "slices": [s.to_dict() for s in self.slices],
            "data_id": self.data_id,
            "info": dict(self.info),
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        version = data.get("format")
        if version != FORMAT_VERSION:
            raise EvaluationDocumentError(
                f"cannot read an evaluation in format {version!r}; this loopline reads "
                f"format {FORMAT_VERSION}",
                reason="format",
            )
        try:
            task = data["task"]
            if task not in ("binary", "multiclass", "regression"):
                raise ValueError(f"unknown task {task!r}")
            choice = data.get("threshold_choice")
            conf = data.get("confusion")
            calib = data.get("calibration")
            resid = data.get("residuals")
            return cls(
                task=task,
                n_rows=int(data["n_rows"]),
                metrics=dict(data["metrics"]),
                notes=dict(data.get("notes") or {}),
                classes=data.get("classes"),
                positive_label=data.get("positive_label"),
                threshold=data.get("threshold"),
                threshold_choice=ThresholdChoice.from_dict(choice) if choice else None,
                confusion=ConfusionMatrix.from_dict(conf) if conf else None,
                calibration=Calibration.from_dict(calib) if calib else None,
                roc_curves=[Curve.from_dict(c) for c in data.get("roc_curves") or []],
                pr_curves=[Curve.from_dict(c) for c in data.get("pr_curves") or []],
                residuals=Residuals.from_dict(resid) if resid else None,
                slices=[SliceResult.from_dict(s) for s in data.get("slices") or []],
                data_id=data.get("data_id"),
                info=dict(data.get("info") or {}),
                created_at=str(data.get("created_at", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EvaluationDocumentError(
                f"malformed evaluation document: {exc}", reason="malformed"
            ) from exc

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, default=str)

    @classmethod
    def from_json(cls, text: str | bytes) -> Evaluation:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise EvaluationDocumentError(
                f"an evaluation document must be JSON: {exc}", reason="not JSON"
            ) from exc
        if not isinstance(data, dict):
            raise EvaluationDocumentError(
                "an evaluation document must be a JSON object", reason="not an object"
            )
        return cls.from_dict(data)

    # -- HTML and tracking ------------------------------------------------------------

    def to_html(self, title: str | None = None) -> str:
        """One self-contained HTML page (inline CSS and SVG, no external resource)."""
        from loopline.evaluate.report import render_html

        return render_html(self, title=title)

    def log_to(
        self,
        run: RunLike,
        *,
        prefix: str = "eval.",
        name: str = "evaluation",
        html: bool = True,
        title: str | None = None,
    ) -> dict[str, str]:
        """Log the metrics (``{prefix}{metric}``, ``None`` ones left out, plus
        ``{prefix}n_rows`` and ``{prefix}threshold``) and store ``{name}.json`` and
        ``{name}.html`` as artifacts; returns each artifact's name -> digest."""
        numbers: dict[str, float] = {
            f"{prefix}{key}": value for key, value in self.metrics.items() if value is not None
        }
        numbers[f"{prefix}n_rows"] = float(self.n_rows)
        if self.threshold is not None:
            numbers[f"{prefix}threshold"] = self.threshold
        run.log_metrics(numbers)
        digests = {f"{name}.json": _digest(run.log_artifact(f"{name}.json", self._json_bytes()))}
        if html:
            page = self.to_html(title=title).encode("utf-8")
            digests[f"{name}.html"] = _digest(run.log_artifact(f"{name}.html", page))
        return digests

    def _json_bytes(self) -> bytes:
        return self.to_json().encode("utf-8")


def _digest(result: object) -> str:
    """A run's ``log_artifact`` returns the digest, or a record carrying one."""
    return str(getattr(result, "digest", result))


# -- evaluating -----------------------------------------------------------------------


def evaluate(
    model: Any,
    X: Any,
    y: Any,
    *,
    task: str = "auto",
    slices: Sequence[SliceSpec] = (),
    slice_data: Any = None,
    threshold: float | ThresholdMetric | None = None,
    positive_label: Label | None = None,
    min_slice_rows: int = 10,
    calibration_bins: int = 10,
    data_id: str | None = None,
    info: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Evaluate ``model`` on features ``X`` and true targets ``y``.

    ``task="auto"`` means classification when the model has ``classes_`` (binary for
    two classes) and regression otherwise. ``threshold`` (binary only) is a probability
    or a criterion of :func:`~loopline.evaluate.threshold.select_threshold` (``"f1"``,
    ``("cost", 1, 5)``...) chosen on these rows; ``None`` keeps the model's ``predict``.
    ``slices`` are read from ``slice_data`` (default: ``X``, when it has columns).
    """
    if not callable(getattr(model, "predict", None)):
        raise EvaluationInputError(
            f"cannot evaluate a {type(model).__name__}: it has no predict method",
            hint="Pass a fitted model, or use evaluate_predictions with arrays",
            argument="model",
        )
    _check_task(task)
    model_classes = getattr(model, "classes_", None)
    if task == "auto":
        if model_classes is None:
            task = "regression"
        else:
            task = "binary" if len(model_classes) == 2 else "multiclass"
    details = {"model": f"{type(model).__module__}.{type(model).__qualname__}"}
    details.update(info or {})
    common: dict[str, Any] = {
        "slices": slices,
        "slice_data": X if slice_data is None else slice_data,
        "min_slice_rows": min_slice_rows,
        "data_id": data_id,
        "info": details,
    }
    if task == "regression":
        return evaluate_predictions(y, model.predict(X), task="regression", **common)

    has_proba = callable(getattr(model, "predict_proba", None))
    proba = model.predict_proba(X) if has_proba else None
    classes = list(model_classes) if model_classes is not None else None
    if proba is not None and classes is None:
        raise EvaluationInputError(
            f"the {type(model).__name__} has predict_proba but no classes_, so its "
            "probability columns cannot be matched to labels",
            hint="Wrap the model to expose classes_, or use evaluate_predictions(classes=...)",
            argument="model",
        )
    y_pred = model.predict(X) if threshold is None or proba is None else None
    return evaluate_predictions(
        y,
        y_pred,
        proba,
        classes,
        task=task,
        threshold=threshold,
        positive_label=positive_label,
        calibration_bins=calibration_bins,
        **common,
    )


def evaluate_predictions(
    y_true: Any,
    y_pred: Any = None,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
    *,
    task: str = "auto",
    threshold: float | ThresholdMetric | None = None,
    positive_label: Label | None = None,
    slices: Sequence[SliceSpec] = (),
    slice_data: Any = None,
    min_slice_rows: int = 10,
    calibration_bins: int = 10,
    data_id: str | None = None,
    info: Mapping[str, Any] | None = None,
) -> Evaluation:
    """Evaluate predictions against ``y_true``.

    Classification needs ``y_pred`` (labels) or ``proba`` (2-D in the order of
    ``classes``, which default to the sorted labels; or 1-D, the positive class's
    probability) or both. Regression needs ``y_pred``. ``task="auto"`` picks
    classification when ``proba`` or ``classes`` is given, or the target is text or
    boolean, or has at most 20 distinct integer values and ``y_pred`` holds whole
    numbers too; otherwise regression. Pass ``task`` to be explicit.
    """
    _check_task(task)
    if min_slice_rows < 1:
        raise EvaluationArgumentError(
            f"min_slice_rows must be >= 1, got {min_slice_rows}",
            argument="min_slice_rows",
            value=min_slice_rows,
        )
    if calibration_bins < 1:
        raise EvaluationArgumentError(
            f"calibration_bins must be >= 1, got {calibration_bins}",
            argument="calibration_bins",
            value=calibration_bins,
        )
    y = as_1d(y_true, "y_true")
    if not len(y):
        raise EvaluationInputError(
            "y_true is empty: there is nothing to evaluate", argument="y_true"
        )
    pred = as_1d(y_pred, "y_pred") if y_pred is not None else None
    if pred is not None:
        check_length(len(y), pred, "y_pred")
    prob = as_proba(proba, len(y)) if proba is not None else None
    resolved = infer_task(y, classes, prob, pred) if task == "auto" else cast(Task, task)
    options = _Options(slices, slice_data, min_slice_rows, calibration_bins)
    if resolved == "regression":
        if prob is not None or threshold is not None:
            raise EvaluationArgumentError(
                "proba and threshold apply to classification, not regression",
                argument="task",
                value=task,
            )
        if pred is None:
            raise EvaluationInputError(
                "regression needs y_pred (the predicted values)", argument="y_pred"
            )
        evaluation = _regression(as_float(y, "y_true"), as_float(pred, "y_pred"), options)
    else:
        evaluation = _classification(
            y, pred, prob, classes, resolved, threshold, positive_label, options
        )
    evaluation.data_id = data_id
    evaluation.info = {**dict(info or {}), **evaluation.info}
    return evaluation


@dataclass
class _Options:
    slices: Sequence[SliceSpec]
    slice_data: Any
    min_slice_rows: int
    calibration_bins: int


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise EvaluationArgumentError(
            f"unknown task {task!r}; expected one of {', '.join(TASKS)}",
            argument="task",
            value=task,
        )


def _regression(y: Any, pred: Any, options: _Options) -> Evaluation:
    import numpy as np

    from loopline.evaluate.metrics import regression_metrics

    metric_set, skipped = regression_metrics(y, pred)
    n = len(y)
    keep = np.arange(n)
    if n > RESIDUAL_SAMPLE:
        keep = np.sort(np.random.default_rng(0).choice(n, RESIDUAL_SAMPLE, replace=False))
    evaluation = Evaluation(
        task="regression",
        n_rows=n,
        metrics=metric_set.values,
        notes=metric_set.notes,
        residuals=Residuals(
            [float(v) for v in pred[keep]], [float(v) for v in y[keep]], total_rows=n
        ),
        info={"mape_skipped_rows": skipped},
    )

    def compute(mask: Any) -> tuple[dict[str, float | None], dict[str, str]]:
        subset, _ = regression_metrics(y[mask], pred[mask])
        return subset.values, subset.notes

    evaluation.slices = _slice_results("regression", n, compute, options)
    return evaluation


def _classification(
    y: Any,
    pred: Any,
    prob: Any,
    classes: Sequence[Any] | None,
    task: Task,
    threshold: float | ThresholdMetric | None,
    positive_label: Label | None,
    options: _Options,
) -> Evaluation:
    import numpy as np

    from loopline.evaluate.metrics import (
        calibration_table,
        classification_metrics,
        confusion,
        curves,
    )
    from loopline.evaluate.threshold import select_threshold

    labels = [to_label(c) for c in classes] if classes is not None else sorted_labels(y, pred)
    if prob is not None and prob.ndim == 2 and prob.shape[1] != len(labels):
        raise EvaluationInputError(
            f"proba has {prob.shape[1]} columns but there are {len(labels)} classes {labels!r}",
            hint="Pass classes= in the order of proba's columns (the model's classes_)",
            argument="proba",
        )
    if task == "binary" and len(labels) != 2:
        raise EvaluationInputError(
            f"a binary evaluation needs exactly two classes, found {len(labels)}: {labels!r}",
            hint="Pass classes=[negative, positive] when the data holds only one class, "
            "or task='multiclass'",
            argument="classes",
            found=labels,
        )
    if len(labels) < 2:
        raise EvaluationInputError(
            f"classification needs at least two classes, found {labels!r}; pass classes=",
            argument="classes",
            found=labels,
        )
    label_array = np.asarray(labels, dtype=object)
    _check_known(y, labels, "y_true")
    if pred is not None:
        _check_known(pred, labels, "y_pred")

    positive: Label | None = None
    if task == "binary":
        positive = labels[1] if positive_label is None else to_label(positive_label)
        if positive not in labels:
            raise EvaluationArgumentError(
                f"positive_label {positive!r} is not one of the classes {labels!r}",
                argument="positive_label",
                value=positive,
            )
    elif positive_label is not None:
        raise EvaluationArgumentError(
            "positive_label applies to binary classification only",
            argument="positive_label",
            value=positive,
        )

    if prob is not None and prob.ndim == 1:
        if task != "binary":
            raise EvaluationInputError(
                "a 1-D proba is the positive class's probability, which needs a binary "
                "task; pass the full predict_proba output for multi-class",
                argument="proba",
            )
        assert positive is not None
        pos_index = labels.index(positive)
        prob = np.column_stack([prob, 1.0 - prob] if pos_index == 0 else [1.0 - prob, prob])

    applied: float | None = None
    choice: ThresholdChoice | None = None
    if threshold is not None:
        if task != "binary":
            raise EvaluationArgumentError(
                "a decision threshold applies to binary classification only",
                argument="threshold",
                value=threshold,
            )
        if prob is None:
            raise EvaluationInputError(
                "a decision threshold needs probabilities; the model has no predict_proba "
                "(or pass proba=)",
                argument="proba",
            )
        assert positive is not None
        if isinstance(threshold, bool):
            raise EvaluationArgumentError(
                f"threshold must be a number or a criterion, not {threshold}",
                argument="threshold",
                value=threshold,
            )
        if isinstance(threshold, int | float):
            applied = float(threshold)
        else:
            choice = select_threshold(y, prob, threshold, positive_label=positive, classes=labels)
            applied = choice.threshold
        negative = next(c for c in labels if c != positive)
        scores = prob[:, labels.index(positive)]
        pred = np.where(scores >= applied, label_array[labels.index(positive)], negative)
        pred = np.asarray(pred.tolist())
    elif pred is None:
        if prob is None:
            raise EvaluationInputError(
                "classification needs y_pred (labels) or proba", argument="y_pred"
            )
        pred = np.asarray(label_array[prob.argmax(axis=1)].tolist())

    metric_set = classification_metrics(
        y,
        pred,
        prob,
        classes=labels,
        task=task,
        positive_label=positive,
        calibration_bins=options.calibration_bins,
    )
    evaluation = Evaluation(
        task=task,
        n_rows=len(y),
        metrics=metric_set.values,
        notes=metric_set.notes,
        classes=labels,
        positive_label=positive,
        threshold=applied,
        threshold_choice=choice,
        confusion=confusion(y, pred, labels),
    )
    if prob is not None:
        evaluation.calibration = calibration_table(
            y,
            prob,
            classes=labels,
            task=task,
            positive_label=positive,
            n_bins=options.calibration_bins,
        )
        evaluation.roc_curves, evaluation.pr_curves = curves(
            y, prob, classes=labels, task=task, positive_label=positive
        )

    def compute(mask: Any) -> tuple[dict[str, float | None], dict[str, str]]:
        subset = classification_metrics(
            y[mask],
            pred[mask],
            prob[mask] if prob is not None else None,
            classes=labels,
            task=task,
            positive_label=positive,
            calibration_bins=options.calibration_bins,
            only=SLICE_METRICS[task],
        )
        return subset.values, subset.notes

    evaluation.slices = _slice_results(task, len(y), compute, options)
    return evaluation


def _check_known(values: Any, labels: list[Label], name: str) -> None:
    known = set(labels)
    unknown = {to_label(v) for v in set(values.tolist())} - known
    if unknown:
        shown = sorted(map(repr, unknown))[:5]
        raise EvaluationInputError(
            f"{name} holds labels that are not among the classes {labels!r}: {', '.join(shown)}",
            hint="Check that y_true and the model use the same label type and values",
            argument=name,
        )


def _slice_results(
    task: Task,
    n_rows: int,
    compute: Any,
    options: _Options,
) -> list[SliceResult]:
    from loopline.evaluate.slices import slice_groups

    if not options.slices:
        return []
    keys = SLICE_METRICS[task]
    results = []
    for group in slice_groups(options.slice_data, options.slices, n_rows):
        count = int(group.mask.sum())
        if count < options.min_slice_rows:
            reason = f"only {count} rows in this slice (fewer than {options.min_slice_rows})"
            results.append(
                SliceResult(
                    group.column,
                    group.level,
                    count,
                    dict.fromkeys(keys),
                    dict.fromkeys(keys, reason),
                )
            )
            continue
        values, notes = compute(group.mask)
        results.append(
            SliceResult(
                group.column,
                group.level,
                count,
                {k: values.get(k) for k in keys},
                {k: notes[k] for k in keys if k in notes},
            )
        )
    return results
