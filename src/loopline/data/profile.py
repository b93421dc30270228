"""Profiles: the statistics of one dataset version, computed once when it is added.

A profile is the reference that drift detection later compares new data against, so it
keeps what the drift statistics need, not only what a summary shows:

- per numeric column (integer, float): null count, min, max, mean, std (ddof=1), the
  quantiles in :data:`QUANTILES`, the number of distinct values and a histogram with fixed
  bin edges. Edges are the deciles of the column (equal-frequency bins, robust to skew and
  outliers); a column with at most :data:`DISCRETE_MAX` distinct values gets one bin per
  value instead (edges half way between neighbours). Bins are ``[e_i, e_i+1)`` with the
  last one closed, as in ``numpy.histogram``; to compare new data, treat the first and last
  bins as open-ended. Infinite values are counted apart and left out of the statistics;
- per categorical column (string, boolean): null count, distinct count, the
  :data:`TOP_CATEGORIES` most frequent values with their counts and an ``other`` count;
- per date/time column: null count, min and max (ISO 8601).

Speed: one sort per numeric column (numpy's SIMD sort) gives quantiles, distinct count and
histogram counts (by binary search on the sorted values); categoricals are one hash
``value_counts`` in Arrow and a top-k selection of the most frequent values. Columns are
profiled in a thread pool (numpy and Arrow release the GIL), one column at a time per
thread, so a table staged on disk is never read whole. A million rows by 25 columns takes
well under a second on two cores.

Profiles are stored as canonical JSON in the content-addressed store.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

#: Quantiles every numeric column records.
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
#: Equal-frequency histogram bins of a continuous column.
HISTOGRAM_BINS = 10
#: Up to this many distinct values, a numeric column gets one bin per value.
DISCRETE_MAX = 20
#: Most frequent categories kept per categorical column; the rest are counted as "other".
TOP_CATEGORIES = 50
PROFILE_FORMAT = 1

NUMERIC = "numeric"
CATEGORICAL = "categorical"
TEMPORAL = "datetime"
OTHER = "other"


def quantile_key(q: float) -> str:
    """How a quantile is named in :attr:`NumericStats.quantiles`: 0.05 -> ``"0.05"``."""
    return f"{q:g}"


@dataclass(frozen=True)
class Histogram:
    """Counts of values in the bins between consecutive ``edges`` (len(edges) - 1 bins)."""

    edges: list[float]
    counts: list[int]


@dataclass(frozen=True)
class NumericStats:
    min: float
    max: float
    mean: float
    std: float
    #: Quantile name (see :func:`quantile_key`) -> value.
    quantiles: dict[str, float]
    histogram: Histogram
    distinct: int
    #: Values that are +inf or -inf (left out of every statistic above).
    infinite: int = 0

    def quantile(self, q: float) -> float:
        return self.quantiles[quantile_key(q)]


@dataclass(frozen=True)
class CategoricalStats:
    distinct: int
    #: (value, count) of the most frequent values, most frequent first (ties by value).
    top: list[tuple[str, int]]
    #: Non-null values outside ``top``.
    other: int = 0

    def frequencies(self) -> dict[str, int]:
        return dict(self.top)


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    dtype: str
    kind: str
    count: int
    nulls: int
    numeric: NumericStats | None = None
    categorical: CategoricalStats | None = None
    #: ISO 8601 min and max of a date/time column.
    first: str | None = None
    last: str | None = None

    @property
    def null_rate(self) -> float:
        return self.nulls / self.count if self.count else 0.0


@dataclass(frozen=True)
class Profile:
    rows: int
    columns: list[ColumnProfile] = field(default_factory=list)
    format: int = PROFILE_FORMAT

    def column(self, name: str) -> ColumnProfile:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"no column {name!r} in the profile; columns: {self.names}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "rows": self.rows,
            "columns": [_column_to_dict(c) for c in self.columns],
        }

    def to_json(self) -> bytes:
        """Canonical JSON (sorted keys, no NaN): the same profile gives the same bytes."""
        return json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls(
            rows=int(data["rows"]),
            columns=[_column_from_dict(c) for c in data["columns"]],
            format=int(data.get("format", PROFILE_FORMAT)),
        )

    @classmethod
    def from_json(cls, data: bytes) -> Profile:
        return cls.from_dict(json.loads(data))


def _column_to_dict(c: ColumnProfile) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": c.name,
        "dtype": c.dtype,
        "kind": c.kind,
        "count": c.count,
        "nulls": c.nulls,
        "null_rate": c.null_rate,
    }
    if c.numeric is not None:
        n = c.numeric
        out["numeric"] = {
            "min": n.min,
            "max": n.max,
            "mean": n.mean,
            "std": n.std,
            "quantiles": n.quantiles,
            "histogram": {"edges": n.histogram.edges, "counts": n.histogram.counts},
            "distinct": n.distinct,
            "infinite": n.infinite,
        }
    if c.categorical is not None:
        k = c.categorical
        out["categorical"] = {
            "distinct": k.distinct,
            "top": [[v, n] for v, n in k.top],
            "other": k.other,
        }
    if c.first is not None or c.last is not None:
        out["first"] = c.first
        out["last"] = c.last
    return out


def _column_from_dict(d: dict[str, Any]) -> ColumnProfile:
    numeric = None
    if d.get("numeric") is not None:
        n = d["numeric"]
        numeric = NumericStats(
            min=n["min"],
            max=n["max"],
            mean=n["mean"],
            std=n["std"],
            quantiles=dict(n["quantiles"]),
            histogram=Histogram(list(n["histogram"]["edges"]), list(n["histogram"]["counts"])),
            distinct=n["distinct"],
            infinite=n.get("infinite", 0),
        )
    categorical = None
    if d.get("categorical") is not None:
        k = d["categorical"]
        categorical = CategoricalStats(
            distinct=k["distinct"], top=[(str(v), int(c)) for v, c in k["top"]], other=k["other"]
        )
    return ColumnProfile(
        name=d["name"],
        dtype=d["dtype"],
        kind=d["kind"],
        count=d["count"],
        nulls=d["nulls"],
        numeric=numeric,
        categorical=categorical,
        first=d.get("first"),
        last=d.get("last"),
    )


def compute_profile(table: Any, *, workers: int | None = None) -> Profile:
    """The profile of a canonical ``pyarrow.Table`` (see :mod:`loopline.data.content`), or
    of anything with its ``column_names``, ``num_rows`` and ``column(i)`` (a table staged
    on disk): columns are taken one at a time, a few at once in threads."""
    import pyarrow as pa

    from loopline.data.content import column_workers

    names = table.column_names

    def one(i: int) -> ColumnProfile:
        profiled = profile_column(names[i], table.column(i))
        pa.default_memory_pool().release_unused()  # the column's memory, for the next one
        return profiled

    n_workers = workers or column_workers(table, len(names))
    if n_workers > 1 and len(names) > 1:
        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            profiles = list(pool.map(one, range(len(names))))
    else:
        profiles = [one(i) for i in range(len(names))]
    return Profile(rows=table.num_rows, columns=profiles)


def profile_column(name: str, col: Any) -> ColumnProfile:
    """The profile of one column (a pyarrow Array or ChunkedArray of a canonical type)."""
    from loopline.data.content import logical_dtype

    dtype = logical_dtype(col.type)
    count = len(col)
    nulls = col.null_count
    if dtype in ("integer", "float"):
        return ColumnProfile(name, dtype, NUMERIC, count, nulls, numeric=numeric_stats(col))
    if dtype in ("string", "boolean"):
        return ColumnProfile(
            name, dtype, CATEGORICAL, count, nulls, categorical=categorical_stats(col)
        )
    if dtype in ("datetime", "date"):
        first, last = _temporal_range(col)
        return ColumnProfile(name, dtype, TEMPORAL, count, nulls, first=first, last=last)
    return ColumnProfile(name, dtype, OTHER, count, nulls)


def numeric_values(col: Any) -> Any:
    """The non-null values of a numeric column as a float64 numpy array (a copy, made
    chunk by chunk into one array)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    present = [len(c) - c.null_count for c in chunks]
    values = np.empty(sum(present), dtype=np.float64)
    at = 0
    for chunk, n in zip(chunks, present, strict=True):
        if n:
            part = pc.drop_null(chunk) if chunk.null_count else chunk
            values[at : at + n] = part.to_numpy(zero_copy_only=False)
            at += n
    return values


