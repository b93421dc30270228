"""Drift of one column: the statistics, the test chosen for it, and its verdict.

Every statistic is computed from a reference summary and a current sketch
(:mod:`loopline.monitor.sketches`), never from raw rows:

- numeric: Kolmogorov-Smirnov (statistic and p-value), Wasserstein-1 (and *normed*: divided
  by the reference's standard deviation), PSI on ten equal-frequency buckets of the
  reference;
- categorical: chi² test of homogeneity (statistic and p-value), Jensen-Shannon distance
  (natural log, as scipy's ``jensenshannon``), PSI; categories the reference never saw
  are counted in their own bucket.

Which test decides (``test="auto"``), as the reference tools do: up to ``small_sample``
current values a p-value (KS for numbers, chi² for categories, drift below ``alpha``);
above it a distance with an effect-size threshold (normed Wasserstein > 0.1, Jensen-Shannon
> 0.1), because at a million rows every p-value is tiny and would flag negligible
differences. Any test can be chosen per model or per column, with its threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from loopline.monitor.sketches import (
    OTHER,
    CategoricalReference,
    CategoricalSketch,
    NumericReference,
    NumericSketch,
    Reference,
    Sketch,
)

NumericTest = Literal["auto", "ks", "wasserstein", "psi"]
CategoricalTest = Literal["auto", "chi2", "jensenshannon", "psi"]
#: Probability floor for PSI buckets (and chi² expectations of unseen categories).
EPSILON = 1e-4
PSI_BUCKETS = 10
UNSEEN = "<unseen>"


@dataclass(frozen=True)
class DriftOptions:
    """How drift is decided. Thresholds apply to the statistic of the chosen test."""

    numeric_test: NumericTest = "auto"
    categorical_test: CategoricalTest = "auto"
    #: Up to this many current values, the p-value tests decide (with ``test="auto"``).
    small_sample: int = 1000
    alpha: float = 0.05
    wasserstein_threshold: float = 0.1
    jensenshannon_threshold: float = 0.1
    psi_threshold: float = 0.2
    #: Fewer current values than this: "insufficient_data", no verdict.
    min_rows: int = 30


@dataclass
class FeatureDrift:
    """The drift verdict of one column and every statistic computed for it."""

    feature: str
    kind: str
    test: str
    statistic: float | None
    threshold: float
    drifted: bool
    status: str
    n_reference: int
    n_current: int
    stats: dict[str, float | None] = field(default_factory=dict)
    #: "p_value" tests drift when the statistic is below the threshold; the rest above.
    direction: str = "above"

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "test": self.test,
            "statistic": self.statistic,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "status": self.status,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "stats": dict(self.stats),
        }


# -- numeric ------------------------------------------------------------------------------


def _numeric_cdfs(ref: NumericReference, cur: NumericSketch) -> tuple[Any, Any, Any]:
    """Support points and both CDFs at them (continuous: bin edges; discrete: values)."""
    import numpy as np

    n_ref = max(ref.n, 1)
    n_cur = max(cur.n, 1)
    if ref.discrete:
        values = np.asarray(ref.edges, dtype=np.float64)
        r = np.asarray(ref.counts, dtype=np.float64)
        c = np.asarray(cur.counts, dtype=np.float64)
        extra = {v: n for v, n in cur.unseen.items() if not math.isnan(v)}
        if extra:
            values = np.concatenate((values, np.fromiter(extra, dtype=np.float64)))
            r = np.concatenate((r, np.zeros(len(extra))))
            c = np.concatenate((c, np.fromiter(extra.values(), dtype=np.float64)))
            order = np.argsort(values, kind="stable")
            values, r, c = values[order], r[order], c[order]
        f_ref = np.cumsum(r) / n_ref
        f_cur = (cur.below + np.cumsum(c)) / n_cur
        return values, f_ref, f_cur
    edges = np.asarray(ref.edges, dtype=np.float64)
    r = np.asarray(ref.counts, dtype=np.float64)
    c = np.asarray(cur.counts, dtype=np.float64)
    f_ref = np.concatenate(([0.0], np.cumsum(r))) / n_ref
    f_cur = (cur.below + np.concatenate(([0.0], np.cumsum(c)))) / n_cur
    return edges, f_ref, f_cur


def ks_statistic(ref: NumericReference, cur: NumericSketch) -> float:
    """sup |F_ref - F_cur|: within the mass of one reference bin of the exact value
    (exact for discrete columns)."""
    import numpy as np

    _, f_ref, f_cur = _numeric_cdfs(ref, cur)
    d = float(np.max(np.abs(f_ref - f_cur))) if f_ref.size else 0.0
    if cur.n:
        d = max(d, cur.below / cur.n, cur.above / cur.n)
    return min(d, 1.0)


def ks_p_value(d: float, n_ref: int, n_cur: int) -> float:
    """Two-sample KS p-value for statistic ``d``: the Kolmogorov distribution with
    Stephens' small-sample correction, ``Q((sqrt(en) + 0.12 + 0.11/sqrt(en)) d)`` (within a
    few percent of the exact value from a few dozen rows on; no scipy.stats import, which
    alone costs a second)."""
    if n_ref == 0 or n_cur == 0:
        return 1.0
    root = math.sqrt(n_ref * n_cur / (n_ref + n_cur))
    return kolmogorov_sf((root + 0.12 + 0.11 / root) * d)


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for the Kolmogorov distribution: 2 * sum (-1)^(k-1) exp(-2 k^2 x^2)."""
    if x <= 0:
        return 1.0
    if x < 0.2:
        return 1.0  # the alternating series needs many terms here; the value is 1.0000
    total = 0.0
    for k in range(1, 101):
        term = math.exp(-2.0 * k * k * x * x)
        total += term if k % 2 else -term
        if term < 1e-16:
            break
    return min(max(2.0 * total, 0.0), 1.0)


