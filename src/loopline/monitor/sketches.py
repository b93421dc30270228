"""Mergeable summaries of a column: what drift statistics need, in bounded memory.

A *reference* column (the training data) is summarised once, exactly, into
:class:`NumericReference` or :class:`CategoricalReference`. A *current* column (a window
of the prediction log, streamed in record batches) is summarised into a
:class:`NumericSketch` or :class:`CategoricalSketch` that is updated batch by batch and
merges with another of its kind, so memory does not grow with the window and work can be
split into chunks.

Numeric columns are binned on the reference's own equal-frequency edges: up to
:data:`FINE_BINS` bins (each holding 1/1000 of the reference), or, for a column with at
most :data:`DISCRETE_MAX` distinct values, one bin per value. Both sides count values per
bin with one binary search per value, so a million rows take a few milliseconds per
column. Current values below the reference's minimum or above its maximum are counted
apart, with the sum of their distances to that boundary, which makes the tails of the
Wasserstein distance exact and gives the out-of-range share for free.

From those counts the drift statistics follow (:mod:`loopline.monitor.drift`): the KS
statistic and the Wasserstein distance within the resolution of the bins (1/1000 of the
reference's mass; exact for discrete columns), PSI on coarser buckets, and for categories
chi², Jensen-Shannon and PSI on exact counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: Equal-frequency bins a continuous reference column is cut into.
FINE_BINS = 1000
#: Up to this many distinct values, a numeric column is treated as discrete.
DISCRETE_MAX = 50
#: Categories a reference keeps by name; rarer ones are pooled as :data:`OTHER`.
MAX_CATEGORIES = 1000
#: Distinct categories a current sketch tracks by name before pooling the rest.
MAX_CURRENT_CATEGORIES = 5000
OTHER = "<other>"
NULL = None


@dataclass
class NumericReference:
    """A reference numeric column: bin edges, counts per bin and plain statistics.

    ``edges`` are increasing: bin ``i`` holds ``edges[i] <= x < edges[i+1]`` (the last bin
    closed). When ``discrete``, ``edges`` are the distinct values and bin ``i`` holds
    exactly ``edges[i]``.
    """

    edges: list[float]
    counts: list[int]
    n: int
    nulls: int
    mean: float
    std: float
    discrete: bool = False
    infinite: int = 0

    @property
    def min(self) -> float:
        return self.edges[0]

    @property
    def max(self) -> float:
        return self.edges[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric",
            "edges": self.edges,
            "counts": self.counts,
            "n": self.n,
            "nulls": self.nulls,
            "mean": self.mean,
            "std": self.std,
            "discrete": self.discrete,
            "infinite": self.infinite,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericReference:
        return cls(
            edges=[float(e) for e in d["edges"]],
            counts=[int(c) for c in d["counts"]],
            n=int(d["n"]),
            nulls=int(d["nulls"]),
            mean=float(d["mean"]),
            std=float(d["std"]),
            discrete=bool(d.get("discrete", False)),
            infinite=int(d.get("infinite", 0)),
        )

    def new_sketch(self) -> NumericSketch:
        return NumericSketch(self)


@dataclass
class CategoricalReference:
    """A reference categorical column: counts per category (rare ones pooled)."""

    counts: dict[str, int]
    n: int
    nulls: int
    other: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "categorical",
            "counts": self.counts,
            "n": self.n,
            "nulls": self.nulls,
            "other": self.other,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoricalReference:
        return cls(
            counts={str(k): int(v) for k, v in d["counts"].items()},
            n=int(d["n"]),
            nulls=int(d["nulls"]),
            other=int(d.get("other", 0)),
        )

    def new_sketch(self) -> CategoricalSketch:
        return CategoricalSketch(self)


Reference = NumericReference | CategoricalReference


def reference_from_dict(d: dict[str, Any]) -> Reference:
    if d.get("kind") == "categorical":
        return CategoricalReference.from_dict(d)
    return NumericReference.from_dict(d)


# -- building references --------------------------------------------------------------------


def numeric_values(values: Any) -> tuple[Any, int, int]:
    """(finite float64 values, nulls, infinite) of an Arrow array/chunked array or numpy."""
    import numpy as np
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if isinstance(values, pa.Array):
        nulls = values.null_count
        if pa.types.is_boolean(values.type):
            values = values.cast(pa.int8())
        if nulls:
            values = values.drop_null()
        arr = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    else:
        arr = np.asarray(values, dtype=np.float64)
        nulls = 0
    missing = np.isnan(arr)  # NaN is a missing value, as pandas writes one
    if missing.any():
        nulls += int(missing.sum())
        arr = arr[~missing]
    finite = np.isfinite(arr)
    infinite = int(arr.size - finite.sum())
    if infinite:
        arr = arr[finite]
    return arr, int(nulls), infinite


def build_numeric_reference(values: Any, *, bins: int = FINE_BINS) -> NumericReference:
    """The reference of a numeric column (exact: sorts the values once)."""
    import numpy as np

    arr, nulls, infinite = numeric_values(values)
    n = int(arr.size)
    if n == 0:
        return NumericReference([0.0], [0], 0, nulls, math.nan, math.nan, True, infinite)
    s = np.sort(arr)
    mean = float(s.mean())
    std = float(s.std(ddof=1)) if n > 1 else 0.0
    changes = np.flatnonzero(s[1:] != s[:-1])
    if changes.size < DISCRETE_MAX:
        distinct = s[np.concatenate(([0], changes + 1))]
        counts = np.searchsorted(s, distinct, side="right") - np.searchsorted(
            s, distinct, side="left"
        )
        return NumericReference(
            distinct.tolist(), counts.tolist(), n, nulls, mean, std, True, infinite
        )
    positions = np.linspace(0, n - 1, bins + 1).round().astype(np.int64)
    edges = np.unique(s[positions])
    counts = _bin_counts(s, edges)
    return NumericReference(edges.tolist(), counts.tolist(), n, nulls, mean, std, False, infinite)


def build_categorical_reference(values: Any, *, keep: int = MAX_CATEGORIES) -> CategoricalReference:
    """The reference of a categorical column: exact counts of its ``keep`` most frequent
    categories, the rest pooled as ``other``."""
    counts, nulls, n = category_counts(values)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    kept = dict(ordered[:keep])
    other = sum(c for _, c in ordered[keep:])
    return CategoricalReference(kept, n, nulls, other)


def category_counts(values: Any) -> tuple[dict[str, int], int, int]:
    """({category text: count}, nulls, non-null n) of an Arrow array or sequence."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(values, pa.Array | pa.ChunkedArray):
        values = pa.array(list(values))
    nulls = values.null_count
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    kind = values.type
    if not (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind)
    ):
        # Numbers as categories: their text (an integer class 1 is "1"; 1.0 is "1.0").
        values = values.cast(pa.string()) if not pa.types.is_null(kind) else values
    vc = pc.value_counts(values)
    out: dict[str, int] = {}
    if len(vc):
        names = vc.field("values").to_pylist()
        freq = vc.field("counts").to_pylist()
        for name, count in zip(names, freq, strict=True):
            if name is not None:
                out[category_label(name)] = int(count)
    return out, int(nulls), int(len(values) - nulls)