def numeric_stats(col: Any) -> NumericStats | None:
    import numpy as np

    values = numeric_values(col)
    values.sort()
    lo = int(np.searchsorted(values, -np.inf, side="right"))
    hi = int(np.searchsorted(values, np.inf, side="left"))
    infinite = len(values) - (hi - lo)
    s = values[lo:hi]
    n = len(s)
    if n == 0:
        return None
    qs = sorted_quantiles(s, QUANTILES)
    changes = np.count_nonzero(s[1:] != s[:-1]) if n > 1 else 0
    distinct = int(changes) + 1
    edges = _edges(s, distinct)
    counts = sorted_histogram(s, edges)
    low, high = float(s[0]), float(s[-1])
    mean, std = _mean_std(s)
    return NumericStats(
        min=low,
        max=high,
        mean=mean,
        std=std,
        quantiles={quantile_key(q): float(v) for q, v in zip(QUANTILES, qs, strict=True)},
        histogram=Histogram([float(e) for e in edges], [int(c) for c in counts]),
        distinct=distinct,
        infinite=infinite,
    )


def _mean_std(s: Any) -> tuple[float, float]:
    """``s.mean()`` and ``s.std(ddof=1)`` (0 for one value), computed as numpy computes them
    (the same sums in the same order, so the same bits) but squaring the deviations in
    place: no second array as large as ``s``. ``s`` is overwritten."""
    import numpy as np

    n = len(s)
    mean = np.add.reduce(s) / n
    if n < 2:
        return float(mean), 0.0
    np.subtract(s, mean, out=s)
    np.multiply(s, s, out=s)
    return float(mean), float(np.sqrt(np.add.reduce(s) / (n - 1)))


