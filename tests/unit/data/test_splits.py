"""Splits: deterministic, stratified within tolerance, recorded and reloaded exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopline.data import Datasets
from loopline.data.errors import DataArgumentError
from loopline.data.splits import allocate, assign, check_fractions
from loopline.store.stores import Stores


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    n = 2_000
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            # Imbalanced classes, and a few missing labels (one more class).
            "label": rng.choice(["a", "b", "c"], size=n, p=[0.8, 0.15, 0.05]),
            "row": np.arange(n),
        }
    ).assign(label=lambda d: d.label.where(d.row % 400 != 7))


def test_fractions_are_validated() -> None:
    assert check_fractions((0.7, 0.15, 0.15)) == (0.7, 0.15, 0.15)
    assert check_fractions([0.8, 0.2]) == (0.8, 0.0, 0.2)
    for bad, message in [
        ((0.7, 0.2, 0.2), "add up to 1, not 1.1"),
        ((0.5, 0.5, 0.0, 0.0), "not 4 numbers"),
        ((0.0, 0.5, 0.5), "train fraction must be above 0"),
        ((1.2, -0.2, 0.0), "between 0 and 1"),
        ((float("nan"), 0.5, 0.5), "between 0 and 1"),
        (("a", "b", "c"), "must be numbers"),
    ]:
        with pytest.raises(DataArgumentError, match=message):
            check_fractions(bad)


def test_allocation_adds_up() -> None:
    assert allocate(10, (0.7, 0.15, 0.15)) == [7, 2, 1]
    assert allocate(1, (0.7, 0.15, 0.15)) == [1, 0, 0]
    for n in range(50):
        assert sum(allocate(n, (0.6, 0.25, 0.15))) == n


def test_assignment_is_deterministic_and_sized() -> None:
    a = assign(1_000, (0.7, 0.15, 0.15), seed=5)
    assert np.array_equal(a, assign(1_000, (0.7, 0.15, 0.15), seed=5))
    assert not np.array_equal(a, assign(1_000, (0.7, 0.15, 0.15), seed=6))
    assert np.bincount(a).tolist() == [700, 150, 150]


def test_split_of_a_dataset_version(local_stores: Stores, frame: pd.DataFrame) -> None:
    ds = Datasets(local_stores)
    v = ds.add("d", frame)
    s1 = ds.split("d", seed=42)
    assert s1.created
    assert (len(s1.train), len(s1.validation), len(s1.test)) == (1400, 300, 300)
    assert s1.record.sizes == {"train": 1400, "validation": 300, "test": 300}
    assert (s1.record.dataset, s1.record.version, s1.record.dataset_digest) == ("d", 1, v.digest)
    all_rows = np.sort(np.concatenate([s1.train.row, s1.validation.row, s1.test.row]))
    assert np.array_equal(all_rows, np.arange(len(frame)))  # a partition of the rows
    assert list(s1.train.row) == sorted(s1.train.row)  # dataset order kept
    assert np.array_equal(s1.indices["train"], s1.train.row.to_numpy())
    assert list(s1.test.index) == list(s1.test.row)  # indexed by position in the dataset

    again = ds.split("d", seed=42)
    assert not again.created
    assert again.record == s1.record
    pd.testing.assert_frame_equal(again.test, s1.test)
    other = ds.split("d", seed=43)
    assert other.record.id != s1.record.id
    assert not np.array_equal(other.test.row, s1.test.row)

    reloaded = ds.load_split(s1.record.id)
    pd.testing.assert_frame_equal(reloaded.train, s1.train)
    from loopline.data.content import table_digest
    from loopline.data.ingest import read_source

    assert table_digest(read_source(s1.test).table) == s1.record.digests["test"]
    assert [r.id for r in ds.splits("d")] == [s1.record.id, other.record.id]
    assert ds.splits("d", 1)[0].seed == 42


def test_stratified_split_keeps_class_ratios(local_stores: Stores, frame: pd.DataFrame) -> None:
    ds = Datasets(local_stores)
    ds.add("d", frame)
    s = ds.split("d", fractions=(0.6, 0.2, 0.2), seed=1, stratify="label")
    overall = frame.label.value_counts(normalize=True, dropna=False)
    for part in (s.train, s.validation, s.test):
        ratios = part.label.value_counts(normalize=True, dropna=False)
        for cls, share in overall.items():
            assert abs(ratios.get(cls, 0.0) - share) < 0.01, (cls, share, ratios.get(cls))
    assert s.validation.label.isna().sum() >= 1  # the missing labels are a class, too
    same = ds.split("d", fractions=(0.6, 0.2, 0.2), seed=1, stratify="label")
    assert same.record.id == s.record.id
    with pytest.raises(DataArgumentError, match="no such column"):
        ds.split("d", stratify="nope")
    with pytest.raises(DataArgumentError, match="seed"):
        ds.split("d", seed=-1)