def wasserstein(ref: NumericReference, cur: NumericSketch) -> float:
    """W1 = integral of |F_ref - F_cur|: linear within the reference's bins (point masses
    for discrete columns), exact beyond the reference's range."""
    import numpy as np

    if not cur.n or not ref.n:
        return math.nan
    x, f_ref, f_cur = _numeric_cdfs(ref, cur)
    width = np.diff(x)
    if ref.discrete:
        # Step functions: the CDFs are constant between support points.
        inner = float(np.sum(np.abs(f_ref[:-1] - f_cur[:-1]) * width))
    else:
        a = f_ref[:-1] - f_cur[:-1]
        b = f_ref[1:] - f_cur[1:]
        same = (a * b) >= 0
        abs_a, abs_b = np.abs(a), np.abs(b)
        total = abs_a + abs_b
        safe = np.where(total > 0, total, 1.0)
        crossing = (a * a + b * b) / (2.0 * safe)
        inner = float(np.sum(width * np.where(same, total / 2.0, crossing)))
    tails = (cur.below_sum + cur.above_sum) / cur.n
    return inner + tails


def normed_wasserstein(ref: NumericReference, cur: NumericSketch) -> float:
    w = wasserstein(ref, cur)
    if math.isnan(w):
        return math.nan
    # The population standard deviation, as Evidently divides by np.std(reference).
    std = ref.std * math.sqrt((ref.n - 1) / ref.n) if ref.n > 1 else 0.0
    if std > 0:
        return w / std
    return 0.0 if w == 0 else math.inf


def _numeric_buckets(ref: NumericReference, cur: NumericSketch) -> tuple[Any, Any]:
    """Reference and current fractions in PSI buckets."""
    import numpy as np

    r = np.asarray(ref.counts, dtype=np.float64)
    c = np.asarray(cur.counts, dtype=np.float64)
    if ref.discrete:
        unseen = float(sum(cur.unseen.values()) + cur.below + cur.above)
        ref_b = np.concatenate((r, [0.0]))
        cur_b = np.concatenate((c, [unseen]))
    else:
        cum = np.cumsum(r) / max(ref.n, 1)
        bucket = np.minimum((cum * PSI_BUCKETS - 1e-9).astype(np.int64), PSI_BUCKETS - 1)
        bucket = np.maximum(bucket, 0)
        ref_b = np.bincount(bucket, weights=r, minlength=PSI_BUCKETS)
        cur_b = np.bincount(bucket, weights=c, minlength=PSI_BUCKETS)
        cur_b[0] += cur.below
        cur_b[-1] += cur.above
    return ref_b / max(ref_b.sum(), 1.0), cur_b / max(cur_b.sum(), 1.0)


