"""Model packages: each flavor round-trips, tampering and unsafe content are refused, ONNX."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.base import BaseEstimator, TransformerMixin

from loopline.errors import IntegrityError
from loopline.registry import LoadedModel, Manifest, Registry
from loopline.registry.errors import (
    FlavorUnavailableError,
    ModelInputError,
    ModelPackageError,
    PackageIntegrityError,
    RegistryError,
    UnsafeModelError,
)
from loopline.registry.tables import model_versions

Frame = tuple[pd.DataFrame, pd.Series]


def _inputs(fixture: str, frame: Frame, numeric: Frame) -> pd.DataFrame:
    X = numeric[0] if fixture == "xgb_classifier" else frame[0]
    if fixture == "lgbm_classifier":
        X = X.assign(plan=X["plan"].astype("category"))
    return X


@pytest.mark.parametrize(
    ("fixture", "flavor", "files"),
    [
        ("sk_pipeline", "sklearn", {"model.skops"}),
        ("xgb_classifier", "xgboost", {"model.ubj"}),
        ("lgbm_classifier", "lightgbm", {"model.txt"}),
        ("pipe_xgb", "sklearn+xgboost", {"preprocess.skops", "model.ubj"}),
        ("pipe_lgbm", "sklearn+lightgbm", {"preprocess.skops", "model.txt"}),
    ],
)
def test_each_flavor_round_trips_with_identical_predictions(
    request: pytest.FixtureRequest,
    local_reg: Registry,
    frame: Frame,
    numeric: Frame,
    fixture: str,
    flavor: str,
    files: set[str],
) -> None:
    model = request.getfixturevalue(fixture)
    X = _inputs(fixture, frame, numeric)
    mv = local_reg.register("m", model, sample=X, metrics={"f1": 0.8}, onnx=False)
    assert mv.flavor == flavor

    loaded = local_reg.load("m")
    assert isinstance(loaded, LoadedModel)
    assert (loaded.name, loaded.version, loaded.flavor) == ("m", 1, flavor)
    assert set(loaded.manifest.files) == files
    assert loaded.signature == mv.signature
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    assert loaded.signature.output.classes == tuple(model.classes_.tolist())

    manifest = loaded.manifest
    assert manifest.format == "loopline.model/1"
    assert manifest.metrics == {"f1": 0.8}
    assert manifest.python == ".".join(map(str, sys.version_info[:3]))
    assert "numpy" in manifest.libraries
    for entry in manifest.files.values():
        assert len(entry.sha256) == 64
        assert entry.size > 0


def test_regressors_round_trip(local_reg: Registry, numeric: Frame) -> None:
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn.linear_model import Ridge

    X, _ = numeric
    target = X["income"] * 0.5 + X["age"]
    for name, model in (
        ("ridge", Ridge()),
        ("xgbr", xgb.XGBRegressor(n_estimators=10, n_jobs=1)),
        ("lgbr", lgb.LGBMRegressor(n_estimators=10, verbose=-1, n_jobs=1)),
    ):
        model.fit(X, target)
        local_reg.register(name, model, sample=X)
        loaded = local_reg.load(name)
        assert loaded.signature.output.kind == "regressor"
        assert loaded.classes_ is None
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
        with pytest.raises(RegistryError, match="not a classifier"):
            loaded.predict_proba(X)


def test_signature_orders_columns_and_names_missing_ones(
    local_reg: Registry, sk_pipeline: Any, frame: Frame
) -> None:
    X, _ = frame
    local_reg.register("m", sk_pipeline, sample=X[list(reversed(X.columns))])
    loaded = local_reg.load("m/1")
    assert loaded.signature.columns == list(X.columns)  # the order the model was fitted on
    shuffled = X[["region", "income", "active", "age", "plan"]].assign(extra=1)
    np.testing.assert_array_equal(loaded.predict(shuffled), sk_pipeline.predict(X))
    with pytest.raises(ModelInputError) as info:
        loaded.predict(X.drop(columns=["plan", "age"]))
    assert info.value.missing == ["age", "plan"]
    assert "age, plan" in str(info.value)
    with pytest.raises(ModelInputError, match="DataFrame"):
        loaded.predict(X.to_numpy())
    records = X.head(3).to_dict(orient="records")
    np.testing.assert_array_equal(loaded.predict(records), sk_pipeline.predict(X.head(3)))


def test_models_fitted_on_arrays_get_arrays_in_signature_order(
    local_reg: Registry, numeric: Frame
) -> None:
    import xgboost as xgb
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = numeric
    for name, model in (
        ("lr", LogisticRegression()),
        ("pipe", Pipeline([("s", StandardScaler()), ("m", xgb.XGBClassifier(n_estimators=5))])),
    ):
        model.fit(X.to_numpy(), y)
        local_reg.register(name, model, sample=X)
        loaded = local_reg.load(name)  # warnings are errors here: no feature-name warning
        shuffled = X[["income", "age"]]
        np.testing.assert_array_equal(
            loaded.predict_proba(shuffled), model.predict_proba(X.to_numpy())
        )
    with pytest.raises(ModelPackageError, match="fitted on 2"):
        local_reg.register("lr", LogisticRegression().fit(X.to_numpy(), y), sample=X.assign(c=1))


def test_registration_refuses_what_it_cannot_package(
    local_reg: Registry, frame: Frame, sk_pipeline: Any
) -> None:
    from sklearn.linear_model import LogisticRegression

    X, _ = frame
    with pytest.raises(ModelPackageError, match="not fitted"):
        local_reg.register("m", LogisticRegression(), sample=X)
    with pytest.raises(ModelPackageError, match="Cannot package"):
        local_reg.register("m", object(), sample=X)
    with pytest.raises(ModelPackageError, match="sample"):
        local_reg.register("m", sk_pipeline)
    with pytest.raises(ModelPackageError, match="lacks columns"):
        local_reg.register("m", sk_pipeline, sample=X.drop(columns=["age"]))
    assert local_reg.list_models() == []


def _flip_byte(reg: Registry, digest: str) -> None:
    key = reg.stores.cas.key_for(digest)
    data = bytearray(reg.stores.objects.get(key))
    data[len(data) // 2] ^= 0x01
    reg.stores.objects.put(key, bytes(data))


def test_a_modified_package_file_is_refused_naming_the_file(
    local_reg: Registry, sk_pipeline: Any, frame: Frame
) -> None:
    mv = local_reg.register("m", sk_pipeline, sample=frame[0])
    entry = local_reg.manifest("m").files["model.skops"]
    _flip_byte(local_reg, entry.sha256)
    with pytest.raises(PackageIntegrityError) as info:
        local_reg.load(mv)
    err = info.value
    assert err.file == "model.skops"
    assert err.expected == entry.sha256
    assert err.actual != entry.sha256
    assert len(err.actual) == 64
    assert "'model.skops'" in str(err)
    assert entry.sha256 in str(err)
    assert isinstance(err, IntegrityError)  # the CLI exits 4, like any failed verification


def test_a_tampered_manifest_is_refused(
    local_reg: Registry, xgb_classifier: Any, numeric: Frame
) -> None:
    X, _ = numeric
    first = local_reg.register("m", xgb_classifier, sample=X)
    _flip_byte(local_reg, first.manifest_digest)
    with pytest.raises(PackageIntegrityError) as info:
        local_reg.load("m/1")
    assert info.value.file == "manifest.json"
    assert info.value.expected == first.manifest_digest

    # An intact manifest of another version, put on this version's row, is refused too.
    local_reg.register("other", xgb_classifier, sample=X)
    other = local_reg.get("other")
    with local_reg.stores.db.write() as conn:
        conn.execute(
            sa.update(model_versions)
            .where(model_versions.c.model == "m")
            .values(manifest_digest=other.manifest_digest)
        )
    with pytest.raises(PackageIntegrityError, match=r"manifest\.json"):
        local_reg.load("m/1")


class Doubler(TransformerMixin, BaseEstimator):
    """A custom transformer: its type lives in this test module, not in sklearn."""

    def fit(self, X: Any, y: Any = None) -> Doubler:
        self.fitted_ = True
        return self

    def transform(self, X: Any) -> Any:
        return np.asarray(X) * 2


def test_untrusted_types_in_a_skops_file_are_refused(local_reg: Registry, numeric: Frame) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    X, y = numeric
    custom = Pipeline([("double", Doubler()), ("clf", LogisticRegression())]).fit(X, y)
    with pytest.raises(UnsafeModelError) as at_register:
        local_reg.register("m", custom, sample=X)
    assert any(t.endswith("Doubler") for t in at_register.value.types)

    # Someone with write access to both stores swaps in a consistent package holding it:
    # every hash matches, and loading still refuses the type.
    safe = Pipeline([("clf", LogisticRegression())]).fit(X, y)
    local_reg.register("m", safe, sample=X)
    manifest = local_reg.manifest("m/1")
    evil = sio.dumps(custom)
    digest = local_reg.stores.cas.put(evil)
    data = manifest.to_dict()
    data["files"]["model.skops"] = {"sha256": digest, "size": len(evil)}
    swapped = local_reg.stores.cas.put(Manifest.from_dict(data).to_bytes())
    with local_reg.stores.db.write() as conn:
        conn.execute(sa.update(model_versions).values(manifest_digest=swapped))
    with pytest.raises(UnsafeModelError) as at_load:
        local_reg.load("m/1")
    assert any(t.endswith("Doubler") for t in at_load.value.types)
    assert "model.skops" in str(at_load.value)


def test_a_missing_flavor_library_names_the_package(
    local_reg: Registry,
    monkeypatch: pytest.MonkeyPatch,
    xgb_classifier: Any,
    lgbm_classifier: Any,
    sk_pipeline: Any,
    frame: Frame,
    numeric: Frame,
) -> None:
    local_reg.register("x", xgb_classifier, sample=numeric[0])
    local_reg.register("l", lgbm_classifier, sample=frame[0])
    local_reg.register("s", sk_pipeline, sample=frame[0])
    for module, ref, package in (
        ("xgboost", "x", "xgboost"),
        ("lightgbm", "l", "lightgbm"),
        ("skops", "s", "skops"),
    ):
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, module, None)
            if module == "skops":
                patch.setitem(sys.modules, "skops.io", None)
            with pytest.raises(FlavorUnavailableError) as info:
                local_reg.load(ref)
        assert info.value.package == package
        assert f"pip install {package}" in str(info.value)


def test_onnx_export_is_kept_when_it_matches(
    local_reg: Registry, numeric_pipeline: Any, numeric: Frame, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, _ = numeric
    local_reg.register("m", numeric_pipeline, sample=X, onnx=True, onnx_eval=X.head(150))
    loaded = local_reg.load("m")
    onnx = loaded.manifest.onnx
    assert onnx is not None
    assert onnx["status"] == "kept"
    assert onnx["parity"]["rows_checked"] == 150
    assert 0 <= onnx["parity"]["max_abs_diff"] <= 1e-5
    assert onnx["opset"]["ai.onnx"] >= 9
    assert [i["name"] for i in onnx["inputs"]] == ["age", "income"]
    assert "model.onnx" in loaded.manifest.files
    assert "onnxruntime" in loaded.manifest.libraries

    session = loaded.onnx_session()
    assert session is not None
    np.testing.assert_allclose(
        session.predict_proba(X), numeric_pipeline.predict_proba(X), atol=1e-5
    )
    fast = loaded.fast()
    assert fast is not loaded
    reordered = X[["income", "age"]]
    np.testing.assert_array_equal(fast.predict(reordered), numeric_pipeline.predict(X))

    # Without onnxruntime the fast path falls back to the native model.
    fresh = local_reg.load("m")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert fresh.fast() is fresh
    with pytest.raises(FlavorUnavailableError, match="pip install onnxruntime"):
        fresh.onnx_session()


def test_onnx_is_omitted_with_the_reason_when_it_fails(
    local_reg: Registry, numeric_pipeline: Any, xgb_classifier: Any, numeric: Frame
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y = numeric
    local_reg.register("strict", numeric_pipeline, sample=X, onnx=True, onnx_tolerance=1e-15)
    strict = local_reg.load("strict")
    assert strict.manifest.onnx is not None
    assert strict.manifest.onnx["status"] == "omitted"
    assert "parity check failed" in strict.manifest.onnx["reason"]
    assert "model.onnx" not in strict.manifest.files
    assert strict.onnx_session() is None
    assert strict.fast() is strict

    odd = Pipeline([("log", FunctionTransformer(np.log1p)), ("clf", LogisticRegression())])
    odd.fit(X, y)
    local_reg.register("odd", odd, sample=X, onnx=True)
    onnx = local_reg.manifest("odd").onnx
    assert onnx is not None
    assert onnx["status"] == "omitted"
    assert onnx["reason"].startswith("conversion failed")
    np.testing.assert_array_equal(local_reg.load("odd").predict(X), odd.predict(X))

    local_reg.register("x", xgb_classifier, sample=X, onnx=True)
    onnx = local_reg.manifest("x").onnx
    assert onnx is not None
    assert "native library" in onnx["reason"]


def test_mixed_pipeline_exports_onnx_with_one_input_per_column(
    local_reg: Registry, sk_pipeline: Any, frame: Frame
) -> None:
    X, _ = frame
    local_reg.register("m", sk_pipeline, sample=X, onnx=True)
    loaded = local_reg.load("m")
    assert loaded.manifest.has_onnx, loaded.manifest.onnx
    types = {i["name"]: i["type"] for i in loaded.manifest.onnx["inputs"]}  # type: ignore[index]
    # integers go in as floats: mixed int64/float inputs break ColumnTransformer export
    assert types == {
        "age": "float",
        "income": "float",
        "plan": "string",
        "active": "float",
        "region": "string",
    }
    fast = loaded.fast()
    np.testing.assert_allclose(fast.predict_proba(X), sk_pipeline.predict_proba(X), atol=1e-5)


def test_manifest_is_canonical_json(
    local_reg: Registry, xgb_classifier: Any, numeric: Frame
) -> None:
    mv = local_reg.register("m", xgb_classifier, sample=numeric[0])
    raw = local_reg.stores.cas.get(mv.manifest_digest)
    data = json.loads(raw)
    assert raw == json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    assert data["name"] == "m"
    assert data["version"] == 1
    assert data["flavor_info"]["class"] == "XGBClassifier"
    assert Manifest.from_dict(data).to_bytes() == raw


def test_no_pickle_anywhere_in_the_registry() -> None:
    source = Path(__file__).parents[3] / "src" / "loopline" / "registry"
    for path in source.glob("*.py"):
        text = path.read_text()
        for banned in ("pickle.load", "joblib.load", "allow_pickle=True", "cloudpickle"):
            assert banned not in text, f"{banned} in {path.name}"


def test_importing_the_registry_loads_no_heavy_library() -> None:
    heavy = ["pandas", "sklearn", "numpy", "skops", "xgboost", "lightgbm", "onnx", "onnxruntime"]
    code = (
        "import sys, loopline.registry\n"
        f"print([m for m in {heavy!r} + ['optuna', 'loopline.train', 'loopline.evaluate'] "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_bare_estimator_on_a_frame_exports_onnx_with_parity(local_reg: Registry) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    x, y = make_classification(n_samples=400, n_features=6, random_state=0)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(6)])
    forest = RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0).fit(frame, y)
    local_reg.register("forest", forest, sample=frame, onnx=True)
    onnx = local_reg.manifest("forest").onnx
    assert onnx is not None
    assert onnx["status"] == "kept", onnx
    assert onnx["parity"]["max_abs_diff"] <= 1e-5
    fast = local_reg.load("forest").fast()
    np.testing.assert_allclose(fast.predict_proba(frame), forest.predict_proba(frame), atol=1e-5)
