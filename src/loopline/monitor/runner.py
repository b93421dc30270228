"""``monitor run``: one pass over a window of the prediction log, every statistic, stored.

For each (model version, role) the window holds, the run compares the logged inputs and
outputs with that version's reference (:mod:`loopline.monitor.reference`), streaming the
log in record batches (:mod:`loopline.monitor.windows`): feature drift per column and the
share of drifted features, data quality, multivariate drift, input anomalies with the
most anomalous request ids, prediction drift, realized performance from the feedback
labels known so far, performance estimated without labels, and service health. The
results are rows of ``ll_monitor_series`` (one per version, role, window, metric and
feature) and one ``ll_monitor_runs`` row; running a window again replaces its series rows,
so labels that arrived since update its performance without duplicating anything.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline.monitor.drift import FeatureDrift, distribution, drift_share, feature_drift
from loopline.monitor.estimate import CbpeAccumulator
from loopline.monitor.predictions import INPUT_PREFIX, OUTPUT_PREFIX, PROBA_PREFIX
from loopline.monitor.reference import ModelReference, model_reference
from loopline.monitor.settings import MonitorSettings, monitor_config
from loopline.monitor.sketches import NumericReference, NumericSketch
from loopline.monitor.windows import LogScan, Window

if TYPE_CHECKING:
    from collections.abc import Callable

    from loopline.execute import Executor
    from loopline.registry import Registry
    from loopline.store.stores import Stores

#: Request ids of the most anomalous rows kept per window.
TOP_ANOMALIES = 10
#: Latency histogram: log-spaced bins from 0.01 ms to 100 s.
_LATENCY_BINS = 400
_LATENCY_LO, _LATENCY_HI = -2.0, 5.0


@dataclass
class SeriesPoint:
    """One row of the time series."""

    version: int
    role: str
    metric: str
    feature: str
    value: float | None
    threshold: float | None
    status: str
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "role": self.role,
            "metric": self.metric,
            "feature": self.feature,
            "value": self.value,
            "threshold": self.threshold,
            "status": self.status,
            "rows": self.rows,
        }


@dataclass
class GroupResult:
    """What one model version (in one role) did in the window."""

    version: int
    role: str
    rows: int
    requests: int
    baseline: str
    drift: list[FeatureDrift]
    drift_share: float | None
    quality: dict[str, dict[str, float | None]]
    missing_columns: list[str]
    multivariate: dict[str, Any] | None
    anomaly: dict[str, Any] | None
    prediction: FeatureDrift | None
    score_drift: FeatureDrift | None
    realized: dict[str, float | None]
    labels: int
    estimated: dict[str, float | None]
    health: dict[str, float | None]
    alerts: list[str] = field(default_factory=list)
    points: list[SeriesPoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Per feature: reference and current shares over display buckets (reports, pages).
    distributions: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: What the version answered: ``positive_rate`` (binary classifiers), ``mean_score``.
    outputs: dict[str, float | None] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if any(a.startswith("drift") for a in self.alerts):
            return "drift"
        if self.alerts:
            return "alert"
        if self.rows == 0 or all(d.status == "insufficient_data" for d in self.drift):
            return "insufficient_data"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "role": self.role,
            "status": self.status,
            "rows": self.rows,
            "requests": self.requests,
            "baseline": self.baseline,
            "drift_share": self.drift_share,
            "features": [d.to_dict() for d in self.drift],
            "quality": self.quality,
            "missing_columns": self.missing_columns,
            "multivariate": self.multivariate,
            "anomaly": self.anomaly,
            "prediction_drift": None if self.prediction is None else self.prediction.to_dict(),
            "score_drift": None if self.score_drift is None else self.score_drift.to_dict(),
            "performance": {"labels": self.labels, **self.realized},
            "estimated": self.estimated,
            "health": self.health,
            "outputs": self.outputs,
            "alerts": self.alerts,
            "notes": self.notes,
            "distributions": self.distributions,
        }


@dataclass
class MonitorReport:
    """A monitoring run: its window, every group's results, and the verdict."""

    run_id: str
    model: str
    target: str
    window: Window
    groups: list[GroupResult]
    files: int
    seconds: float
    stored: bool

    @property
    def rows(self) -> int:
        return sum(g.rows for g in self.groups)

    @property
    def alerts(self) -> list[str]:
        return [f"{g.version}/{g.role}: {a}" for g in self.groups for a in g.alerts]

    @property
    def status(self) -> str:
        statuses = {g.status for g in self.groups}
        for s in ("drift", "alert", "ok"):
            if s in statuses:
                return s
        return "insufficient_data"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.model,
            "target": self.target,
            "window": self.window.to_dict(),
            "status": self.status,
            "rows": self.rows,
            "files": self.files,
            "seconds": round(self.seconds, 3),
            "alerts": self.alerts,
            "groups": [g.to_dict() for g in self.groups],
        }