def psi(expected: Any, actual: Any) -> float:
    """Population stability index of two distributions over the same buckets."""
    import numpy as np

    e = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_drift(
    name: str, ref: NumericReference, cur: NumericSketch, options: DriftOptions
) -> FeatureDrift:
    n = cur.n
    stats: dict[str, float | None] = {
        "mean": cur.mean if n else None,
        "std": cur.std if n > 1 else None,
        "reference_mean": ref.mean,
        "reference_std": ref.std,
    }
    test = options.numeric_test
    if test == "auto":
        test = "ks" if n <= options.small_sample else "wasserstein"
    if n < options.min_rows or not ref.n:
        return FeatureDrift(
            name,
            "numeric",
            test,
            None,
            _threshold(test, options),
            False,
            "insufficient_data",
            ref.n,
            n,
            stats,
        )
    d = ks_statistic(ref, cur)
    stats["ks"] = d
    stats["ks_p_value"] = ks_p_value(d, ref.n, n)
    stats["wasserstein"] = wasserstein(ref, cur)
    stats["wasserstein_normed"] = normed_wasserstein(ref, cur)
    stats["psi"] = psi(*_numeric_buckets(ref, cur))
    return _verdict(name, "numeric", test, stats, options, ref.n, n)


# -- categorical ----------------------------------------------------------------------------


def _categorical_frequencies(
    ref: CategoricalReference, cur: CategoricalSketch
) -> tuple[list[str], Any, Any]:
    """Buckets (the reference's categories, its pooled rest, the unseen) and both sides'
    counts in them."""
    import numpy as np

    names = sorted(ref.counts)
    index = {k: i for i, k in enumerate(names)}
    r = [float(ref.counts[k]) for k in names]
    c = [0.0] * len(names)
    other = unseen = 0.0
    for k, count in cur.counts.items():
        i = index.get(k)
        if i is not None:
            c[i] += count
        elif ref.other:
            other += count  # may be one of the reference's pooled rare categories
        else:
            unseen += count
    unseen += cur.pooled
    buckets = list(names)
    if ref.other:
        buckets.append(OTHER)
        r.append(float(ref.other))
        c.append(other)
    buckets.append(UNSEEN)
    r.append(0.0)
    c.append(unseen)
    return buckets, np.asarray(r), np.asarray(c)


def chi2_test(ref_counts: Any, cur_counts: Any) -> tuple[float, float]:
    """Pearson's chi² test that both samples come from one distribution over the buckets
    (the 2 x k table of counts, as ``scipy.stats.chi2_contingency`` without continuity
    correction): (statistic, p-value). Both samples' sizes count, so a small reference
    (the validation rows behind prediction drift) does not inflate false alarms; a
    category only one side has is a strong signal, never a division by zero."""
    import numpy as np
    from scipy.special import gammaincc

    r = np.asarray(ref_counts, dtype=np.float64)
    c = np.asarray(cur_counts, dtype=np.float64)
    used = (r + c) > 0
    r, c = r[used], c[used]
    n_r, n_c = float(r.sum()), float(c.sum())
    if n_r <= 0 or n_c <= 0 or r.size < 2:
        return 0.0, 1.0
    total = n_r + n_c
    pooled = (r + c) / total
    e_r, e_c = pooled * n_r, pooled * n_c
    statistic = float(np.sum((r - e_r) ** 2 / e_r) + np.sum((c - e_c) ** 2 / e_c))
    dof = r.size - 1
    return statistic, float(gammaincc(dof / 2.0, statistic / 2.0))


