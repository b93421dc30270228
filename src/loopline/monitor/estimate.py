"""Performance estimated without labels: confidence-based performance estimation (CBPE).

A classifier's scores, once calibrated, say how likely each prediction is to be right.
Calibration is fitted once, on the validation rows of the model's training data
(isotonic regression of the outcome on the score, one class against the rest), and kept
as the breakpoints of a monotone step function (:class:`Calibration`). On a window of
logged predictions, without any label:

- binary: with ``p`` the calibrated probability of the positive class, the expected
  confusion matrix is ``TP = sum(p | predicted positive)``, ``FP = sum(1 - p | predicted
  positive)``, ``FN = sum(p | predicted negative)``, ``TN = sum(1 - p | predicted
  negative)``: estimated accuracy, precision, recall and F1 follow. The estimated ROC AUC
  integrates the expected true- and false-positive rates over score thresholds (on
  :data:`SCORE_BINS` bins of the score, so it merges across batches);
- multi-class: the estimated accuracy is the mean calibrated probability of the
  predicted class.

The estimate follows performance when the inputs shift but the relation between inputs
and labels does not (covariate shift), which is when labels are late and the estimate
matters; it cannot see a change of that relation (concept drift): only realized
performance from feedback can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: Score bins the ROC AUC estimate accumulates over.
SCORE_BINS = 1000
#: Validation rows from which calibration is isotonic (Platt scaling below).
ISOTONIC_MIN_ROWS = 5000


def _isotonic(score: Any, hit: Any) -> tuple[Any, Any]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(score, hit)
    return iso.X_thresholds_, iso.y_thresholds_


def _platt(score: Any, hit: Any) -> tuple[Any, Any]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    eps = 1e-6
    clipped = np.clip(score, eps, 1 - eps)
    logit = np.log(clipped / (1 - clipped)).reshape(-1, 1)
    if len(np.unique(hit)) < 2:
        grid = np.linspace(0.0, 1.0, 101)
        return grid, np.full_like(grid, float(hit.mean()) if len(hit) else 0.5)
    fit = LogisticRegression(C=1e6).fit(logit, hit)
    grid = np.unique(
        np.concatenate((np.linspace(0.0, 1.0, 1001), np.quantile(score, np.linspace(0, 1, 101))))
    )
    g = np.clip(grid, eps, 1 - eps)
    return grid, fit.predict_proba(np.log(g / (1 - g)).reshape(-1, 1))[:, 1]


@dataclass
class Calibration:
    """A monotone map score -> probability, per class (one against the rest)."""

    classes: list[str]
    #: Per class: increasing scores and the calibrated probability at each.
    xs: list[list[float]]
    ys: list[list[float]]
    positive: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"classes": self.classes, "xs": self.xs, "ys": self.ys, "positive": self.positive}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        return cls(
            [str(c) for c in d["classes"]],
            [[float(v) for v in x] for x in d["xs"]],
            [[float(v) for v in y] for y in d["ys"]],
            None if d.get("positive") is None else str(d["positive"]),
        )

    @classmethod
    def fit(cls, classes: list[str], proba: Any, labels: Any) -> Calibration:
        """From validation rows: ``proba`` (rows x classes, in ``classes`` order) and the
        true ``labels`` (as text).

        With at least :data:`ISOTONIC_MIN_ROWS` rows, isotonic regression (no assumption
        on the shape); with fewer, Platt scaling (a logistic fit on the score's logit, two
        parameters), whose estimates vary far less on a few hundred rows. Both are kept as
        the same monotone map, sampled at the scores seen.
        """
        import numpy as np

        labels = np.asarray([str(v) for v in labels], dtype=object)
        xs, ys = [], []
        targets = classes[1:] if len(classes) == 2 else classes
        for c in targets:
            column = classes.index(c)
            score = np.asarray(proba[:, column], dtype=np.float64)
            hit = (labels == c).astype(np.float64)
            x, y = (_isotonic if len(score) >= ISOTONIC_MIN_ROWS else _platt)(score, hit)
            xs.append([float(v) for v in x])
            ys.append([float(v) for v in y])
        return cls(list(classes), xs, ys, classes[1] if len(classes) == 2 else None)

    def calibrated(self, proba: Any) -> Any:
        """Calibrated probabilities (rows x classes) for raw ``proba``."""
        import numpy as np

        if self.positive is not None:
            p = np.interp(proba[:, 1], self.xs[0], self.ys[0])
            return np.column_stack((1.0 - p, p))
        cols = [np.interp(proba[:, i], self.xs[i], self.ys[i]) for i in range(len(self.classes))]
        out = np.column_stack(cols)
        total = out.sum(axis=1, keepdims=True)
        return np.divide(out, total, out=np.full_like(out, 1.0 / out.shape[1]), where=total > 0)


@dataclass
class CbpeAccumulator:
    """Expected confusion-matrix sums over a window, updated batch by batch. Mergeable."""

    calibration: Calibration
    n: int = 0
    tp: float = 0.0
    fp: float = 0.0
    fn: float = 0.0
    tn: float = 0.0
    correct: float = 0.0
    #: Per score bin: sum of calibrated p (expected positives) and of 1 - p.
    pos_bins: Any = None
    neg_bins: Any = None
    extra: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import numpy as np

        if self.pos_bins is None:
            self.pos_bins = np.zeros(SCORE_BINS)
            self.neg_bins = np.zeros(SCORE_BINS)

    def update(self, proba: Any, predicted: Any) -> None:
        """``proba``: raw probabilities (rows x classes, the calibration's order);
        ``predicted``: the labels the model returned (as text)."""
        import numpy as np

        if not len(proba):
            return
        cal = self.calibration.calibrated(np.asarray(proba, dtype=np.float64))
        predicted = np.asarray([str(v) for v in predicted], dtype=object)
        self.n += len(cal)
        index = {c: i for i, c in enumerate(self.calibration.classes)}
        picked = np.asarray([index.get(p, -1) for p in predicted])
        ok = picked >= 0
        self.correct += float(cal[np.flatnonzero(ok), picked[ok]].sum())
        if self.calibration.positive is not None:
            p = cal[:, 1]
            positive = predicted == self.calibration.positive
            self.tp += float(p[positive].sum())
            self.fp += float((1.0 - p[positive]).sum())
            self.fn += float(p[~positive].sum())
            self.tn += float((1.0 - p[~positive]).sum())
            raw = np.clip(np.asarray(proba, dtype=np.float64)[:, 1], 0.0, 1.0)
            bins = np.minimum((raw * SCORE_BINS).astype(np.int64), SCORE_BINS - 1)
            self.pos_bins += np.bincount(bins, weights=p, minlength=SCORE_BINS)
            self.neg_bins += np.bincount(bins, weights=1.0 - p, minlength=SCORE_BINS)

    def merge(self, other: CbpeAccumulator) -> CbpeAccumulator:
        self.n += other.n
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        self.correct += other.correct
        self.pos_bins += other.pos_bins
        self.neg_bins += other.neg_bins
        return self

    def metrics(self) -> dict[str, float | None]:
        """Estimated accuracy (and, for binary, precision, recall, F1, ROC AUC)."""
        import numpy as np

        if not self.n:
            return {}
        out: dict[str, float | None] = {"accuracy": self.correct / self.n}
        if self.calibration.positive is None:
            return out
        tp, fp, fn = self.tp, self.fp, self.fn
        precision = tp / (tp + fp) if tp + fp > 0 else None
        recall = tp / (tp + fn) if tp + fn > 0 else None
        out["precision"] = precision
        out["recall"] = recall
        out["f1"] = (
            2 * precision * recall / (precision + recall)
            if precision is not None and recall is not None and precision + recall > 0
            else None
        )
        pos, neg = self.pos_bins[::-1], self.neg_bins[::-1]  # high scores first
        if pos.sum() > 0 and neg.sum() > 0:
            tpr = np.concatenate(([0.0], np.cumsum(pos) / pos.sum()))
            fpr = np.concatenate(([0.0], np.cumsum(neg) / neg.sum()))
            out["roc_auc"] = float(np.trapezoid(tpr, fpr))
        else:
            out["roc_auc"] = None
        return {k: (None if v is not None and not math.isfinite(v) else v) for k, v in out.items()}
