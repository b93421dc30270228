"""The skops trust rule: an exact allow-list, checked at registration and at load.

The attack these tests replay: a skops file whose tree names a callable that skops calls
while rebuilding (``ConstructorFromReduceNode`` calls ``module.name(*content)``). Trusting
by module prefix let ``numpy.testing._private.utils.runstring`` (an ``exec``) through.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from loopline.cli.main import exit_code_for
from loopline.errors import IntegrityError
from loopline.registry import Manifest, Registry
from loopline.registry.errors import MalformedPackageError, UnsafeModelError
from loopline.registry.flavors import skops_dumps, skops_loads
from loopline.registry.tables import model_versions
from loopline.registry.trust import FORBIDDEN_PREFIXES, TRUSTED_TYPES

Frame = tuple[pd.DataFrame, pd.Series]

#: (module, name) of callables that run code, read or write files, or reach anything.
DANGEROUS = [
    ("numpy.testing._private.utils", "runstring"),
    ("numpy.testing", "runstring"),
    ("numpy.testing._private.utils", "assert_"),
    ("numpy.f2py", "run_main"),
    ("numpy.f2py.f2py2e", "run_main"),
    ("numpy.distutils.exec_command", "exec_command"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "getattr"),
    ("builtins", "open"),
    ("builtins", "__import__"),
    ("os", "system"),
    ("posix", "system"),
    ("os", "popen"),
    ("subprocess", "Popen"),
    ("subprocess", "run"),
    ("subprocess", "check_output"),
    ("subprocess", "getoutput"),
    ("importlib", "import_module"),
    ("importlib._bootstrap", "_gcd_import"),
    ("runpy", "run_path"),
    ("shutil", "rmtree"),
    ("sklearn.utils._testing", "assert_run_python_script_without_output"),
]


def _fitted() -> Any:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))


def _craft(module: str, name: str, loader: str, args: tuple[Any, ...]) -> bytes:
    """A real skops file of a fitted model with one extra attribute node rewritten to
    name ``module.name`` under ``loader`` (with ``args`` as the call's arguments)."""
    import skops.io as sio

    model = _fitted()
    model.extra_ = args
    data = sio.dumps(model)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    schema = json.loads(members["schema.json"])
    node = schema["content"]["content"]["extra_"]
    schema["content"]["content"]["extra_"] = {
        "__class__": name,
        "__module__": module,
        "__loader__": loader,
        "content": node,
        "__id__": 1,
    }
    members["schema.json"] = json.dumps(schema).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for member, content in members.items():
            zf.writestr(member, content)
    return out.getvalue()


@pytest.mark.parametrize(("module", "name"), DANGEROUS)
@pytest.mark.parametrize("loader", ["ConstructorFromReduceNode", "TypeNode", "FunctionNode"])
def test_no_dangerous_callable_loads_from_a_skops_file(
    module: str, name: str, loader: str, tmp_path: Path
) -> None:
    canary = tmp_path / "pwned"
    code = f"import pathlib; pathlib.Path({str(canary)!r}).write_text('x')"
    data = _craft(module, name, loader, (code, {}))
    with pytest.raises(UnsafeModelError) as err:
        skops_loads(data, "sklearn", ref="m/1", file="model.skops")
    assert f"{module}.{name}" in err.value.types
    assert not canary.exists()


def test_runstring_would_run_code_if_trusted(tmp_path: Path) -> None:
    """The crafted file is a real exploit: skops runs it once the type is trusted, which
    is what a trust-by-prefix rule did for anything under ``numpy.``."""
    import skops.io as sio

    canary = tmp_path / "pwned"
    data = _craft(
        "numpy.testing._private.utils",
        "runstring",
        "ConstructorFromReduceNode",
        (f"import pathlib; pathlib.Path({str(canary)!r}).write_text('x')", {}),
    )
    sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    assert canary.exists()


@pytest.mark.parametrize(
    "value",
    [
        eval,
        exec,
        getattr,
        os.system,
        subprocess.Popen,
        subprocess.check_output,
        __import__("importlib").import_module,
        __import__("numpy.testing", fromlist=["x"]).assert_,
    ],
    ids=lambda v: getattr(v, "__qualname__", str(v)),
)
def test_registration_refuses_an_estimator_holding_a_dangerous_callable(value: Any) -> None:
    model = _fitted()
    model.extra_ = value
    with pytest.raises(UnsafeModelError) as err:
        skops_dumps(model, "sklearn")
    assert err.value.types


def test_the_allow_list_is_exact_names_outside_every_forbidden_module() -> None:
    assert TRUSTED_TYPES
    for name in TRUSTED_TYPES:
        assert not name.endswith("."), name
        assert "*" not in name, name
        assert not name.startswith(FORBIDDEN_PREFIXES), name
        assert name.split(".", 1)[0] in {"numpy", "scipy", "sklearn", "functools"}, name


def _estimators(frame: Frame) -> list[tuple[str, Any, pd.DataFrame]]:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        IsolationForest,
        RandomForestClassifier,
    )
    from sklearn.feature_selection import SelectKBest
    from sklearn.gaussian_process import GaussianProcessClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, _ = frame
    num = X[["age", "income"]].astype(float)
    pre = ColumnTransformer(
        [
            (
                "num",
                Pipeline([("imp", SimpleImputer()), ("sc", StandardScaler())]),
                ["age", "income"],
            ),
            (
                "cat",
                Pipeline(
                    [
                        ("imp", SimpleImputer(strategy="most_frequent")),
                        ("oh", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                ["plan"],
            ),
        ]
    )
    return [
        ("forest", RandomForestClassifier(n_estimators=5, random_state=0), num),
        ("gbm", GradientBoostingClassifier(n_estimators=5, random_state=0), num),
        ("hgb", HistGradientBoostingClassifier(max_iter=5, random_state=0), num),
        ("calibrated", CalibratedClassifierCV(LogisticRegression()), num),
        ("knn", KNeighborsClassifier(), num),
        ("gp", GaussianProcessClassifier(random_state=0), num.iloc[:80]),
        ("mlp", MLPClassifier(hidden_layer_sizes=(4,), max_iter=50, random_state=0), num),
        ("select", Pipeline([("k", SelectKBest(k=1)), ("m", LogisticRegression())]), num),
        ("iforest", IsolationForest(n_estimators=5, random_state=0), num),
        (
            "mixed",
            Pipeline([("pre", pre), ("m", LogisticRegression())]),
            X[["age", "income", "plan"]],
        ),
    ]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_common_estimators_still_register_and_load(local_reg: Registry, frame: Frame) -> None:
    _, y = frame
    for name, model, X in _estimators(frame):
        target = y.iloc[: len(X)]
        model.fit(X) if name == "iforest" else model.fit(X, target)
        mv = local_reg.register(name, model, sample=X)
        loaded = local_reg.load(mv.ref)
        np.testing.assert_allclose(
            np.asarray(loaded.predict(X), dtype=float),
            np.asarray(model.predict(X), dtype=float),
            err_msg=name,
        )


def test_a_pickle_renamed_model_skops_is_an_integrity_error(
    local_reg: Registry, numeric: Frame
) -> None:
    X, y = numeric
    from sklearn.linear_model import LogisticRegression

    local_reg.register("m", LogisticRegression().fit(X, y), sample=X)
    manifest = local_reg.manifest("m/1")
    disguised = pickle.dumps({"not": "a skops file"})
    digest = local_reg.stores.cas.put(disguised)
    data = manifest.to_dict()
    data["files"]["model.skops"] = {"sha256": digest, "size": len(disguised)}
    swapped = local_reg.stores.cas.put(Manifest.from_dict(data).to_bytes())
    with local_reg.stores.db.write() as conn:
        conn.execute(sa.update(model_versions).values(manifest_digest=swapped))
    with pytest.raises(MalformedPackageError) as err:
        local_reg.load("m/1")
    assert isinstance(err.value, IntegrityError)
    assert "model.skops" in str(err.value)
    assert exit_code_for(err.value) == 4
