"""The web UI over PostgreSQL and S3: the runs table pages, sorts and filters in
PostgreSQL, and an artifact stored in S3 downloads and previews."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from starlette.testclient import TestClient

from loopline.config import S3Settings, settings_for
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores
from loopline.tracking import Tracker
from loopline.ui.app import create_app


@pytest.mark.s3
@pytest.mark.postgres
def test_runs_and_artifacts_on_postgres_and_s3(
    tmp_path: Path, postgres_url: str, s3_url: str, s3_settings: S3Settings
) -> None:
    settings = settings_for(
        tmp_path,
        environ={"LOOPLINE_METADATA_URL": postgres_url, "LOOPLINE_ARTIFACTS_URL": s3_url},
    ).with_overrides(s3=s3_settings)
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    with Stores.open(settings) as stores:
        tracker = Tracker(stores)
        for i in range(30):
            with tracker.start_run(
                "pg",
                f"run-{i}",
                params={"model": "rf" if i % 3 else "lr", "C": i / 10},
                capture_git=False,
            ) as run:
                run.log_metric("f1", i / 30)
                if i == 0:
                    buf = io.BytesIO()
                    pd.DataFrame({"a": range(40)}).to_parquet(buf)
                    run.log_artifact("rows.parquet", buf.getvalue())
                    first = run.id
        client = TestClient(create_app(settings, stores, auth=False))
        page = client.get(
            "/api/runs",
            params={
                "filter": "params.model = rf\nparams.C > 0.5",
                "sort": "-metrics.f1",
                "per_page": 5,
            },
        ).json()
        expected = tracker.search_runs(
            filters=["params.model = rf", "params.C > 0.5"], order_by=["-metrics.f1"], limit=5
        )
        assert page["total"] == tracker.count_runs(filters=["params.model = rf", "params.C > 0.5"])
        assert [r["id"] for r in page["runs"]] == [r.id for r in expected]
        second = client.get("/api/runs?per_page=10&page=3&sort=metrics.f1").json()
        assert [r["metrics"]["f1"] for r in second["runs"]] == [i / 30 for i in range(20, 30)]
        preview = client.get(f"/api/runs/{first}/preview/rows.parquet").json()
        assert preview["total_rows"] == 40
        download = client.get(f"/runs/{first}/artifacts/rows.parquet")
        assert download.status_code == 200
        assert download.content[:4] == b"PAR1"
        assert client.get("/runs").status_code == 200
