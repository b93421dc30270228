"""Fixtures of the registry tests: migrated stores, a registry, a mixed frame, fitted models.

Models are fitted once per session (they are small) and only read by the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopline.registry import Registry
from loopline.store.stores import Stores


@pytest.fixture
def reg(stores: Stores) -> Registry:
    return Registry(stores)


@pytest.fixture
def local_stores(sqlite_stores: Stores) -> Stores:
    """SQLite + local artifacts only: for tests about packages, not about the database."""
    return sqlite_stores


@pytest.fixture
def local_reg(local_stores: Stores) -> Registry:
    return Registry(local_stores)


@pytest.fixture(scope="session")
def frame() -> tuple[pd.DataFrame, pd.Series]:
    """Mixed dtypes: integers, floats with nulls, strings, booleans, a categorical."""
    rng = np.random.default_rng(7)
    n = 400
    X = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50.0, 12.0, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "active": rng.random(n) > 0.4,
            "region": pd.Categorical(rng.choice(["north", "south", "east"], n)),
        }
    )
    noise = rng.normal(0.0, 6.0, n)
    y = pd.Series(
        ((X["income"] + (X["plan"] == "pro") * 8 + noise) > 52).astype(int), name="churned"
    )
    return X, y


@pytest.fixture(scope="session")
def numeric(frame: tuple[pd.DataFrame, pd.Series]) -> tuple[pd.DataFrame, pd.Series]:
    X, y = frame
    return X[["age", "income"]].astype(float), y


def _preprocess() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
        ],
        remainder="passthrough",
    )


@pytest.fixture(scope="session")
def sk_pipeline(frame: tuple[pd.DataFrame, pd.Series]) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    X, y = frame
    return Pipeline([("pre", _preprocess()), ("clf", LogisticRegression(max_iter=500))]).fit(X, y)


@pytest.fixture(scope="session")
def numeric_pipeline(numeric: tuple[pd.DataFrame, pd.Series]) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = numeric
    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression())]).fit(X, y)


@pytest.fixture(scope="session")
def xgb_classifier(numeric: tuple[pd.DataFrame, pd.Series]) -> Any:
    import xgboost as xgb

    X, y = numeric
    return xgb.XGBClassifier(n_estimators=15, max_depth=3, n_jobs=1).fit(X, y)


@pytest.fixture(scope="session")
def lgbm_classifier(frame: tuple[pd.DataFrame, pd.Series]) -> Any:
    import lightgbm as lgb

    X, y = frame
    labels = np.where(y == 1, "yes", "no")  # string classes: the label mapping must survive
    Xl = X.assign(plan=X["plan"].astype("category"))
    return lgb.LGBMClassifier(n_estimators=15, num_leaves=7, verbose=-1, n_jobs=1).fit(Xl, labels)


@pytest.fixture(scope="session")
def pipe_xgb(frame: tuple[pd.DataFrame, pd.Series]) -> Any:
    import xgboost as xgb
    from sklearn.pipeline import Pipeline

    X, y = frame
    model = xgb.XGBClassifier(n_estimators=15, max_depth=3, n_jobs=1)
    return Pipeline([("pre", _preprocess()), ("xgb", model)]).fit(X, y)


@pytest.fixture(scope="session")
def pipe_lgbm(frame: tuple[pd.DataFrame, pd.Series]) -> Any:
    import lightgbm as lgb
    from sklearn.pipeline import Pipeline

    X, y = frame
    model = lgb.LGBMClassifier(n_estimators=15, num_leaves=7, verbose=-1, n_jobs=1)
    return Pipeline([("pre", _preprocess()), ("lgbm", model)]).fit(X, y)