# -- accumulating one (version, role) ------------------------------------------------------


class _Latency:
    """Request latencies on log-spaced bins: percentiles within about 4%."""

    def __init__(self) -> None:
        import numpy as np

        self.counts = np.zeros(_LATENCY_BINS, dtype=np.int64)

    def update(self, values: Any) -> None:
        import numpy as np

        v = np.asarray(values, dtype=np.float64)
        v = v[np.isfinite(v)]
        if not v.size:
            return
        pos = (np.log10(np.maximum(v, 10**_LATENCY_LO)) - _LATENCY_LO) / (_LATENCY_HI - _LATENCY_LO)
        idx = np.clip((pos * _LATENCY_BINS).astype(np.int64), 0, _LATENCY_BINS - 1)
        self.counts += np.bincount(idx, minlength=_LATENCY_BINS)

    def quantile(self, q: float) -> float | None:
        import numpy as np

        total = int(self.counts.sum())
        if not total:
            return None
        i = int(np.searchsorted(np.cumsum(self.counts), q * total, side="left"))
        mid = _LATENCY_LO + (i + 0.5) / _LATENCY_BINS * (_LATENCY_HI - _LATENCY_LO)
        return float(10**mid)


class _Group:
    def __init__(
        self,
        version: int,
        role: str,
        reference: ModelReference,
        settings: MonitorSettings,
        *,
        prefix: str = INPUT_PREFIX,
    ) -> None:
        #: How input columns are named in the tables given: ``input.x`` in the log,
        #: ``x`` in a plain table (``monitor compare``).
        self.prefix = prefix
        self.version = version
        self.role = role
        self.reference = reference
        self.settings = settings
        self.options: dict[str, Any] = {}
        self.sketches: dict[str, Any] = {}
        for name, ref in reference.features.items():
            opts = settings.column_options(name, isinstance(ref, NumericReference))
            if opts is None:
                continue
            self.options[name] = opts
            self.sketches[name] = ref.new_sketch()
        self.seen_columns: set[str] = set()
        self.rows = 0
        self.requests = 0
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.pca_sum = 0.0
        self.pca_n = 0
        self.anomalous = 0
        self.scored = 0
        self.top: list[tuple[float, str, int]] = []
        prediction = reference.prediction
        self.labels_sketch = (
            prediction.labels.new_sketch() if prediction and prediction.labels else None
        )
        self.scores_sketch = (
            prediction.scores.new_sketch() if prediction and prediction.scores else None
        )
        self.cbpe = (
            CbpeAccumulator(prediction.calibration)
            if prediction is not None and prediction.calibration is not None
            else None
        )
        self.latency = _Latency()
        #: What the version answered: predicted-positive rows (binary classifiers) and the
        #: sum of its scores, for comparing a canary's answers with the primary's.
        self.positive = 0
        self.answered = 0
        self.score_sum = 0.0
        self.score_n = 0
        self.truth: list[Any] = []
        self.predicted: list[Any] = []
        self.proba: list[Any] = []

    def merge(self, other: _Group) -> _Group:
        """This group plus ``other`` (the same version and role, over later rows of the
        window), in place: every statistic is a sum, a bound or a sketch that merges."""
        for name, sketch in other.sketches.items():
            self.sketches[name].merge(sketch)
        self.seen_columns |= other.seen_columns
        self.rows += other.rows
        self.requests += other.requests
        for attr, pick in (("first_ts", min), ("last_ts", max)):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            setattr(
                self,
                attr,
                theirs if mine is None else mine if theirs is None else pick(mine, theirs),
            )
        self.pca_sum += other.pca_sum
        self.pca_n += other.pca_n
        self.anomalous += other.anomalous
        self.scored += other.scored
        self.top = heapq.nlargest(TOP_ANOMALIES, [*self.top, *other.top])
        heapq.heapify(self.top)
        if self.labels_sketch is not None and other.labels_sketch is not None:
            self.labels_sketch.merge(other.labels_sketch)
        if self.scores_sketch is not None and other.scores_sketch is not None:
            self.scores_sketch.merge(other.scores_sketch)
        if self.cbpe is not None and other.cbpe is not None:
            self.cbpe.merge(other.cbpe)
        self.latency.counts += other.latency.counts
        self.positive += other.positive
        self.answered += other.answered
        self.score_sum += other.score_sum
        self.score_n += other.score_n
        self.truth.extend(other.truth)
        self.predicted.extend(other.predicted)
        self.proba.extend(other.proba)
        return self

    # -- per batch ------------------------------------------------------------------------

    def update(self, table: Any, labels: Any | None, pool: ThreadPoolExecutor | None) -> None:
        import numpy as np
        import pyarrow.compute as pc

        n = table.num_rows
        if not n:
            return
        self.rows += n
        names = set(table.column_names)
        present = [f for f in self.sketches if self.prefix + f in names]
        self.seen_columns.update(present)

        def one(feature: str) -> None:
            column = table.column(self.prefix + feature)
            # a table column may be chunked: sketches take chunked arrays
            self.sketches[feature].update(column)

        if pool is not None and len(present) > 1:
            list(pool.map(one, present))
        else:
            for f in present:
                one(f)
        lo = hi = None
        if "ts" in names:
            lo, hi = pc.min_max(table.column("ts")).values()
        if lo is not None and hi is not None and lo.is_valid:
            lo_s, hi_s = lo.value / 1e6, hi.value / 1e6
            self.first_ts = lo_s if self.first_ts is None else min(self.first_ts, lo_s)
            self.last_ts = hi_s if self.last_ts is None else max(self.last_ts, hi_s)
        if "row" in names:
            first = pc.equal(table.column("row"), 0)
            self.requests += int(pc.sum(first).as_py() or 0)
            if "latency_ms" in names:
                self.latency.update(
                    np.asarray(pc.filter(table.column("latency_ms"), first).to_numpy())
                )
        self._encoded(table, names)
        self._outputs(table, names)
        if labels is not None and "request_id" in names and "row" in names:
            self._join_labels(table, labels)

    def _columns(self, table: Any, names: set[str], wanted: list[str]) -> dict[str, Any] | None:
        if not all(self.prefix + c in names for c in wanted):
            return None
        return {c: table.column(self.prefix + c) for c in wanted}

    def _encoded(self, table: Any, names: set[str]) -> None:
        import numpy as np

        ref = self.reference
        model = ref.anomaly or ref.multivariate
        if model is None:
            return
        columns = self._columns(table, names, model.encoder.columns)
        if columns is None:
            return
        x, unseen = model.encoder.encode(columns)
        if ref.multivariate is not None and self.settings.multivariate:
            errors = ref.multivariate.errors(x)
            self.pca_sum += float(errors.sum())
            self.pca_n += int(errors.size)
        if ref.anomaly is not None:
            scores = ref.anomaly.scores(x)
            flagged = (scores > ref.anomaly.threshold) | unseen
            self.anomalous += int(flagged.sum())
            self.scored += int(scores.size)
            if flagged.any():
                idx = np.flatnonzero(flagged)
                ranked = np.where(unseen[idx], np.inf, scores[idx])
                best = idx[np.argsort(-ranked)[:TOP_ANOMALIES]]
                ids = (
                    table.column("request_id").take(best).to_pylist()
                    if "request_id" in names
                    else []
                )
                rows = table.column("row").take(best).to_pylist() if "row" in names else []
                for i, pos in enumerate(best.tolist()):
                    score = float(np.inf if unseen[pos] else scores[pos])
                    entry = (score, str(ids[i]) if ids else "", int(rows[i]) if rows else 0)
                    if len(self.top) < TOP_ANOMALIES:
                        heapq.heappush(self.top, entry)
                    elif entry > self.top[0]:
                        heapq.heapreplace(self.top, entry)

    def _proba_matrix(self, table: Any, names: set[str]) -> Any | None:
        import numpy as np

        prediction = self.reference.prediction
        if prediction is None or prediction.classes is None:
            return None
        cols = [PROBA_PREFIX + c for c in prediction.classes]
        if not all(c in names for c in cols):
            return None
        return np.column_stack(
            [
                np.asarray(table.column(c).to_numpy(zero_copy_only=False), dtype=np.float64)
                for c in cols
            ]
        )

    def _outputs(self, table: Any, names: set[str]) -> None:
        import numpy as np

        prediction = self.reference.prediction
        key = OUTPUT_PREFIX + "prediction"
        if prediction is None or key not in names:
            return
        if prediction.task == "classification":
            labels = table.column(key)
            if self.labels_sketch is not None:
                self.labels_sketch.update(labels)
            classes = prediction.classes or []
            if len(classes) == 2:
                import pyarrow.compute as pc

                text = pc.cast(labels, "string") if labels.type != "string" else labels
                self.positive += int(pc.sum(pc.equal(text, str(classes[1]))).as_py() or 0)
                self.answered += len(labels) - labels.null_count
            proba = self._proba_matrix(table, names)
            if proba is not None:
                score = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
                finite = score[np.isfinite(score)]
                self.score_sum += float(finite.sum())
                self.score_n += int(finite.size)
                if self.scores_sketch is not None:
                    self.scores_sketch.update(score)
                if self.cbpe is not None:
                    text = [str(v) for v in labels.to_pylist()]
                    self.cbpe.update(proba, np.asarray(text, dtype=object))
        else:
            values = np.asarray(table.column(key).to_numpy(zero_copy_only=False), dtype=np.float64)
            finite = values[np.isfinite(values)]
            self.score_sum += float(finite.sum())
            self.score_n += int(finite.size)
            if self.scores_sketch is not None:
                self.scores_sketch.update(table.column(key))

    def _join_labels(self, table: Any, labels: Any) -> None:
        import numpy as np

        prediction = self.reference.prediction
        key = OUTPUT_PREFIX + "prediction"
        if prediction is None or key not in table.column_names:
            return
        wanted = ["request_id", "row", key]
        if prediction.classes is not None:
            wanted += [
                PROBA_PREFIX + c
                for c in prediction.classes
                if PROBA_PREFIX + c in table.column_names
            ]
        joined = table.select(wanted).join(labels, keys=["request_id", "row"], join_type="inner")
        if not joined.num_rows:
            return
        self.truth.extend(joined.column("label").to_pylist())
        self.predicted.extend(
            str(v) if prediction.classes is not None else v for v in joined.column(key).to_pylist()
        )
        if prediction.classes is not None and len(wanted) > 3:
            cols = [PROBA_PREFIX + c for c in prediction.classes]
            if all(c in joined.column_names for c in cols):
                self.proba.append(
                    np.column_stack(
                        [
                            np.asarray(
                                joined.column(c).to_numpy(zero_copy_only=False), dtype=np.float64
                            )
                            for c in cols
                        ]
                    )
                )

    # -- the verdict ----------------------------------------------------------------------

    def result(self, rejected_requests: int) -> GroupResult:
        s = self.settings
        ref = self.reference
        drifts: list[FeatureDrift] = []
        quality: dict[str, dict[str, float | None]] = {}
        missing = [f for f in self.sketches if f not in self.seen_columns]
        distributions: dict[str, dict[str, Any]] = {}
        for name, sketch in self.sketches.items():
            reference = ref.features[name]
            d = feature_drift(name, reference, sketch, self.options[name])
            distributions[name] = distribution(reference, sketch)
            if name in missing:
                d.status = "insufficient_data"
            drifts.append(d)
            quality[name] = _quality(reference, sketch)
        share = drift_share(drifts, ref.importances)
        alerts: list[str] = []
        notes: list[str] = []
        drifted = [d.feature for d in drifts if d.drifted]
        if drifted and not math.isnan(share) and share >= s.drift_share:
            alerts.append(
                f"drift: {len(drifted)} of {len(drifts)} features drifted "
                f"(share {share:.2f} >= {s.drift_share:g}): {', '.join(drifted[:8])}"
            )
        elif drifted:
            alerts.append(f"drift in {', '.join(drifted[:8])}")
        for metric, limit in (
            ("null_share_increase", s.null_share),
            ("out_of_range_share", s.out_of_range_share),
            ("unseen_share", s.unseen_share),
        ):
            bad = [
                f
                for f, q in quality.items()
                if q.get(metric) is not None and q[metric] > limit  # type: ignore[operator]
            ]
            if bad:
                alerts.append(f"quality: {metric} above {limit:g} in {', '.join(bad[:8])}")
        if missing and self.rows:
            alerts.append(f"quality: columns missing from the log: {', '.join(missing)}")
        total_requests = self.requests + rejected_requests
        rejected_share = rejected_requests / total_requests if total_requests else None
        if rejected_share is not None and rejected_share > s.rejected_share:
            alerts.append(f"quality: {rejected_share:.1%} of requests were rejected")

        multivariate = None
        if ref.multivariate is not None and self.pca_n:
            error = self.pca_sum / self.pca_n
            low, high = ref.multivariate.band(self.pca_n)
            multi_drift = self.pca_n >= s.min_rows and not low <= error <= high
            multivariate = {
                "reconstruction_error": error,
                "low": low,
                "high": high,
                "reference_error": ref.multivariate.mean_error,
                "drifted": multi_drift,
                "components": len(ref.multivariate.components),
            }
            if multi_drift:
                alerts.append(
                    f"drift: multivariate reconstruction error {error:.4f} outside "
                    f"[{low:.4f}, {high:.4f}]"
                )
        anomaly = None
        if ref.anomaly is not None and self.scored:
            a_share = self.anomalous / self.scored
            anomaly = {
                "share": a_share,
                "threshold": s.anomaly_share,
                "rows": self.anomalous,
                "top": [
                    {"request_id": rid, "row": row, "score": None if math.isinf(sc) else sc}
                    for sc, rid, row in sorted(self.top, reverse=True)
                ],
            }
            if a_share > s.anomaly_share and self.scored >= s.min_rows:
                alerts.append(f"anomalies: {a_share:.1%} of rows above the reference's 99.9%")

        pred_drift = score_drift = None
        prediction = ref.prediction
        if prediction is not None:
            if self.labels_sketch is not None and prediction.labels is not None:
                pred_drift = feature_drift(
                    "prediction", prediction.labels, self.labels_sketch, s.options()
                )
            if self.scores_sketch is not None and prediction.scores is not None:
                score_drift = feature_drift(
                    "score", prediction.scores, self.scores_sketch, s.options()
                )
            checks: list[tuple[FeatureDrift | None, str]] = [
                (pred_drift, "predicted classes"),
                (score_drift, "scores"),
            ]
            for checked, what in checks:
                if checked is not None and checked.drifted:
                    alerts.append(f"drift: prediction drift in the {what}")

        realized: dict[str, float | None] = {}
        labels = len(self.truth)
        if labels and prediction is not None:
            if labels >= s.min_labels:
                import numpy as np

                from loopline.monitor.performance import realized_metrics

                proba = (
                    np.concatenate(self.proba)
                    if self.proba and sum(len(p) for p in self.proba) == labels
                    else None
                )
                try:
                    realized = realized_metrics(
                        prediction.task, self.truth, self.predicted, proba, prediction.classes
                    )
                except Exception as exc:  # labels that do not fit the task: said, not raised
                    notes.append(f"realized performance not computed: {exc}")
            else:
                notes.append(f"{labels} labels: fewer than min_labels={s.min_labels}")
        estimated = self.cbpe.metrics() if self.cbpe is not None else {}
        seconds = (
            (self.last_ts - self.first_ts)
            if self.first_ts is not None and self.last_ts is not None
            else 0.0
        )
        health = {
            "requests": float(self.requests),
            "rows": float(self.rows),
            "request_rate": self.requests / seconds if seconds > 0 else None,
            "row_rate": self.rows / seconds if seconds > 0 else None,
            "latency_p50_ms": self.latency.quantile(0.5),
            "latency_p95_ms": self.latency.quantile(0.95),
            "latency_p99_ms": self.latency.quantile(0.99),
            "rejected_requests": float(rejected_requests),
            "error_share": rejected_share,
        }
        outputs = {
            "positive_rate": self.positive / self.answered if self.answered else None,
            "mean_score": self.score_sum / self.score_n if self.score_n else None,
        }
        result = GroupResult(
            version=self.version,
            role=self.role,
            rows=self.rows,
            requests=self.requests,
            baseline=ref.baseline if ref.baseline != "training" else f"training data {ref.dataset}",
            drift=drifts,
            drift_share=None if math.isnan(share) else share,
            quality=quality,
            missing_columns=missing if self.rows else [],
            multivariate=multivariate,
            anomaly=anomaly,
            prediction=pred_drift,
            score_drift=score_drift,
            realized=realized,
            labels=labels,
            estimated=estimated,
            health=health,
            alerts=alerts,
            notes=notes,
            outputs=outputs,
        )
        result.points = _points(result, s)
        result.distributions = distributions
        return result