def sorted_quantiles(s: Any, qs: Any) -> Any:
    """Quantiles of sorted values, interpolated linearly (numpy's default method)."""
    import numpy as np

    n = len(s)
    pos = np.asarray(qs, dtype=np.float64) * (n - 1)
    below = np.floor(pos).astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    frac = pos - below
    lower = s[below]
    return lower + (s[above] - lower) * frac


def sorted_histogram(s: Any, edges: Any) -> Any:
    """``numpy.histogram(s, edges)[0]`` for sorted ``s``, by binary search."""
    import numpy as np

    edges = np.asarray(edges, dtype=np.float64)
    pos = np.searchsorted(s, edges, side="left")
    pos[-1] = np.searchsorted(s, edges[-1], side="right")
    return np.diff(pos)


def _edges(s: Any, distinct: int) -> Any:
    import numpy as np

    if distinct == 1:
        v = float(s[0])
        return np.array([v - 0.5, v + 0.5])
    if distinct <= DISCRETE_MAX:
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        values = s[starts]
        mids = (values[1:] + values[:-1]) / 2
        first = values[0] - (values[1] - values[0]) / 2
        last = values[-1] + (values[-1] - values[-2]) / 2
        return np.r_[first, mids, last]
    edges = np.unique(sorted_quantiles(s, np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)))
    return edges


def categorical_stats(col: Any) -> CategoricalStats:
    import pyarrow.compute as pc

    parts = _parts_for(col)
    if parts > 1:
        return _partitioned_stats(col, parts)
    values, freq = _value_counts(col)
    distinct = len(values)
    if distinct == 0:
        return CategoricalStats(distinct=0, top=[], other=0)
    top_values, top_counts = _top(values, freq)
    total = pc.sum(freq).as_py() or 0
    top = [(category_label(v), int(n)) for v, n in zip(top_values, top_counts, strict=True)]
    return CategoricalStats(distinct=distinct, top=top, other=int(total - sum(top_counts)))


#: Text columns with more values than this, most of them distinct, are counted in parts
#: of about this many values.
PARTITION_ROWS = 1 << 19


def _value_counts(col: Any) -> tuple[Any, Any]:
    """The distinct non-null values of ``col`` and how often each occurs."""
    import pyarrow.compute as pc

    counts = pc.value_counts(col)
    values = counts.field("values")
    keep = pc.is_valid(values)
    return values.filter(keep), counts.field("counts").filter(keep)


