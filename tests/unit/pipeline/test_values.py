from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopline.pipeline.errors import StepOutputError
from loopline.pipeline.values import load_value, store_value
from loopline.store.objects.cas import ContentStore
from loopline.store.objects.memory import MemoryObjectStore


@pytest.fixture
def cas() -> ContentStore:
    return ContentStore(MemoryObjectStore())


def roundtrip(cas: ContentStore, value: object) -> tuple[str, object]:
    fmt, digest = store_value(cas, value)
    return fmt, load_value(cas, fmt, digest)


def test_dataframe_and_series(cas: ContentStore) -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]}, index=[10, 11, 12])
    fmt, back = roundtrip(cas, df)
    assert fmt == "parquet-pandas"
    pd.testing.assert_frame_equal(back, df)
    s = pd.Series([1.5, 2.5], name="s")
    fmt, back_s = roundtrip(cas, s)
    pd.testing.assert_series_equal(back_s, s)


def test_same_frame_same_digest(cas: ContentStore) -> None:
    df = pd.DataFrame({"a": range(100)})
    assert store_value(cas, df) == store_value(cas, df.copy())
    assert store_value(cas, df) != store_value(cas, df.assign(a=df.a + 1))


def test_arrow_numpy_json_bytes(cas: ContentStore) -> None:
    table = pa.table({"x": [1, 2]})
    assert roundtrip(cas, table)[1].equals(table)
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    fmt, back = roundtrip(cas, arr)
    assert fmt == "npy"
    np.testing.assert_array_equal(back, arr)
    assert roundtrip(cas, {"a": [1, 2.5, "x", None], "n": np.int64(3)}) == (
        "json",
        {"a": [1, 2.5, "x", None], "n": 3},
    )
    assert roundtrip(cas, b"\x00\x01") == ("bytes", b"\x00\x01")


def test_bundles_of_mixed_values(cas: ContentStore) -> None:
    df = pd.DataFrame({"a": [1]})
    fmt, back = roundtrip(cas, {"train": df, "n": 1, "arr": np.ones(2)})
    assert fmt == "bundle"
    assert isinstance(back, dict)
    pd.testing.assert_frame_equal(back["train"], df)
    assert back["n"] == 1
    fmt, tup = roundtrip(cas, (df, np.zeros(1)))
    assert fmt == "bundle"
    assert isinstance(tup, tuple)
    assert len(tup) == 2


def test_sklearn_estimator_is_stored_as_a_safe_model(cas: ContentStore) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.random.default_rng(0).normal(size=(50, 3))
    y = (x[:, 0] > 0).astype(int)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    fmt, back = roundtrip(cas, model)
    assert fmt == "model"
    np.testing.assert_allclose(back.predict_proba(x), model.predict_proba(x))


def test_unsafe_values_are_refused_with_the_reason(cas: ContentStore) -> None:
    class Custom:
        pass

    with pytest.raises(StepOutputError, match="cannot store safely"):
        store_value(cas, Custom(), where="output of step 'x'")
    with pytest.raises(StepOutputError, match="Python objects"):
        store_value(cas, np.array([object(), object()], dtype=object))
    with pytest.raises(StepOutputError, match="non-string key"):
        store_value(cas, {1: pd.DataFrame()})
