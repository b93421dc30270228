"""The model server never imports the training stack, at run time either: not when its
modules are imported, not when an app is created, and not when it loads a model and
answers a prediction (import-linter checks the static imports; this checks what really
gets imported, in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN = ("loopline.train", "loopline.pipeline", "optuna", "skl2onnx", "lightgbm", "xgboost")

_PRELUDE = """
import json, sys
from pathlib import Path

FORBIDDEN = {forbidden!r}


def imported():
    return sorted(
        m for m in sys.modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)
    )


import loopline.serve.app
import loopline.serve.server
from loopline.config import settings_for
from loopline.serve.app import create_app
from loopline.serve.settings import ServeSettings

project = Path(sys.argv[1])
settings = settings_for(
    project,
    environ={{
        "LOOPLINE_METADATA_URL": f"sqlite:///{{project / 'meta.db'}}",
        "LOOPLINE_ARTIFACTS_URL": str(project / "artifacts"),
    }},
)
app = create_app(settings, ServeSettings(log_predictions=False), model="churn@live")
report = {{"created": imported()}}
"""

_SERVE = """
import asyncio

import httpx


async def main():
    state = app.state.loopline
    async with state.lifespan(app):
        while not state.is_ready():
            assert state.failure is None, state.failure
            await asyncio.sleep(0.02)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
            r = await client.post("/predict", json=[{"age": 41, "income": 52.5, "plan": "pro"}])
            report["status"] = r.status_code


asyncio.run(main())
report["served"] = imported()
"""

_END = """
print(json.dumps(report))
"""


def _run(script: str, project: Path) -> dict[str, object]:
    code = _PRELUDE.format(forbidden=FORBIDDEN) + script + _END
    proc = subprocess.run(
        [sys.executable, "-c", code, str(project)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def test_importing_the_server_and_creating_an_app_import_no_training_stack(
    tmp_path: Path,
) -> None:
    report = _run("", tmp_path)
    assert report == {"created": []}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """``churn`` v1 (a scikit-learn pipeline, alias live) on SQLite."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from loopline.config import settings_for
    from loopline.registry import Registry
    from loopline.store.db import migrate
    from loopline.store.db.engine import Database
    from loopline.store.stores import Stores

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
    rng = np.random.default_rng(1)
    X = pd.DataFrame(
        {
            "age": rng.integers(18, 80, 80),
            "income": rng.normal(50.0, 10.0, 80),
            "plan": rng.choice(["basic", "pro"], 80),
        }
    )
    y = (X["income"] > 50).astype(int)
    pre = ColumnTransformer([("cat", OneHotEncoder(), ["plan"])], remainder="passthrough")
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=300))]).fit(X, y)
    with Stores.open(settings) as stores:
        reg = Registry(stores)
        reg.register("churn", model, sample=X)
        reg.set_alias("churn", "live", 1)
    return tmp_path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_loading_a_model_and_answering_import_no_training_stack(project: Path) -> None:
    report = _run(_SERVE, project)
    assert report == {"created": [], "status": 200, "served": []}