def _top(values: Any, freq: Any) -> tuple[list[Any], list[int]]:
    """The :data:`TOP_CATEGORIES` most frequent values, ties by value (values are
    distinct, so (count, value) is a total order and selecting the first k gives what
    sorting everything would)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    k = min(TOP_CATEGORIES, len(values))
    if k == 0:
        return [], []
    top_idx = pc.select_k_unstable(
        pa.table({"n": freq, "v": values}),
        k=k,
        sort_keys=[("n", "descending"), ("v", "ascending")],
    )
    return values.take(top_idx).to_pylist(), [int(n) for n in freq.take(top_idx).to_pylist()]


def _parts_for(col: Any) -> int:
    """In how many parts to count a text column: 1, unless it is long and its values are
    mostly distinct (counting them at once would hold a hash table of all of them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_large_string(col.type) or pa.types.is_large_binary(col.type)):
        return 1
    present = int(len(col) - col.null_count)
    if present <= PARTITION_ROWS:
        return 1
    sample = col.slice(0, min(len(col), 1 << 16))
    if pc.count_distinct(sample).as_py() * 8 < len(sample):
        return 1  # few distinct values: one small hash table
    return min(255, -(-present // PARTITION_ROWS))


def _partitioned_stats(col: Any, parts: int) -> CategoricalStats:
    """Categorical stats counted in ``parts`` parts chosen by a function of the value, so
    that each distinct value is in exactly one part: the same numbers as counting at once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    keys = [_part_keys(chunk, parts) for chunk in chunks]
    distinct = 0
    total = 0
    best_values: list[Any] = []
    best_counts: list[int] = []
    for part in range(parts):
        subset = pa.chunked_array(
            [c.filter(pa.array(k == part)) for c, k in zip(chunks, keys, strict=True)],
            type=col.type,
        )
        values, freq = _value_counts(subset)
        distinct += len(values)
        total += pc.sum(freq).as_py() or 0
        top_values, top_counts = _top(values, freq)
        best_values += top_values
        best_counts += top_counts
        del subset, values, freq
    if distinct == 0:
        return CategoricalStats(distinct=0, top=[], other=0)
    top_values, top_counts = _top(
        pa.array(best_values, type=col.type), pa.array(best_counts, type=pa.int64())
    )
    top = [(category_label(v), int(n)) for v, n in zip(top_values, top_counts, strict=True)]
    return CategoricalStats(distinct=distinct, top=top, other=int(total - sum(top_counts)))


def _part_keys(chunk: Any, parts: int) -> Any:
    """A part (0 to parts - 1) for each value of a large string or binary array, from its
    length and a few of its bytes (the first and the last three)."""
    import numpy as np

    offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64)[
        chunk.offset : chunk.offset + len(chunk) + 1
    ]
    starts, ends = offsets[:-1], offsets[1:]
    lengths = ends - starts
    buffer = chunk.buffers()[2]
    data = np.frombuffer(buffer, dtype=np.uint8) if buffer is not None else np.zeros(1, np.uint8)
    key = lengths * 13

    def byte_at(positions: Any, present: Any) -> Any:
        return np.where(present, data[np.where(present, positions, 0)], 0).astype(np.int64)

    key += byte_at(starts, lengths >= 1) * 11
    for back, weight in ((1, 1), (2, 3), (3, 7)):
        key += byte_at(ends - back, lengths >= back) * weight
    return (key % parts).astype(np.uint8)


def category_label(value: object) -> str:
    """How a categorical value is written in profiles and schemas (booleans in lowercase)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _temporal_range(col: Any) -> tuple[str | None, str | None]:
    import pyarrow.compute as pc

    if col.null_count == len(col):
        return None, None
    mm = pc.min_max(col)
    lo, hi = mm["min"].as_py(), mm["max"].as_py()
    return (
        lo.isoformat() if lo is not None else None,
        hi.isoformat() if hi is not None else None,
    )


def finite_or_none(value: float | None) -> float | None:
    """``value`` unless it is NaN or infinite (JSON has no such numbers)."""
    if value is None or not math.isfinite(value):
        return None
    return value
