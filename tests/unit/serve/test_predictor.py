"""The inference paths: ONNX when the registry exported the model (checked against the native
model at load), native otherwise; both from canonical column arrays."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopline.config import settings_for
from loopline.registry import Registry
from loopline.registry.validation import InputValidator
from loopline.serve.predictor import NativePredictor, OnnxPredictor, build_predictor, parity
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Registry]:
    (tmp_path / "artifacts").mkdir()
    settings = settings_for(
        tmp_path,
        environ={
            "LOOPLINE_METADATA_URL": f"sqlite:///{tmp_path / 'meta.db'}",
            "LOOPLINE_ARTIFACTS_URL": str(tmp_path / "artifacts"),
        },
    )
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    with Stores.open(settings) as stores:
        yield Registry(stores)


def _data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=["a", "b", "c", "d"])
    y = (X["a"] + X["b"] > 0).astype(int).to_numpy()
    return X, y


def test_onnx_path_matches_native(reg: Registry) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _data()
    model = Pipeline([("s", StandardScaler()), ("lr", LogisticRegression())]).fit(X, y)
    mv = reg.register("lr", model, sample=X, onnx=True)
    loaded = reg.load(mv)
    choice = build_predictor(loaded, threads=1)
    assert isinstance(choice.predictor, OnnxPredictor), choice.reason
    cols = InputValidator(loaded.signature).validate_records(X.head(50).to_dict("records")).columns
    out = choice.predictor.predict(cols, 50)
    np.testing.assert_allclose(out.probabilities, model.predict_proba(X.head(50)), atol=1e-5)
    assert out.predictions.tolist() == model.predict(X.head(50)).tolist()
    native = NativePredictor(loaded)
    assert parity(native, choice.predictor, loaded, 1e-5) is None
    assert parity(native, choice.predictor, loaded, -1.0) is not None  # impossible tolerance


def test_native_path_and_its_reason(reg: Registry) -> None:
    from sklearn.ensemble import RandomForestRegressor

    X, y = _data()
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(X, y.astype(float))
    # Registered without an ONNX export (whether the registry could export it is its own
    # concern, tested there).
    loaded = reg.load(reg.register("rf", model, sample=X, onnx=False))
    choice = build_predictor(loaded)
    assert choice.predictor.path == "native"
    assert choice.reason.startswith("native:")
    cols = InputValidator(loaded.signature).validate_rows(X.head(10).to_numpy().tolist())
    out = choice.predictor.predict(cols.columns, 10)
    assert out.probabilities is None
    np.testing.assert_allclose(out.predictions, model.predict(X.head(10)))