def _is_string(array: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(array.type) or pa.types.is_large_string(array.type))


def _quality(reference: Any, sketch: Any) -> dict[str, float | None]:
    rows = sketch.rows
    if not rows:
        return {"null_share": None, "null_share_increase": None}
    null_share = sketch.nulls / rows
    ref_rows = reference.n + reference.nulls + (getattr(reference, "infinite", 0) or 0)
    ref_null = reference.nulls / ref_rows if ref_rows else 0.0
    out: dict[str, float | None] = {
        "null_share": null_share,
        "null_share_increase": max(null_share - ref_null, 0.0),
    }
    if isinstance(sketch, NumericSketch):
        out["out_of_range_share"] = sketch.out_of_range / sketch.n if sketch.n else None
        out["nonfinite_share"] = sketch.infinite / rows
    else:
        unseen = sketch.unseen()
        out["unseen_share"] = (sum(unseen.values()) / sketch.n) if sketch.n else None
        out["unseen_categories"] = float(len(unseen))
    return out


def _points(g: GroupResult, s: MonitorSettings) -> list[SeriesPoint]:
    pts: list[SeriesPoint] = []

    def add(
        metric: str,
        value: float | None,
        feature: str = "",
        threshold: float | None = None,
        status: str = "ok",
        rows: int | None = None,
    ) -> None:
        v = (
            None
            if value is None or (isinstance(value, float) and not math.isfinite(value))
            else float(value)
        )
        pts.append(
            SeriesPoint(
                g.version,
                g.role,
                metric,
                feature,
                v,
                threshold,
                status,
                g.rows if rows is None else rows,
            )
        )

    for d in g.drift:
        add("feature_drift.score", d.statistic, d.feature, d.threshold, d.status, d.n_current)
        for stat in (
            "wasserstein_normed",
            "ks",
            "ks_p_value",
            "psi",
            "jensenshannon",
            "chi2",
            "chi2_p_value",
        ):
            if stat in d.stats:
                add(
                    f"feature_drift.{stat}",
                    d.stats[stat],
                    d.feature,
                    rows=d.n_current,
                    status="insufficient_data" if d.status == "insufficient_data" else "ok",
                )
    for feature, q in g.quality.items():
        for metric in ("null_share", "out_of_range_share", "unseen_share", "nonfinite_share"):
            if metric in q:
                limit = {
                    "null_share": s.null_share,
                    "out_of_range_share": s.out_of_range_share,
                    "unseen_share": s.unseen_share,
                }.get(metric)
                value = q[metric]
                check = q.get("null_share_increase") if metric == "null_share" else value
                status = (
                    "alert" if limit is not None and check is not None and check > limit else "ok"
                )
                add(f"quality.{metric}", value, feature, limit, status)
    judged = [d for d in g.drift if d.status in ("ok", "drift")]
    share_status = (
        "insufficient_data"
        if g.drift_share is None
        else (
            "drift" if g.drift_share >= s.drift_share and any(d.drifted for d in judged) else "ok"
        )
    )
    add("drift.share", g.drift_share, threshold=s.drift_share, status=share_status)
    add("drift.features", float(sum(d.drifted for d in g.drift)))
    psis = [d.stats.get("psi") for d in g.drift if d.stats.get("psi") is not None]
    add("feature_drift.max_psi", max(psis) if psis else None, threshold=s.psi_threshold)  # type: ignore[type-var]
    for metric in ("null_share", "out_of_range_share", "unseen_share"):
        values = [q[metric] for q in g.quality.values() if q.get(metric) is not None]
        add(f"quality.{metric}", max(values) if values else None)  # type: ignore[type-var]
    add(
        "quality.missing_columns",
        float(len(g.missing_columns)),
        status="alert" if g.missing_columns else "ok",
    )
    add("quality.rejected_share", g.health.get("error_share"), threshold=s.rejected_share)
    if g.multivariate is not None:
        m = g.multivariate
        add(
            "multivariate.reconstruction_error",
            m["reconstruction_error"],
            threshold=m["high"],
            status="drift" if m["drifted"] else "ok",
        )
    if g.anomaly is not None:
        a = g.anomaly
        add(
            "anomaly.share",
            a["share"],
            threshold=s.anomaly_share,
            status="alert" if a["share"] > s.anomaly_share else "ok",
        )
    outputs: list[tuple[FeatureDrift | None, str]] = [
        (g.prediction, "prediction_drift.score"),
        (g.score_drift, "prediction_drift.scores"),
    ]
    for out, metric in outputs:
        if out is not None:
            add(
                metric,
                out.statistic,
                threshold=out.threshold,
                status=out.status,
                rows=out.n_current,
            )
    status = "ok" if g.labels >= s.min_labels else "insufficient_data"
    add("performance.labels", float(g.labels), status=status, rows=g.labels)
    for name, value in g.realized.items():
        add(f"performance.{name}", value, status=status, rows=g.labels)
    for name, value in g.estimated.items():
        add(f"estimated.{name}", value)
    for name, value in g.health.items():
        add(f"health.{name}", value)
    for name, value in g.outputs.items():
        add(f"prediction.{name}", value)
    return pts


