"""The ModelFlavor contract, run against every flavor: what it saves is bytes in safe
formats that load back into a model with the same predictions, its libraries are named,
and a corrupt or missing file is a loopline error, never a crash or a pickle."""

from __future__ import annotations

import json
import pickletools
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopline.errors import LooplineError
from loopline.registry.flavors import FLAVORS, ModelFlavor, detect_flavor, require_flavor

Frame = tuple[pd.DataFrame, pd.Series]


def _frame() -> Frame:
    rng = np.random.default_rng(11)
    n = 300
    X = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "income": rng.normal(50.0, 12.0, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
        }
    )
    y = pd.Series(((X["income"] + (X["plan"] == "pro") * 8) > 52).astype(int))
    return X, y


def _pre() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer(
        [("num", StandardScaler(), ["age", "income"]), ("cat", OneHotEncoder(), ["plan"])]
    )


def _sklearn() -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    return Pipeline([("pre", _pre()), ("m", RandomForestClassifier(5, random_state=0))])


def _xgboost() -> Any:
    import xgboost as xgb

    return xgb.XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1)


def _lightgbm() -> Any:
    import lightgbm as lgb

    return lgb.LGBMClassifier(n_estimators=5, num_leaves=4, verbose=-1, n_jobs=1)


def _pipe(final: Callable[[], Any]) -> Callable[[], Any]:
    def make() -> Any:
        from sklearn.pipeline import Pipeline

        return Pipeline([("pre", _pre()), ("m", final())])

    return make


CASES: dict[str, tuple[Callable[[], Any], bool]] = {
    # flavor -> (model factory, numeric inputs only)
    "sklearn": (_sklearn, False),
    "xgboost": (_xgboost, True),
    "lightgbm": (_lightgbm, True),
    "sklearn+xgboost": (_pipe(_xgboost), False),
    "sklearn+lightgbm": (_pipe(_lightgbm), False),
}


@pytest.fixture(params=sorted(FLAVORS))
def case(request: pytest.FixtureRequest) -> tuple[ModelFlavor, Any, pd.DataFrame]:
    name = request.param
    assert name in CASES, f"flavor {name!r} has no contract case"
    factory, numeric = CASES[name]
    X, y = _frame()
    if numeric:
        X = X[["age", "income"]]
    model = factory().fit(X, y)
    return FLAVORS[name], model, X


def test_the_flavor_is_detected_and_its_libraries_import(
    case: tuple[ModelFlavor, Any, pd.DataFrame],
) -> None:
    flavor, model, _ = case
    assert detect_flavor(model).name == flavor.name
    require_flavor(flavor)  # every library it loads with is importable here


def test_saved_files_are_bytes_in_safe_formats_and_info_is_json(
    case: tuple[ModelFlavor, Any, pd.DataFrame],
) -> None:
    flavor, model, _ = case
    packed = flavor.save(model)
    assert packed.files
    for name, data in packed.files.items():
        assert isinstance(data, bytes)
        assert data, name
        assert not _looks_like_pickle(data), f"{name} is a pickle"
    json.dumps(packed.info)  # the manifest stores it as JSON
    assert all(isinstance(lib, str) for lib in packed.libraries)


def test_a_loaded_model_predicts_exactly_like_the_saved_one(
    case: tuple[ModelFlavor, Any, pd.DataFrame],
) -> None:
    flavor, model, X = case
    packed = flavor.save(model)
    loaded = flavor.load(packed.files, packed.info, "m/1")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=1e-12)
    # What was loaded saves back to the same files: a pipeline step output round-trips.
    again = flavor.save(loaded)
    assert set(again.files) == set(packed.files)


def test_a_corrupt_file_is_a_loopline_error(case: tuple[ModelFlavor, Any, pd.DataFrame]) -> None:
    flavor, model, _ = case
    packed = flavor.save(model)
    for name, data in packed.files.items():
        broken = dict(packed.files)
        broken[name] = data[: len(data) // 3] + b"\x00garbage"
        with pytest.raises(LooplineError):
            flavor.load(broken, packed.info, "m/1")


def _looks_like_pickle(data: bytes) -> bool:
    if not data.startswith(b"\x80"):
        return False
    try:
        for _ in pickletools.genops(data):
            pass
    except Exception:
        return False
    return True


FUZZ = r"""
import random, sys
import numpy as np, pandas as pd, lightgbm as lgb
from loopline.errors import LooplineError
from loopline.registry.flavors import FLAVORS

rng = np.random.default_rng(5)
X = pd.DataFrame({"a": rng.random(400), "c": pd.Categorical(rng.choice(list("xyz"), 400))})
y = (X["a"] > 0.5).astype(int)
model = lgb.LGBMClassifier(n_estimators=8, num_leaves=6, verbose=-1, n_jobs=1).fit(X, y)
flavor = FLAVORS["lightgbm"]
packed = flavor.save(model)
data = packed.files[flavor.file]
pick = random.Random(int(sys.argv[1]))
refused = loaded = 0
for _ in range(int(sys.argv[2])):
    pos = pick.randrange(len(data))
    kind = pick.choice(["flip", "cut", "insert"])
    if kind == "flip":
        bad = data[:pos] + bytes([pick.randrange(32, 127)]) + data[pos + 1:]
    elif kind == "cut":
        bad = data[:pos]
    else:
        bad = data[:pos] + b"9" + data[pos:]
    try:
        flavor.load({flavor.file: bad}, packed.info, "m/1")
        loaded += 1
    except LooplineError:
        refused += 1
print("survived", refused, loaded)
"""


@pytest.mark.slow
def test_a_damaged_lightgbm_file_never_kills_the_process() -> None:
    """LightGBM aborts the process on a malformed model string; every damaged file must be
    refused (or load) without that. Run in a child process, so an abort fails the test."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", FUZZ, "7", "400"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    refused, loaded = map(int, proc.stdout.split()[1:3])
    assert refused + loaded == 400
    assert refused > 200  # most damage is caught by the structure check
