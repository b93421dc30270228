"""What no single column shows: multivariate drift and per-row anomalies.

Both work on the same numeric encoding of a row (:class:`Encoder`): numeric columns
standardised with the reference's mean and standard deviation, categories replaced by
their frequency in the reference (an unseen category by 0), missing values by the
reference's mean (0 after standardisation).

- **Multivariate drift** (:class:`PcaDrift`), as NannyML does it: a PCA fitted on the
  reference keeps the components that explain :data:`PCA_VARIANCE` of its variance; a
  row's reconstruction error is the distance between the row and its projection back.
  When the correlations between columns change, rows leave the reference's principal
  subspace and the mean error rises, even when every column's own distribution stays the
  same. The band a window's mean error may fall in comes from the reference itself: the
  mean error of reference rows, plus or minus three standard errors for a window of that
  size, widened by :data:`PCA_TOLERANCE` of the mean for what a finite reference cannot
  pin down.
- **Anomalies** (:class:`AnomalyScorer`): the Mahalanobis distance of a row from the
  reference's centre under its (shrunk) covariance, per dimension; a row is anomalous
  above the reference's own :data:`ANOMALY_QUANTILE` quantile of that score, or when a
  categorical column holds a category the reference never saw.

Everything fitted is a handful of numbers and small matrices, stored as JSON in the
model's reference: no pickle, no model object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Share of the reference's variance the kept principal components explain.
PCA_VARIANCE = 0.65
#: The multivariate band is widened by this share of the reference's mean error.
PCA_TOLERANCE = 0.03
#: Rows of the reference used to fit (a seeded sample above this).
FIT_ROWS = 100_000
#: A row is anomalous above this quantile of the reference's scores.
ANOMALY_QUANTILE = 0.999
#: Covariance shrinkage toward its diagonal, for a stable inverse.
SHRINKAGE = 0.05


@dataclass
class Encoder:
    """Rows -> standardised numeric vectors, with what the reference says of each column."""

    numeric: list[str]
    means: list[float]
    stds: list[float]
    categorical: list[str]
    #: Per categorical column, category -> reference frequency.
    frequencies: list[dict[str, float]]

    @property
    def columns(self) -> list[str]:
        return self.numeric + self.categorical

    @property
    def width(self) -> int:
        return len(self.numeric) + len(self.categorical)

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": self.numeric,
            "means": self.means,
            "stds": self.stds,
            "categorical": self.categorical,
            "frequencies": self.frequencies,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Encoder:
        return cls(
            list(d["numeric"]),
            [float(x) for x in d["means"]],
            [float(x) for x in d["stds"]],
            list(d["categorical"]),
            [{str(k): float(v) for k, v in f.items()} for f in d["frequencies"]],
        )

    @classmethod
    def fit(cls, columns: dict[str, Any], numeric: list[str], categorical: list[str]) -> Encoder:
        """From the reference's columns (Arrow arrays or numpy)."""
        import numpy as np

        from loopline.monitor.sketches import category_counts, numeric_values

        means, stds = [], []
        for name in numeric:
            arr, _, _ = numeric_values(columns[name])
            mean = float(arr.mean()) if arr.size else 0.0
            std = float(arr.std()) if arr.size > 1 else 0.0
            means.append(mean)
            stds.append(std if std > 0 and np.isfinite(std) else 1.0)
        freqs = []
        for name in categorical:
            counts, _, n = category_counts(columns[name])
            freqs.append({k: c / n for k, c in counts.items()} if n else {})
        return cls(list(numeric), means, stds, list(categorical), freqs)

    def encode(self, columns: dict[str, Any]) -> tuple[Any, Any]:
        """(matrix rows x width, per-row "has an unseen category") for a batch."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        n = None
        parts = []
        for name, mean, std in zip(self.numeric, self.means, self.stds, strict=True):
            col = columns.get(name)
            if col is None:
                raise KeyError(name)
            arr = _float_array(col)
            n = arr.size
            z = (arr - mean) / std
            z[~np.isfinite(z)] = 0.0
            parts.append(z)
        unseen = None
        for name, freq in zip(self.categorical, self.frequencies, strict=True):
            col = columns.get(name)
            if col is None:
                raise KeyError(name)
            if not isinstance(col, pa.Array | pa.ChunkedArray):
                col = pa.array(col)
            text = col.cast(pa.string()) if not pa.types.is_string(col.type) else col
            keys = list(freq)
            index = pc.index_in(text, value_set=pa.array(keys, pa.string()))
            idx = index.to_numpy(zero_copy_only=False)
            idx = np.where(np.isnan(idx.astype(np.float64)), -1, idx).astype(np.int64)
            table = np.asarray([freq[k] for k in keys] + [0.0], dtype=np.float64)
            parts.append(table[idx])
            n = idx.size
            valid = ~np.asarray(pc.is_null(text).to_numpy(zero_copy_only=False), dtype=bool)
            new = (idx < 0) & valid
            unseen = new if unseen is None else (unseen | new)
        if not parts:
            return np.zeros((0, 0)), np.zeros(0, dtype=bool)
        matrix = np.column_stack(parts)
        if unseen is None:
            unseen = np.zeros(n or 0, dtype=bool)
        return matrix, unseen


def _float_array(col: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if isinstance(col, pa.Array):
        if pa.types.is_boolean(col.type):
            col = col.cast(pa.int8())
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.asarray(col, dtype=np.float64)


def sample_rows(n: int, limit: int = FIT_ROWS, seed: int = 0) -> Any:
    """Sorted row positions of a seeded sample of at most ``limit`` of ``n`` rows."""
    import numpy as np

    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


@dataclass
class PcaDrift:
    """PCA reconstruction error: fitted on the reference, applied to windows."""

    encoder: Encoder
    center: list[float]
    components: list[list[float]]
    #: Mean and standard deviation of the reference's per-row reconstruction error.
    mean_error: float
    std_error: float
    explained: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder.to_dict(),
            "center": self.center,
            "components": self.components,
            "mean_error": self.mean_error,
            "std_error": self.std_error,
            "explained": self.explained,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PcaDrift:
        return cls(
            Encoder.from_dict(d["encoder"]),
            [float(x) for x in d["center"]],
            [[float(x) for x in row] for row in d["components"]],
            float(d["mean_error"]),
            float(d["std_error"]),
            float(d["explained"]),
        )

    @classmethod
    def fit(cls, encoder: Encoder, columns: dict[str, Any]) -> PcaDrift | None:
        """None when there are fewer than two columns (nothing to correlate)."""
        import numpy as np

        if encoder.width < 2:
            return None
        x, _ = encoder.encode(columns)
        if x.shape[0] < 10:
            return None
        center = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - center, full_matrices=False)
        variance = s**2
        share = np.cumsum(variance) / max(variance.sum(), 1e-300)
        keep = int(np.searchsorted(share, PCA_VARIANCE) + 1)
        keep = min(max(keep, 1), x.shape[1] - 1)
        model = cls(encoder, center.tolist(), vt[:keep].tolist(), 0.0, 0.0, float(share[keep - 1]))
        errors = model.errors(x)
        model.mean_error = float(errors.mean())
        model.std_error = float(errors.std())
        return model

    def errors(self, x: Any) -> Any:
        """Per-row reconstruction error of an encoded matrix."""
        import numpy as np

        v = np.asarray(self.components, dtype=np.float64)
        centered = x - np.asarray(self.center)
        projected = centered @ v.T @ v
        return np.sqrt(np.sum((centered - projected) ** 2, axis=1))

    def band(self, n: int) -> tuple[float, float]:
        """The range a window of ``n`` rows' mean error stays in without drift."""
        half = 3.0 * self.std_error / math.sqrt(max(n, 1)) + PCA_TOLERANCE * self.mean_error
        return self.mean_error - half, self.mean_error + half


