"""The ONNX fast path on real data: tried by default, kept for column names ONNX cannot
name as they are, judged relative to the scale of the outputs, and said in one line."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopline.registry import Registry
from loopline.registry.onnx_runtime import OnnxModel, input_names, serving_path


def _frame(n: int = 300) -> tuple[pd.DataFrame, Any]:
    rng = np.random.default_rng(3)
    X = pd.DataFrame(
        {
            "mean radius": rng.normal(14, 3, n),
            "od280/od315 of wines": rng.normal(2.5, 0.7, n),
            "a_b": rng.normal(size=n),
            "a b": rng.normal(size=n),
        }
    )
    return X, (X["mean radius"] + 2 * X["a b"] > 14).astype(int)


def _pipeline(final: Any) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), final)


def test_register_exports_by_default_and_maps_names_onnx_cannot_take(local_reg: Registry) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = _frame()
    model = _pipeline(LogisticRegression()).fit(X, y)
    mv = local_reg.register("names", model, sample=X)
    info = local_reg.manifest(mv).onnx
    assert info is not None
    assert info["status"] == "kept", info
    mapping = input_names(info)
    assert mapping["mean radius"] == "mean_radius"
    assert mapping["od280/od315 of wines"] == "od280_od315_of_wines"
    assert len(set(mapping.values())) == 4  # "a b" and "a_b" get distinct inputs
    loaded = local_reg.load(mv)
    session = loaded.onnx_session()
    assert session is not None
    rows = X.head(50)
    np.testing.assert_allclose(
        session.predict_proba(rows), model.predict_proba(rows), rtol=0, atol=1e-5
    )
    # A caller that feeds tensors by column name (the server's batch path) gets the same.
    feeds = {c: rows[c].to_numpy(dtype=np.float32).reshape(-1, 1) for c in X.columns}
    proba = np.asarray(session.session.run(None, feeds)[1])
    np.testing.assert_allclose(proba, model.predict_proba(rows), rtol=0, atol=1e-5)
    assert local_reg.serving_path(mv).startswith("serves with ONNX Runtime, parity ")


def test_a_regressor_with_large_outputs_keeps_its_export(local_reg: Registry) -> None:
    from sklearn.linear_model import Ridge

    X, _ = _frame()
    y = 150 + 60 * X["mean radius"] + 30 * X["a b"]  # targets in the hundreds
    mv = local_reg.register("big", _pipeline(Ridge()).fit(X, y), sample=X)
    info = local_reg.manifest(mv).onnx
    assert info is not None
    assert info["status"] == "kept", info["reason"]
    parity = info["parity"]
    assert parity["scale"] > 100
    assert parity["relative_diff"] == pytest.approx(parity["max_abs_diff"] / parity["scale"])


def test_onnx_false_skips_the_export_and_the_reason_is_said(local_reg: Registry) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = _frame()
    mv = local_reg.register("plain", LogisticRegression().fit(X, y), sample=X, onnx=False)
    assert local_reg.manifest(mv).onnx is None
    assert local_reg.serving_path(mv) == (
        "serves with the native model (the package has no ONNX export)"
    )
    assert serving_path({"status": "omitted", "reason": "conversion failed: X"}) == (
        "serves with the native model (conversion failed: X)"
    )


def test_a_package_exported_without_a_mapping_feeds_columns_as_named() -> None:
    """Manifests written before the mapping existed name their inputs by column: identity."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x1": rng.normal(size=80), "x2": rng.normal(size=80)})
    y = (X["x1"] > 0).astype(int)
    model = _pipeline(LogisticRegression()).fit(X.to_numpy(), y)
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    named = Pipeline(
        [("columns", ColumnTransformer([("c", "passthrough", ["x1", "x2"])])), ("m", model)]
    ).fit(X, y)
    onx = convert_sklearn(
        named,
        initial_types=[(c, FloatTensorType([None, 1])) for c in ("x1", "x2")],
        options={id(model.steps[-1][1]): {"zipmap": False}},
    )
    info = {"inputs": [{"name": "x1", "type": "float"}, {"name": "x2", "type": "float"}]}
    runner = OnnxModel(onx.SerializeToString(), info)
    assert runner.input_names == {"x1": "x1", "x2": "x2"}
    assert runner.session is runner._raw  # nothing to rename: the plain session
    np.testing.assert_allclose(
        runner.predict_proba(X.head(5)), named.predict_proba(X.head(5)), atol=1e-5
    )
