"""Several replicas of one endpoint (separate ``loopline serve`` processes, as behind a
load balancer) on shared stores (PostgreSQL + S3 over moto's server): an alias move and a
traffic split reach every replica within its polling interval, and their prediction logs
never overwrite each other (every answered row is logged once, by the replica that
answered it)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from loopline.config import default_toml, settings_for
from loopline.monitor.predictions import prediction_files, read_predictions
from loopline.registry import Registry
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores

from .conftest import Project, Server, ServerFactory, make_frame, make_pipeline

pytestmark = pytest.mark.slow

POLL_S = 0.5
REPLICAS = 3


def _answers(server: Server, project: Project, n: int) -> list[dict]:  # type: ignore[type-arg]
    out = []
    with server.client() as c:
        for i in range(n):
            r = c.post("/predict", json=project.rows(2, start=i % 100))
            assert r.status_code == 200, r.text
            out.append(r.json())
    return out


def _until(check, what: str, limit_s: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``check()`` holds (asserting it does within ``limit_s``)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < limit_s, f"{what} not within {limit_s:g} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_replicas_follow_one_alias_and_never_overwrite_each_others_log(
    tmp_path: Path,
    postgres_url: str,
    s3_url: str,
    s3_env: dict[str, str],
    start_server: ServerFactory,
) -> None:
    env = {**s3_env, "LOOPLINE_METADATA_URL": postgres_url, "LOOPLINE_ARTIFACTS_URL": s3_url}
    (tmp_path / "loopline.toml").write_text(default_toml())
    settings = settings_for(tmp_path, environ=env)
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    X, y = make_frame()
    project = Project(tmp_path, X, y)
    with Stores.open(settings) as stores:
        reg = Registry(stores)
        for c in (1.0, 0.05):
            reg.register("churn", make_pipeline(X, y, c), sample=X)
        reg.set_alias("churn", "prod", 1)
    server_env = {**env, "LOOPLINE_SERVE_POLL_INTERVAL_S": str(POLL_S)}
    replicas = [start_server("churn@prod", env=server_env, cwd=tmp_path) for _ in range(REPLICAS)]
    sent: list[str] = []
    for replica in replicas:
        answers = _answers(replica, project, 10)
        assert {a["version"] for a in answers} == {1}
        sent += [a["request_id"] for a in answers]

    # An alias move reaches every replica within its polling interval (and a margin for
    # a loaded machine), without a restart.
    with Stores.open(settings) as stores:
        Registry(stores).set_alias("churn", "prod", 2)
    for replica in replicas:
        _until(
            lambda r=replica: _answers(r, project, 1)[0]["version"] == 2,
            f"{replica.url} answering version 2",
            POLL_S + 5,
        )
    # So does a traffic split: every replica sends its share to the canary.
    with Stores.open(settings) as stores:
        Registry(stores).set_traffic("churn", "churn/1", 50, alias="prod", mode="canary")
    for replica in replicas:
        _until(
            lambda r=replica: any(a["role"] == "canary" for a in _answers(r, project, 8)),
            f"{replica.url} sending traffic to the canary",
            POLL_S + 5,
        )
    for replica in replicas:
        answers = _answers(replica, project, 20)
        assert {a["version"] for a in answers} == {1, 2}
        sent += [a["request_id"] for a in answers]

    for replica in replicas:
        assert replica.stop() == 0  # SIGTERM: the log is flushed
    with Stores.open(settings) as stores:
        table = read_predictions(stores.objects, model="churn")
        writers = {
            key.rsplit("/", 1)[-1].split("-")[-2] for key in prediction_files(stores.objects)
        }
    logged = Counter(
        zip(table.column("request_id").to_pylist(), table.column("row").to_pylist(), strict=True)
    )
    assert set(sent) <= {rid for rid, _ in logged}  # every answered request is logged
    assert max(logged.values()) == 1  # once: no replica wrote over another's file
    assert len(writers) >= REPLICAS  # each replica wrote files of its own
