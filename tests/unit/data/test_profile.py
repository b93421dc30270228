"""Profiles: exact numbers on small known data, agreement with numpy, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from loopline.data.content import normalise_table
from loopline.data.profile import (
    QUANTILES,
    TOP_CATEGORIES,
    Profile,
    compute_profile,
    sorted_histogram,
)


def profile_of(data: dict[str, object]) -> Profile:
    table, _ = normalise_table(pa.table(data))
    return compute_profile(table)


def test_numeric_profile_of_known_values() -> None:
    p = profile_of({"x": [1.0, 2.0, 3.0, 4.0, None, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]})
    assert p.rows == 11
    c = p.column("x")
    assert (c.kind, c.dtype, c.count, c.nulls) == ("numeric", "float", 11, 1)
    assert c.null_rate == pytest.approx(1 / 11)
    n = c.numeric
    assert n is not None
    assert (n.min, n.max, n.mean) == (1.0, 10.0, 5.5)
    assert n.std == pytest.approx(np.std(np.arange(1, 11), ddof=1))
    assert n.quantile(0.5) == 5.5
    assert n.quantile(0.25) == 3.25
    assert n.quantile(0.0) == 1.0
    assert n.quantile(1.0) == 10.0
    assert n.distinct == 10
    # 10 distinct values: one bin per value, edges half way between neighbours.
    assert n.histogram.edges == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5]
    assert n.histogram.counts == [1] * 10


def test_continuous_columns_get_decile_bins_and_match_numpy() -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(size=10_001)
    values[::97] = np.nan
    p = profile_of({"v": values, "i": rng.integers(-50, 50, size=10_001)})
    n = p.column("v").numeric
    assert n is not None
    finite = values[~np.isnan(values)]
    assert p.column("v").nulls == int(np.isnan(values).sum())
    expected = np.quantile(finite, QUANTILES)
    got = [n.quantile(q) for q in QUANTILES]
    assert got == pytest.approx(expected.tolist(), rel=1e-12)
    assert n.mean == pytest.approx(finite.mean())
    assert len(n.histogram.edges) == 11
    reference, _ = np.histogram(finite, bins=n.histogram.edges)
    assert n.histogram.counts == reference.tolist()
    assert sum(n.histogram.counts) == len(finite)
    # Equal-frequency bins: each holds about a tenth.
    assert max(n.histogram.counts) - min(n.histogram.counts) <= 2
    i = p.column("i")
    assert i.dtype == "integer"
    assert i.numeric is not None
    assert i.numeric.distinct == 100


def test_sorted_histogram_is_numpy_histogram() -> None:
    rng = np.random.default_rng(0)
    s = np.sort(rng.integers(0, 10, 1000).astype(float))
    edges = [0.0, 2.0, 2.5, 7.0, 9.0]
    assert sorted_histogram(s, edges).tolist() == np.histogram(s, edges)[0].tolist()


def test_constant_and_infinite_values() -> None:
    p = profile_of({"c": [4.0, 4.0, 4.0], "inf": [1.0, float("inf"), -float("inf")]})
    c = p.column("c").numeric
    assert c is not None
    assert c.histogram.edges == [3.5, 4.5]
    assert c.histogram.counts == [3]
    assert c.std == 0.0
    inf = p.column("inf").numeric
    assert inf is not None
    assert inf.infinite == 2
    assert (inf.min, inf.max) == (1.0, 1.0)


def test_categorical_profile_with_top_and_other() -> None:
    labels = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + [None] * 2
    p = profile_of({"s": labels, "b": [True, False, None, True] * 3 + [True]})
    s = p.column("s")
    assert s.kind == "categorical"
    assert s.nulls == 2
    assert s.categorical is not None
    assert s.categorical.distinct == 3
    assert s.categorical.top == [("a", 5), ("b", 3), ("c", 3)]  # ties by value
    assert s.categorical.other == 0
    b = p.column("b").categorical
    assert b is not None
    assert b.top == [("true", 7), ("false", 3)]
    many = profile_of({"id": [f"id{i:03d}" for i in range(120)] + ["id000"] * 5})
    k = many.column("id").categorical
    assert k is not None
    assert k.distinct == 120
    assert len(k.top) == TOP_CATEGORIES
    assert k.top[0] == ("id000", 6)
    assert k.other == 125 - sum(n for _, n in k.top)


def test_dates_all_nulls_and_json_round_trip() -> None:
    import datetime as dt

    p = profile_of(
        {
            "d": [dt.date(2024, 1, 2), None, dt.date(2023, 5, 1)],
            "nothing": pa.array([None, None, None], pa.null()),
            "x": [1, 2, 3],
        }
    )
    d = p.column("d")
    assert (d.kind, d.first, d.last) == ("datetime", "2023-05-01", "2024-01-02")
    assert p.column("nothing").kind == "other"
    raw = p.to_json()
    assert json.loads(raw)["rows"] == 3
    assert Profile.from_json(raw) == p
    assert Profile.from_json(raw).to_json() == raw