# -- the run ----------------------------------------------------------------------------------


def run_monitor(
    stores: Stores,
    target: str,
    window: Window,
    *,
    settings: MonitorSettings | None = None,
    baseline: str | None = None,
    registry: Registry | None = None,
    store: bool = True,
    rebuild_reference: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    executor: Executor | None = None,
) -> MonitorReport:
    """Monitor the model ``target`` names (``MODEL@ALIAS``, ``MODEL/VERSION``, ``MODEL``)
    over ``window``; store the series unless ``store=False``.

    ``executor``: on one running units elsewhere (Ray), the window's log files are split
    into contiguous shards, each read and summarised by a unit (which opens the stores
    itself), and the shards' summaries merged in order: the same series as one process
    reading the whole window (sums to the last bits of floating point)."""
    from loopline.registry import Registry
    from loopline.registry.refs import parse_ref

    reg = registry or Registry(stores)
    ref = parse_ref(target)
    mv = reg.resolve(target)  # the target must resolve (a clear error otherwise)
    name = mv.name
    config = settings or monitor_config(stores.settings, name)
    base = baseline or config.reference
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    run_id = uuid.uuid4().hex
    scan = LogScan(stores.objects, name, window)
    fan_out = (
        executor is not None
        and not executor.shares_memory
        and window.rows is None  # the newest N rows are found file by file, newest first
        and scan.files > 1
    )
    references: dict[int, ModelReference] = {}
    if fan_out:
        assert executor is not None
        # Built (or rebuilt) once here, not by every shard at once.
        references[mv.version] = model_reference(
            stores, mv, registry=reg, baseline=base, target=config.target, rebuild=rebuild_reference
        )
        groups = _scan_sharded(
            executor, stores, reg, name, scan, config, base, references, on_progress
        )
    else:
        pool = ThreadPoolExecutor(
            max(1, workers or min(4, os.cpu_count() or 1)), thread_name_prefix="loopline-monitor"
        )
        try:
            groups = _scan(
                stores,
                reg,
                name,
                scan,
                _labels(stores, name, window),
                config,
                base,
                references,
                rebuild=rebuild_reference,
                pool=pool,
                on_progress=on_progress,
            )
        finally:
            pool.shutdown(wait=True)
    if not groups:
        # Nothing logged: the target's version gets an "insufficient data" group.
        reference = model_reference(
            stores, mv, registry=reg, baseline=base, target=config.target, rebuild=rebuild_reference
        )
        groups[(mv.version, "primary")] = _Group(mv.version, "primary", reference, config)
    bounds = _bounds(window, groups)
    failed = _failures(stores, name, bounds)
    for version, role in failed:
        if (version, role) not in groups:
            # Every request to it failed (a canary that cannot answer): a group of its own,
            # so its error share is in the series.
            try:
                served = reg.get(name, version)
            except Exception:
                continue
            reference = references.get(version) or model_reference(
                stores, served, registry=reg, baseline=base, target=config.target
            )
            groups[(version, role)] = _Group(version, role, reference, config)
    results = [g.result(failed.get((v, r), 0)) for (v, r), g in sorted(groups.items())]
    report = MonitorReport(
        run_id=run_id,
        model=name,
        target=str(ref) if ref.alias or ref.version else target,
        window=bounds,
        groups=results,
        files=scan.files,
        seconds=time.perf_counter() - started,
        stored=store,
    )
    if store:
        from loopline.monitor.series import store_report

        store_report(stores, report, started_at)
    return report


