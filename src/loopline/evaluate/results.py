"""The pieces of an evaluation that are more than one number: curves, the confusion
matrix, the reliability table, a sample of residuals, per-slice metrics and a chosen
decision threshold.

Each is a plain dataclass of JSON-ready values with ``to_dict``/``from_dict``, so an
:class:`~loopline.evaluate.evaluation.Evaluation` round-trips through JSON exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from loopline.evaluate.inputs import Label

#: Longest curve kept in an evaluation; longer ones are thinned (ends always kept).
MAX_CURVE_POINTS = 200


def clean_float(value: Any) -> float | None:
    """``value`` as a float, or ``None`` for NaN/infinity/None (JSON has neither)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def thin(n: int, limit: int = MAX_CURVE_POINTS) -> list[int]:
    """At most ``limit`` evenly spread indices into ``range(n)``, first and last included."""
    if n <= limit:
        return list(range(n))
    step = (n - 1) / (limit - 1)
    return sorted({round(i * step) for i in range(limit)})


@dataclass
class Curve:
    """One curve of a plot: ROC (x=FPR, y=TPR) or PR (x=recall, y=precision), per class."""

    label: str
    x: list[float]
    y: list[float]
    area: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "x": self.x, "y": self.y, "area": self.area}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Curve:
        return cls(str(data["label"]), list(data["x"]), list(data["y"]), data.get("area"))


@dataclass
class ConfusionMatrix:
    """Counts of rows by true class (``matrix[i]``) and predicted class (``matrix[i][j]``)."""

    labels: list[Label]
    matrix: list[list[int]]

    def to_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "matrix": self.matrix}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConfusionMatrix:
        return cls(list(data["labels"]), [list(map(int, row)) for row in data["matrix"]])


@dataclass
class CalibrationBin:
    """Rows whose predicted probability fell in ``(lower, upper]`` (the first bin includes 0)."""

    lower: float
    upper: float
    count: int
    mean_predicted: float | None
    observed: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "lower": self.lower,
            "upper": self.upper,
            "count": self.count,
            "mean_predicted": self.mean_predicted,
            "observed": self.observed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationBin:
        return cls(
            float(data["lower"]),
            float(data["upper"]),
            int(data["count"]),
            data.get("mean_predicted"),
            data.get("observed"),
        )


@dataclass
class Calibration:
    """The reliability curve and its expected calibration error (ECE).

    ``of`` says which probability was binned: the positive class's (binary) or the
    predicted class's confidence (``"top label"``, multi-class). ECE is the
    count-weighted mean of ``|observed - mean_predicted|`` over the bins.
    """

    of: str
    bins: list[CalibrationBin]
    ece: float

    def to_dict(self) -> dict[str, Any]:
        return {"of": self.of, "bins": [b.to_dict() for b in self.bins], "ece": self.ece}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            str(data["of"]),
            [CalibrationBin.from_dict(b) for b in data["bins"]],
            float(data["ece"]),
        )


@dataclass
class Residuals:
    """A sample (at most a few hundred rows, seeded) of regression predictions and targets."""

    predicted: list[float]
    actual: list[float]
    total_rows: int

    def to_dict(self) -> dict[str, Any]:
        return {"predicted": self.predicted, "actual": self.actual, "total_rows": self.total_rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Residuals:
        return cls(list(data["predicted"]), list(data["actual"]), int(data["total_rows"]))


@dataclass
class SliceResult:
    """Metrics on the rows of one level of a slice column (or one bin of a numeric one).

    A metric that cannot be computed on the slice (too few rows, a single class) is
    ``None`` and ``notes[metric]`` says why.
    """

    column: str
    level: str
    n_rows: int
    metrics: dict[str, float | None]
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "level": self.level,
            "n_rows": self.n_rows,
            "metrics": self.metrics,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SliceResult:
        return cls(
            str(data["column"]),
            str(data["level"]),
            int(data["n_rows"]),
            dict(data["metrics"]),
            dict(data.get("notes", {})),
        )


@dataclass
class ThresholdChoice:
    """A decision threshold chosen for a binary classifier, and why.

    Rows whose positive-class probability is ``>= threshold`` are predicted positive.
    ``metric`` names the criterion (``"f1"``, ``"youden"``, ``"precision_at_recall(0.8)"``,
    ``"cost(fp=1, fn=5)"``), ``value`` its value at the threshold (a total cost for
    ``cost``, lower is better; for the others higher is better) and ``curve`` the
    criterion over candidate thresholds (thinned; ``None`` where it is undefined or
    infeasible).
    """

    metric: str
    threshold: float
    value: float
    curve_thresholds: list[float] = field(default_factory=list)
    curve_values: list[float | None] = field(default_factory=list)
    positive_label: Label | None = None

    @property
    def curve(self) -> list[tuple[float, float | None]]:
        """``(threshold, value)`` pairs by increasing threshold."""
        return list(zip(self.curve_thresholds, self.curve_values, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "threshold": self.threshold,
            "value": self.value,
            "curve_thresholds": self.curve_thresholds,
            "curve_values": self.curve_values,
            "positive_label": self.positive_label,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThresholdChoice:
        return cls(
            str(data["metric"]),
            float(data["threshold"]),
            float(data["value"]),
            list(data.get("curve_thresholds", [])),
            list(data.get("curve_values", [])),
            data.get("positive_label"),
        )