@dataclass
class AnomalyScorer:
    """Per-row outlier score: Mahalanobis distance per dimension from the reference."""

    encoder: Encoder
    center: list[float]
    precision: list[list[float]]
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder.to_dict(),
            "center": self.center,
            "precision": self.precision,
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnomalyScorer:
        return cls(
            Encoder.from_dict(d["encoder"]),
            [float(x) for x in d["center"]],
            [[float(x) for x in row] for row in d["precision"]],
            float(d["threshold"]),
        )

    @classmethod
    def fit(cls, encoder: Encoder, columns: dict[str, Any]) -> AnomalyScorer | None:
        import numpy as np

        if encoder.width < 1:
            return None
        x, _ = encoder.encode(columns)
        if x.shape[0] < 10:
            return None
        center = x.mean(axis=0)
        cov = np.atleast_2d(np.cov(x - center, rowvar=False))
        diag = np.diag(np.diag(cov))
        shrunk = (1 - SHRINKAGE) * cov + SHRINKAGE * diag
        shrunk += np.eye(shrunk.shape[0]) * 1e-9 * max(float(np.trace(shrunk)), 1.0)
        precision = np.linalg.pinv(shrunk)
        scorer = cls(encoder, center.tolist(), precision.tolist(), 0.0)
        scores = scorer.scores(x)
        scorer.threshold = float(np.quantile(scores, ANOMALY_QUANTILE))
        return scorer

    def scores(self, x: Any) -> Any:
        import numpy as np

        d = x - np.asarray(self.center)
        p = np.asarray(self.precision)
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, p, d), 0.0) / max(x.shape[1], 1))