def jensen_shannon(p: Any, q: Any) -> float:
    """Jensen-Shannon distance (natural log): scipy's ``jensenshannon`` of ``p`` and ``q``."""
    import numpy as np

    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum() if p.sum() else p
    q = q / q.sum() if q.sum() else q
    m = (p + q) / 2.0

    def kl(a: Any, b: Any) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / b[mask])))

    divergence = (kl(p, m) + kl(q, m)) / 2.0
    return math.sqrt(max(divergence, 0.0))


def categorical_drift(
    name: str, ref: CategoricalReference, cur: CategoricalSketch, options: DriftOptions
) -> FeatureDrift:
    n = cur.n + cur.pooled
    test = options.categorical_test
    if test == "auto":
        test = "chi2" if n <= options.small_sample else "jensenshannon"
    unseen = cur.unseen()
    stats: dict[str, float | None] = {
        "categories": float(len(cur.counts)),
        "unseen_categories": float(len(unseen)),
        "unseen_share": (sum(unseen.values()) / n) if n else None,
    }
    if n < options.min_rows or not ref.n:
        return FeatureDrift(
            name,
            "categorical",
            test,
            None,
            _threshold(test, options),
            False,
            "insufficient_data",
            ref.n,
            n,
            stats,
        )
    _, r, c = _categorical_frequencies(ref, cur)
    statistic, p_value = chi2_test(r, c)
    stats["chi2"] = statistic
    stats["chi2_p_value"] = p_value
    stats["jensenshannon"] = jensen_shannon(r, c)
    stats["psi"] = psi(r / max(r.sum(), 1.0), c / max(c.sum(), 1.0))
    return _verdict(name, "categorical", test, stats, options, ref.n, n)


# -- shared ---------------------------------------------------------------------------------

#: test -> (the statistic that decides, "below" for p-values / "above" for distances)
_DECIDING = {
    "ks": ("ks_p_value", "below"),
    "chi2": ("chi2_p_value", "below"),
    "wasserstein": ("wasserstein_normed", "above"),
    "jensenshannon": ("jensenshannon", "above"),
    "psi": ("psi", "above"),
}


def _threshold(test: str, options: DriftOptions) -> float:
    if test in ("ks", "chi2"):
        return options.alpha
    if test == "wasserstein":
        return options.wasserstein_threshold
    if test == "jensenshannon":
        return options.jensenshannon_threshold
    return options.psi_threshold


def _verdict(
    name: str,
    kind: str,
    test: str,
    stats: dict[str, float | None],
    options: DriftOptions,
    n_ref: int,
    n_cur: int,
) -> FeatureDrift:
    key, direction = _DECIDING[test]
    value = stats.get(key)
    threshold = _threshold(test, options)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return FeatureDrift(
            name,
            kind,
            test,
            None,
            threshold,
            False,
            "insufficient_data",
            n_ref,
            n_cur,
            stats,
            direction,
        )
    drifted = value < threshold if direction == "below" else value > threshold
    return FeatureDrift(
        name,
        kind,
        test,
        float(value),
        threshold,
        bool(drifted),
        "drift" if drifted else "ok",
        n_ref,
        n_cur,
        stats,
        direction,
    )


def feature_drift(
    name: str, ref: Reference, cur: Sketch, options: DriftOptions | None = None
) -> FeatureDrift:
    """The drift of one column, by its kind."""
    opts = options or DriftOptions()
    if isinstance(ref, NumericReference) and isinstance(cur, NumericSketch):
        return numeric_drift(name, ref, cur, opts)
    if isinstance(ref, CategoricalReference) and isinstance(cur, CategoricalSketch):
        return categorical_drift(name, ref, cur, opts)
    raise TypeError(f"column {name!r}: a {type(ref).__name__} with a {type(cur).__name__}")


