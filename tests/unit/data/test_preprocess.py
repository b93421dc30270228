"""The default preprocessing: built from the schema, handles nulls and unseen categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopline.data.errors import DataArgumentError
from loopline.data.ingest import read_source
from loopline.data.preprocess import default_preprocessor, feature_columns
from loopline.data.profile import compute_profile
from loopline.data.schema import DatasetSchema, infer_schema


@pytest.fixture
def train() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    n = 60
    return pd.DataFrame(
        {
            "age": rng.integers(20, 70, n),
            "income": rng.normal(50, 10, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "vip": rng.random(n) < 0.3,
            "name": [f"n{i}" for i in range(n)],
            "churned": rng.random(n) < 0.5,
        }
    )


def schema_of(frame: pd.DataFrame) -> DatasetSchema:
    table = read_source(frame).table
    return infer_schema(table, compute_profile(table))


def test_columns_by_role(train: pd.DataFrame) -> None:
    parts = feature_columns(schema_of(train), target="churned")
    assert parts == {
        "numeric": ["age", "income"],
        "categorical": ["plan"],
        "boolean": ["vip"],
        "dropped": ["name", "churned"],
    }
    with pytest.raises(DataArgumentError, match="target 'nope'"):
        feature_columns(schema_of(train), target="nope")


def test_fit_then_transform_unseen_categories_and_nulls(train: pd.DataFrame) -> None:
    pre = default_preprocessor(schema_of(train), target="churned")
    out = pre.fit_transform(train)
    # 2 numeric + 3 plans + 2 booleans
    assert out.shape == (60, 7)
    assert np.allclose(out[:, :2].mean(axis=0), 0.0)
    names = list(pre.get_feature_names_out())
    assert names[:2] == ["numeric__age", "numeric__income"]
    assert "categorical__plan_pro" in names

    new = pd.DataFrame(
        {
            "age": [None, 30],
            "income": [np.nan, 55.0],
            "plan": ["enterprise", None],  # unseen, and missing
            "vip": [None, True],
            "name": ["x", "y"],
        }
    )
    got = pre.transform(new)
    assert got.shape == (2, 7)
    assert np.isfinite(got).all()
    plan = got[:, 2:5]
    assert plan[0].tolist() == [0.0, 0.0, 0.0]  # unseen category: all zeros
    assert plan[1].tolist() == [0.0, 0.0, 0.0]  # missing (never seen in training)
    age_median = (np.median(train.age) - train.age.mean()) / train.age.std(ddof=0)
    assert got[0, 0] == pytest.approx(age_median)


def test_it_is_made_of_sklearn_parts_only(train: pd.DataFrame) -> None:
    import skops.io as sio

    pre = default_preprocessor(schema_of(train), target="churned").fit(train)
    data = sio.dumps(pre)
    # Only numpy's dtype (SimpleImputer keeps the dtype it was fitted on): no code.
    assert sio.get_untrusted_types(data=data) == ["numpy.dtype"]
    back = sio.loads(data, trusted=["numpy.dtype"])
    assert np.allclose(back.transform(train), pre.transform(train))


def test_nothing_to_preprocess() -> None:
    schema = schema_of(pd.DataFrame({"id": [f"x{i}" for i in range(5)]}))
    with pytest.raises(DataArgumentError, match="no column the default preprocessing can use"):
        default_preprocessor(schema)