def _scan(
    stores: Stores,
    reg: Registry,
    name: str,
    scan: LogScan,
    labels: Any | None,
    config: MonitorSettings,
    baseline: str | None,
    references: dict[int, ModelReference],
    *,
    rebuild: bool = False,
    pool: ThreadPoolExecutor | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[tuple[int, str], _Group]:
    """Summarise the scan's rows per (version, role)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    groups: dict[tuple[int, str], _Group] = {}
    done_rows = 0
    for batch in scan.batches():
        table = pa.Table.from_batches([batch])
        versions = table.column("version")
        roles = table.column("role")
        pairs = _pairs(versions, roles)
        for version, role in pairs:
            if len(pairs) == 1:
                part = table
            else:
                mask = pc.and_(pc.equal(versions, version), pc.equal(roles, role))
                part = table.filter(mask)
            group = groups.get((version, role))
            if group is None:
                reference = references.get(version)
                if reference is None:
                    reference = model_reference(
                        stores,
                        reg.get(name, version),
                        registry=reg,
                        baseline=baseline,
                        target=config.target,
                        rebuild=rebuild,
                    )
                    references[version] = reference
                group = groups[(version, role)] = _Group(version, role, reference, config)
            group.update(part, labels, pool)
        done_rows += table.num_rows
        if on_progress is not None:
            on_progress(done_rows, 0)
    return groups


@dataclass(frozen=True)
class _Shard:
    """A contiguous run of a window's log files, summarised by one unit."""

    settings: Any
    model: str
    window: Window
    keys: tuple[str, ...]
    config: MonitorSettings
    baseline: str | None


def _scan_shard(shard: _Shard) -> dict[tuple[int, str], _Group]:
    """One shard's groups, without their references (the driver holds those)."""
    from loopline.registry import Registry
    from loopline.store.stores import Stores

    with Stores.open(shard.settings) as stores:
        scan = LogScan(stores.objects, shard.model, shard.window, keys=shard.keys)
        groups = _scan(
            stores,
            Registry(stores),
            shard.model,
            scan,
            _labels(stores, shard.model, shard.window),
            shard.config,
            shard.baseline,
            {},
        )
    for group in groups.values():
        group.reference = None  # type: ignore[assignment]  # re-attached by the driver
    return groups


def _scan_sharded(
    executor: Executor,
    stores: Stores,
    reg: Registry,
    name: str,
    scan: LogScan,
    config: MonitorSettings,
    baseline: str | None,
    references: dict[int, ModelReference],
    on_progress: Callable[[int, int], None] | None,
) -> dict[tuple[int, str], _Group]:
    keys = scan.keys
    n = min(len(keys), max(1, executor.parallelism) * 2)
    bounds = [round(i * len(keys) / n) for i in range(n + 1)]
    shards = [
        _Shard(stores.settings, name, scan.window, tuple(keys[a:b]), config, baseline)
        for a, b in itertools.pairwise(bounds)
        if b > a
    ]
    futures = [executor.submit(_scan_shard, shard) for shard in shards]
    groups: dict[tuple[int, str], _Group] = {}
    done_rows = 0
    for future in futures:  # in file order, so merged lists keep the window's order
        for key, group in future.result().items():
            version = key[0]
            if version not in references:
                references[version] = model_reference(
                    stores,
                    reg.get(name, version),
                    registry=reg,
                    baseline=baseline,
                    target=config.target,
                )
            done_rows += group.rows
            if key not in groups:
                # A fresh accumulator: what came back may be read-only (zero-copy arrays).
                groups[key] = _Group(version, key[1], references[version], config)
            groups[key].merge(group)
        if on_progress is not None:
            on_progress(done_rows, 0)
    return groups


def _pairs(versions: Any, roles: Any) -> list[tuple[int, str]]:
    import pyarrow.compute as pc

    v = pc.unique(versions).to_pylist()
    r = pc.unique(roles).to_pylist()
    if len(v) == 1 and len(r) == 1:
        return [(int(v[0]), str(r[0]))]
    import pyarrow as pa

    table = pa.table({"v": versions, "r": roles}).group_by(["v", "r"]).aggregate([])
    return [
        (int(a), str(b))
        for a, b in zip(table["v"].to_pylist(), table["r"].to_pylist(), strict=True)
    ]


def _bounds(window: Window, groups: dict[tuple[int, str], _Group]) -> Window:
    if window.start is not None and window.end is not None:
        return window
    firsts = [g.first_ts for g in groups.values() if g.first_ts is not None]
    lasts = [g.last_ts for g in groups.values() if g.last_ts is not None]
    start = window.start or (datetime.fromtimestamp(min(firsts), UTC) if firsts else None)
    end = window.end or (
        datetime.fromtimestamp(max(lasts) + 1e-6, UTC) if lasts else datetime.now(UTC)
    )
    return Window(start, end, window.rows)


def _labels(stores: Stores, model: str, window: Window) -> Any | None:
    """The feedback labels of the window's predictions as an Arrow table (request_id,
    row, label as text), or None when there are none."""
    import pyarrow as pa
    import sqlalchemy as sa

    from loopline.monitor.tables import feedback as f

    query = sa.select(f.c.request_id, f.c.row_index, f.c.label).where(f.c.model == model)
    if window.start is not None:
        query = query.where(f.c.predicted_at >= window.start)
    if window.end is not None:
        query = query.where(f.c.predicted_at < window.end)
    with stores.db.read() as conn:
        rows = conn.execute(query).all()
    if not rows:
        return None
    return pa.table(
        {
            "request_id": pa.array([r[0] for r in rows], pa.string()),
            "row": pa.array([int(r[1]) for r in rows], pa.int32()),
            "label": pa.array([_label_text(r[2]) for r in rows], pa.string()),
        }
    )


def _label_text(value: Any) -> str:
    """A label as the text its class has (``str`` of the model's class): ``True``, ``1``,
    ``yes``; a float that is a whole number reads as the integer (``1.0`` -> ``1``)."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _failures(stores: Stores, model: str, window: Window) -> dict[tuple[int, str], int]:
    """Failed requests per (version, role) in the window (``ll_prediction_failures``)."""
    import sqlalchemy as sa

    from loopline.monitor.tables import failures as t

    query = sa.select(t.c.version, t.c.role, sa.func.sum(t.c.requests)).where(t.c.model == model)
    if window.start is not None:
        query = query.where(t.c.at >= window.start.replace(microsecond=0))
    if window.end is not None:
        query = query.where(t.c.at < window.end)
    with stores.db.read() as conn:
        rows = conn.execute(query.group_by(t.c.version, t.c.role)).all()
    return {(int(v), str(r)): int(n or 0) for v, r, n in rows if n}