def category_label(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bin_counts(sorted_values: Any, edges: Any) -> Any:
    """Counts per bin ``[edges[i], edges[i+1])`` (last closed) of sorted values within
    [edges[0], edges[-1]]."""
    import numpy as np

    inner = np.searchsorted(sorted_values, edges[1:-1], side="left")
    bounds = np.concatenate(([0], inner, [sorted_values.size]))
    return np.diff(bounds)


# -- current sketches -----------------------------------------------------------------------


@dataclass
class NumericSketch:
    """The current side of a numeric column, on its reference's bins. Mergeable."""

    reference: NumericReference
    counts: Any = None
    n: int = 0
    nulls: int = 0
    infinite: int = 0
    below: int = 0
    above: int = 0
    #: Sum of (reference min - x) over values below, and (x - reference max) above.
    below_sum: float = 0.0
    above_sum: float = 0.0
    total: float = 0.0
    total_sq: float = 0.0
    lo: float = math.inf
    hi: float = -math.inf
    #: Values not among a discrete reference's values (they are in ``below``/``above``
    #: when outside its range, else here), with their counts.
    unseen: dict[float, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import numpy as np

        if self.counts is None:
            self.counts = np.zeros(len(self.reference.counts), dtype=np.int64)
        self._edges = np.asarray(self.reference.edges, dtype=np.float64)
        self._locator: _BinLocator | None = None

    def _bins(self, inside: Any) -> Any:
        if self._locator is None:
            self._locator = _BinLocator(self._edges)
        return self._locator.locate(inside)

    def update(self, values: Any) -> None:
        """Add a batch (an Arrow array or numpy array of any numeric type)."""
        import numpy as np

        arr, nulls, infinite = numeric_values(values)
        self.nulls += nulls
        self.infinite += infinite
        if not arr.size:
            return
        self.n += int(arr.size)
        self.total += float(arr.sum())
        self.total_sq += float(np.dot(arr, arr))
        self.lo = min(self.lo, float(arr.min()))
        self.hi = max(self.hi, float(arr.max()))
        edges = self._edges
        low, high = edges[0], edges[-1]
        below = arr < low
        above = arr > high
        nb, na = int(below.sum()), int(above.sum())
        if nb:
            self.below += nb
            self.below_sum += float((low - arr[below]).sum())
        if na:
            self.above += na
            self.above_sum += float((arr[above] - high).sum())
        inside = arr[~(below | above)] if (nb or na) else arr
        if self.reference.discrete:
            pos = np.searchsorted(edges, inside, side="left")
            pos = np.minimum(pos, edges.size - 1)
            exact = edges[pos] == inside
            if not exact.all():
                missing, freq = np.unique(inside[~exact], return_counts=True)
                for v, c in zip(missing.tolist(), freq.tolist(), strict=True):
                    if len(self.unseen) < MAX_CURRENT_CATEGORIES or v in self.unseen:
                        self.unseen[v] = self.unseen.get(v, 0) + int(c)
                    else:
                        self.unseen[math.nan] = self.unseen.get(math.nan, 0) + int(c)
                pos = pos[exact]
            self.counts += np.bincount(pos, minlength=edges.size)
        else:
            self.counts += np.bincount(self._bins(inside), minlength=self.counts.size)

    def merge(self, other: NumericSketch) -> NumericSketch:
        """This sketch plus ``other`` (of the same reference), in place."""
        self.counts += other.counts
        self.n += other.n
        self.nulls += other.nulls
        self.infinite += other.infinite
        self.below += other.below
        self.above += other.above
        self.below_sum += other.below_sum
        self.above_sum += other.above_sum
        self.total += other.total
        self.total_sq += other.total_sq
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)
        for v, c in other.unseen.items():
            self.unseen[v] = self.unseen.get(v, 0) + c
        return self

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def std(self) -> float:
        if self.n < 2:
            return math.nan
        var = (self.total_sq - self.total * self.total / self.n) / (self.n - 1)
        return math.sqrt(max(var, 0.0))

    @property
    def rows(self) -> int:
        """Every value seen, null or not."""
        return self.n + self.nulls + self.infinite

    @property
    def out_of_range(self) -> int:
        return self.below + self.above


@dataclass
class CategoricalSketch:
    """The current side of a categorical column: counts per category. Mergeable."""

    reference: CategoricalReference
    counts: dict[str, int] = field(default_factory=dict)
    n: int = 0
    nulls: int = 0
    #: Values pooled because too many distinct ones were seen.
    pooled: int = 0

    def update(self, values: Any) -> None:
        counts, nulls, n = category_counts(values)
        self.nulls += nulls
        self.n += n
        for name, c in counts.items():
            if name in self.counts or len(self.counts) < MAX_CURRENT_CATEGORIES:
                self.counts[name] = self.counts.get(name, 0) + c
            else:
                self.pooled += c

    def merge(self, other: CategoricalSketch) -> CategoricalSketch:
        for name, c in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + c
        self.n += other.n
        self.nulls += other.nulls
        self.pooled += other.pooled
        return self

    @property
    def rows(self) -> int:
        return self.n + self.nulls

    def unseen(self) -> dict[str, int]:
        """Categories the reference never saw (by name; pooled ones are not known)."""
        known = self.reference.counts
        pooled_reference = self.reference.other > 0
        if pooled_reference:
            return {}  # a rare training category may have been pooled: cannot tell
        return {k: c for k, c in self.counts.items() if k not in known}


Sketch = NumericSketch | CategoricalSketch


class _BinLocator:
    """The bin of each value in [edges[0], edges[-1]], as ``searchsorted(edges[1:-1], x,
    side="right")`` gives it, several times faster: a lookup table over equal-width cells
    settles most values with two gathers; only values in the few cells that hold a bin
    edge are searched."""

    CELLS = 1 << 16

    def __init__(self, edges: Any) -> None:
        import numpy as np

        self.inner = edges[1:-1]
        self.lo = float(edges[0])
        span = float(edges[-1]) - self.lo
        self.scale = (self.CELLS / span) if span > 0 else 0.0
        starts = self.lo + np.arange(self.CELLS + 1, dtype=np.float64) / max(self.scale, 1e-300)
        self.first = np.searchsorted(self.inner, starts[:-1], side="right")
        self.last = np.searchsorted(self.inner, starts[1:], side="left")
        self.plain = False

    def locate(self, x: Any) -> Any:
        import numpy as np

        if not self.scale:
            return np.zeros(x.size, dtype=np.int64)
        if self.plain:
            return np.searchsorted(self.inner, x, side="right")
        cell = ((x - self.lo) * self.scale).astype(np.int64)
        np.clip(cell, 0, self.CELLS - 1, out=cell)
        out = self.first[cell]
        unsure = np.flatnonzero(out != self.last[cell])
        if unsure.size:
            out[unsure] = np.searchsorted(self.inner, x[unsure], side="right")
            # Heavy tails put most edges in a few cells: then the table does not pay.
            self.plain = unsure.size > 0.3 * x.size
        return out
