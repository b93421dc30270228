"""Fixtures of the trigger tests: migrated stores with small registered classifiers (a
logistic regression scored natively, a random forest with its ONNX export)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopline.config import S3Settings, settings_for
from loopline.registry import Registry
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores

MODEL = "churn"
REF = "churn@production"
FOREST = "forest"


def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.integers(0, 10, size=n)
    return pd.DataFrame({"x1": x1, "x2": x2.astype(np.int64)})


@pytest.fixture(scope="session")
def fitted() -> object:
    from sklearn.linear_model import LogisticRegression

    X = make_frame(200)
    y = np.where(X["x1"] + 0.2 * X["x2"] > 1.0, "yes", "no")
    return LogisticRegression().fit(X, y)


def open_stores(
    tmp_path: Path, metadata_url: str, model: object, s3: S3Settings | None = None
) -> Stores:
    (tmp_path / "artifacts").mkdir(exist_ok=True)
    settings = settings_for(
        tmp_path,
        environ={
            "LOOPLINE_METADATA_URL": metadata_url,
            "LOOPLINE_ARTIFACTS_URL": str(tmp_path / "artifacts"),
        },
    )
    if s3 is not None:
        settings = settings.with_overrides(s3=s3)
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    stores = Stores.open(settings)
    reg = Registry(stores)
    mv = reg.register(MODEL, model, sample=make_frame(50), onnx=False)  # scored natively
    reg.set_alias(MODEL, "production", mv.version)
    return stores


@pytest.fixture
def stores(tmp_path: Path, fitted: object) -> Iterator[Stores]:
    """SQLite + local artifacts, with ``churn@production`` registered."""
    with open_stores(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}", fitted) as opened:
        yield opened


@pytest.fixture
def db_stores(tmp_path: Path, metadata_url: str, fitted: object) -> Iterator[Stores]:
    """Like ``stores``, on SQLite and PostgreSQL."""
    with open_stores(tmp_path, metadata_url, fitted) as opened:
        yield opened


@pytest.fixture
def s3_stores(tmp_path: Path, fitted: object, s3_settings: S3Settings) -> Iterator[Stores]:
    """SQLite + local artifacts, able to open s3:// URLs on the test S3 server."""
    with open_stores(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}", fitted, s3_settings) as s:
        yield s


@pytest.fixture
def frame() -> object:
    """A function making input frames: ``frame(n, seed)`` with an ``id`` column."""

    def build(n: int, seed: int = 1) -> pd.DataFrame:
        out = make_frame(n, seed)
        out.insert(0, "id", [f"r{i}" for i in range(n)])
        return out

    return build


@pytest.fixture(scope="session")
def forest() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    X = make_frame(400, seed=3)
    y = np.where(X["x1"] + 0.3 * X["x2"] > 1.2, "yes", "no")
    return RandomForestClassifier(n_estimators=12, max_depth=5, random_state=0).fit(X, y)


@pytest.fixture
def forest_stores(stores: Stores, forest: Any) -> Stores:
    """``stores`` with ``forest@production`` (a random forest) registered with its ONNX
    export."""
    reg = Registry(stores)
    mv = reg.register(FOREST, forest, sample=make_frame(100, seed=3), onnx=True)
    assert reg.manifest(mv).has_onnx, reg.manifest(mv).onnx
    reg.set_alias(FOREST, "production", mv.version)
    return stores