def drift_share(results: list[FeatureDrift], weights: dict[str, float] | None = None) -> float:
    """Share of the columns with a verdict that drifted, weighted by ``weights`` (the
    model's feature importances, when it has them)."""
    judged = [r for r in results if r.status in ("ok", "drift")]
    if not judged:
        return math.nan
    if weights:
        w = {r.feature: max(weights.get(r.feature, 0.0), 0.0) for r in judged}
        total = sum(w.values())
        if total > 0:
            return sum(w[r.feature] for r in judged if r.drifted) / total
    return sum(r.drifted for r in judged) / len(judged)


DISPLAY_BUCKETS = 20
DISPLAY_CATEGORIES = 15


def distribution(ref: Reference, cur: Sketch) -> dict[str, Any]:
    """Reference and current shares over a few display buckets, for reports and pages:
    numeric columns on equal-frequency buckets of the reference (with the current's
    values below and above its range), categories by the reference's most frequent."""
    import numpy as np

    if isinstance(ref, NumericReference) and isinstance(cur, NumericSketch):
        edges = np.asarray(ref.edges, dtype=np.float64)
        r = np.asarray(ref.counts, dtype=np.float64)
        c = np.asarray(cur.counts, dtype=np.float64)
        if ref.discrete:
            labels = [_number(v) for v in edges.tolist()]
            ref_share = (r / max(r.sum(), 1.0)).tolist()
            extra = float(sum(cur.unseen.values()) + cur.below + cur.above)
            cur_total = max(c.sum() + extra, 1.0)
            cur_share = (c / cur_total).tolist()
            if extra:
                labels.append(UNSEEN)
                ref_share.append(0.0)
                cur_share.append(extra / cur_total)
            return {
                "kind": "numeric",
                "labels": labels,
                "reference": ref_share,
                "current": cur_share,
            }
        cum = np.cumsum(r) / max(r.sum(), 1.0)
        bucket = np.minimum((cum * DISPLAY_BUCKETS - 1e-9).astype(np.int64), DISPLAY_BUCKETS - 1)
        bucket = np.maximum(bucket, 0)
        ref_b = np.bincount(bucket, weights=r, minlength=DISPLAY_BUCKETS)
        cur_b = np.bincount(bucket, weights=c, minlength=DISPLAY_BUCKETS)
        lows = [
            edges[np.flatnonzero(bucket == b)[0]] if (bucket == b).any() else math.nan
            for b in range(DISPLAY_BUCKETS)
        ]
        labels = [f"≥{_number(v)}" for v in lows]
        ref_share = (ref_b / max(ref_b.sum(), 1.0)).tolist()
        total = max(cur_b.sum() + cur.below + cur.above, 1.0)
        cur_share = (cur_b / total).tolist()
        labels = [f"<{_number(edges[0])}", *labels, f">{_number(edges[-1])}"]
        ref_share = [0.0, *ref_share, 0.0]
        cur_share = [cur.below / total, *cur_share, cur.above / total]
        return {"kind": "numeric", "labels": labels, "reference": ref_share, "current": cur_share}
    if not (isinstance(ref, CategoricalReference) and isinstance(cur, CategoricalSketch)):
        raise TypeError(f"a {type(ref).__name__} with a {type(cur).__name__}")
    names, r_counts, c_counts = _categorical_frequencies(ref, cur)
    order = np.argsort(-(r_counts + c_counts), kind="stable")
    keep = [i for i in order[:DISPLAY_CATEGORIES]]
    rest = [i for i in order[DISPLAY_CATEGORIES:]]
    r_total, c_total = max(r_counts.sum(), 1.0), max(c_counts.sum(), 1.0)
    labels = [names[i] for i in keep]
    ref_share = [float(r_counts[i] / r_total) for i in keep]
    cur_share = [float(c_counts[i] / c_total) for i in keep]
    if rest:
        labels.append("(the rest)")
        ref_share.append(float(r_counts[rest].sum() / r_total))
        cur_share.append(float(c_counts[rest].sum() / c_total))
    return {"kind": "categorical", "labels": labels, "reference": ref_share, "current": cur_share}


def _number(value: float) -> str:
    if value is None or not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"
