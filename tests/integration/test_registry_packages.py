"""The registry on shared infrastructure: PostgreSQL + S3 (moto), and concurrent registration."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopline.config import S3Settings, settings_for
from loopline.registry import Registry
from loopline.registry.errors import PackageIntegrityError
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores


def _frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(3)
    n = 300
    X = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50.0, 12.0, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "region": pd.Categorical(rng.choice(["north", "south"], n)),
        }
    )
    y = pd.Series((X["income"] + rng.normal(0, 6, n) > 50).astype(int))
    return X, y


def _models(X: pd.DataFrame, y: pd.Series) -> dict[str, Any]:
    import lightgbm as lgb
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def pre() -> ColumnTransformer:
        return ColumnTransformer(
            [
                ("num", StandardScaler(), ["age", "income"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
            ]
        )

    return {
        "sk": Pipeline([("pre", pre()), ("clf", LogisticRegression(max_iter=300))]).fit(X, y),
        "lgbm": Pipeline(
            [("pre", pre()), ("m", lgb.LGBMClassifier(n_estimators=10, verbose=-1, n_jobs=1))]
        ).fit(X, y),
    }


def _open(tmp_path: Path, metadata_url: str, artifacts_url: str, s3: S3Settings) -> Stores:
    settings = settings_for(
        tmp_path,
        environ={"LOOPLINE_METADATA_URL": metadata_url, "LOOPLINE_ARTIFACTS_URL": artifacts_url},
    ).with_overrides(s3=s3)
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    return Stores.open(settings)


@pytest.mark.s3
@pytest.mark.postgres
def test_a_model_registered_on_postgres_and_s3_loads_back_identically(
    tmp_path: Path, postgres_url: str, s3_url: str, s3_settings: S3Settings
) -> None:
    X, y = _frame()
    models = _models(X, y)
    with _open(tmp_path, postgres_url, s3_url, s3_settings) as stores:
        reg = Registry(stores)
        for name, model in models.items():
            reg.register(name, model, sample=X, onnx=name == "sk")
        reg.set_alias("sk", "production", 1)

    # A fresh process-like handle: nothing cached, everything read back from PG + S3.
    with _open(tmp_path, postgres_url, s3_url, s3_settings) as stores:
        reg = Registry(stores)
        sk = reg.load("sk@production")
        lgbm = reg.load("lgbm")
        assert stores.objects.url.startswith("s3://")
        assert sk.manifest.has_onnx
        np.testing.assert_array_equal(sk.predict_proba(X), models["sk"].predict_proba(X))
        np.testing.assert_array_equal(lgbm.predict_proba(X), models["lgbm"].predict_proba(X))
        np.testing.assert_allclose(
            sk.fast().predict_proba(X), models["sk"].predict_proba(X), atol=1e-5
        )

        entry = lgbm.manifest.files["model.txt"]
        key = stores.cas.key_for(entry.sha256)
        data = bytearray(stores.objects.get(key))
        data[10] ^= 0x20
        stores.objects.put(key, bytes(data))
        with pytest.raises(PackageIntegrityError) as info:
            reg.load("lgbm/1")
        assert info.value.file == "model.txt"


LAUNCHER = textwrap.dedent(
    """
    # Imports once, then forks the workers: four real processes racing on the database,
    # without paying four interpreter start-ups (this process has no threads to fork).
    import os, sys, time, traceback
    from pathlib import Path
    import numpy as np, pandas as pd
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from loopline.config import settings_for
    from loopline.registry import Registry
    from loopline.store.stores import Stores

    url, artifacts, workers, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    model = LogisticRegression().fit(X, (X["a"] > 0).astype(int))
    settings = settings_for(
        Path(artifacts).parent,
        environ={"LOOPLINE_METADATA_URL": url, "LOOPLINE_ARTIFACTS_URL": artifacts},
    )
    go_read, go_write = os.pipe()
    children = []
    for worker in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(go_write)
                with Stores.open(settings) as stores:  # connections of this process only
                    reg = Registry(stores)
                    os.read(go_read, 1)  # every worker waits here, then all start at once
                    for i in range(n):
                        reg.register("shared", model, sample=X, run_id=f"w{worker}-{i}")
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    time.sleep(0.3)  # let every child open its stores
    os.write(go_write, b"x" * workers)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    sys.exit(0 if codes == [0] * workers else f"worker exit codes: {codes}")
    """
)


def test_concurrent_registration_numbers_versions_without_gaps_or_duplicates(
    tmp_path: Path, metadata_url: str
) -> None:
    workers, per_worker = 4, 5
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    with Database(metadata_url, create=True) as db:
        migrate.upgrade(db)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LAUNCHER,
            metadata_url,
            str(artifacts),
            str(workers),
            str(per_worker),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr

    settings = settings_for(
        tmp_path,
        environ={"LOOPLINE_METADATA_URL": metadata_url, "LOOPLINE_ARTIFACTS_URL": str(artifacts)},
    )
    with Stores.open(settings) as stores:
        reg = Registry(stores)
        versions = reg.versions("shared")
        total = workers * per_worker
        assert [v.version for v in versions] == list(range(1, total + 1))
        assert sorted(v.run_id or "" for v in versions) == sorted(
            f"w{k}-{i}" for k in range(workers) for i in range(per_worker)
        )
        for mv in (versions[0], versions[-1]):
            assert reg.manifest(mv).version == mv.version
        assert reg.load(versions[-1]).version == total
