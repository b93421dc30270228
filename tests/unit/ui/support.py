"""A small project for the UI's tests: runs (one named with markup, one failed with its
traceback), a registered model with an alias and a canary, monitored windows, an alarm
state and API keys of each role."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from loopline.store.stores import Stores

SCRIPT = "<script>alert(1)</script>"
FEATURES = ["age", "income", "plan", "region"]
WINDOWS = 3
T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)


@dataclass
class Project:
    stores: Stores
    run_ids: list[str]
    failed_run: str
    keys: dict[str, str]


def populate(stores: Stores) -> Project:
    from sklearn.linear_model import LogisticRegression

    from loopline.data import Datasets
    from loopline.pipeline.executors import TRACEBACK_ARTIFACT
    from loopline.registry import DatasetRef, Registry
    from loopline.serve.keys import KeyStore
    from loopline.tracking import Tracker

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, 300),
            "income": rng.normal(50_000, 9_000, 300),
            "plan": rng.choice(["basic", "pro"], 300),
        }
    )
    dv = Datasets(stores).add("customers", frame)
    tracker = Tracker(stores)
    ids = []
    for i in range(25):
        name = SCRIPT if i == 0 else f"trial-{i:02d}"
        with tracker.start_run(
            "tuning",
            name,
            params={"model": "rf" if i % 2 else "lr", "C": i / 10, "note": SCRIPT},
            tags={"team": SCRIPT if i == 0 else "ml"},
            capture_git=False,
        ) as run:
            run.log_input(dv.name, dv.version, dv.digest)
            for step in range(4):
                run.log_metric("loss", 1.0 / (step + 1 + i), step=step)
            run.log_metric("f1", round(0.5 + i / 100, 4))
            ids.append(run.id)
    first = tracker.get_run(ids[1])
    with tracker.start_run("tuning", "artifacts", parent=first.id, capture_git=False) as run:
        buf = io.BytesIO()
        frame.head(50).to_parquet(buf)
        run.log_artifact("head.parquet", buf.getvalue())
        run.log_artifact("report.html", f"<html><body><h1>{SCRIPT}</h1></body></html>".encode())
        child = run.id
    failed = tracker.start_run("tuning", "broken", capture_git=False)
    failed.log_artifact(
        TRACEBACK_ARTIFACT, b"Traceback (most recent call last):\nValueError: bad\n"
    )
    failed.finish("failed", error="ValueError: bad")
    ids.append(child)

    x = frame[["age", "income"]]
    y = (frame["income"] > 50_000).astype(int)
    reg = Registry(stores)
    ref = DatasetRef(dv.name, dv.version, dv.digest, "train")
    for version in (1, 2):
        reg.register(
            "churn",
            LogisticRegression(C=version).fit(x, y),
            sample=x,
            run_id=ids[version],
            datasets=[ref],
            metrics={"f1": 0.7 + version / 100},
            description=SCRIPT,
            onnx=False,
        )
    reg.set_alias("churn", "production", 1, reason=SCRIPT)
    reg.set_alias("churn", "challenger", 2)
    reg.set_traffic("churn", "churn@challenger", 10.0, alias="production")
    _series(stores)
    _alarm_and_rollout(stores)
    keys = {
        role: KeyStore(stores.db).create(role, name=f"{role}-key").secret
        for role in ("read", "predict", "admin")
    }
    return Project(stores, ids, failed.id, keys)


def _alarm_and_rollout(stores: Stores) -> None:
    """An alarm that fired (with the windows that made it) and the rollout it asked for."""
    from loopline.alarm.tables import action_runs, alarm_history, alarm_states
    from loopline.loop.rollout import Rollouts
    from loopline.loop.settings import LoopSettings

    at = T0 + timedelta(hours=WINDOWS)
    points = [
        {
            "window_start": (at - timedelta(hours=1)).isoformat(),
            "window_end": at.isoformat(),
            "value": 0.5,
            "breaching": True,
            "rows": 500,
        }
    ]
    with stores.db.write() as conn:
        conn.execute(
            alarm_states.insert().values(
                alarm="drift",
                state="alarm",
                since=at,
                evaluated_at=at,
                model="churn@production",
                version=1,
                value=0.5,
                reason="drift.share > 0.3 in 1 of 1 windows",
                last_window=at,
            )
        )
        change = conn.execute(
            alarm_history.insert().values(
                alarm="drift",
                at=at,
                from_state="ok",
                to_state="alarm",
                reason="drift.share > 0.3 in 1 of 1 windows",
                datapoints=points,
                model="churn@production",
                version=1,
                source="rule",
            )
        ).inserted_primary_key[0]
        conn.execute(
            action_runs.insert().values(
                id="a" * 32,
                action="retrain",
                kind="retrain",
                trigger=f"alarm:drift:{change}",
                event={},
                started_at=at,
                ended_at=at,
                status="ok",
                attempts=1,
            )
        )
    Rollouts(stores).start(
        "churn",
        LoopSettings(model="churn", alias="production"),
        trigger="alarm:drift",
        challenger=2,
    )


def _series(stores: Stores) -> None:
    """Windows of drift, health and quality, as the monitor stores them."""
    from loopline.monitor.tables import monitor_runs, series

    rows = []
    for w in range(WINDOWS):
        start = T0 + timedelta(hours=w)
        end = start + timedelta(hours=1)

        def point(
            metric: str,
            value: float,
            feature: str = "",
            status: str = "ok",
            version: int = 1,
            role: str = "primary",
            start: datetime = start,
            end: datetime = end,
            w: int = w,
        ) -> dict[str, object]:
            return {
                "model": "churn",
                "version": version,
                "role": role,
                "window_start": start,
                "window_end": end,
                "metric": metric,
                "feature": feature,
                "value": value,
                "threshold": 0.1,
                "status": status,
                "rows": 500,
                "run_id": f"m{w}",
                "computed_at": end,
            }

        for i, feature in enumerate(FEATURES):
            drifted = w == WINDOWS - 1 and i < 2
            rows.append(
                point(
                    "feature_drift.score",
                    0.3 if drifted else 0.01 * (i + 1),
                    feature,
                    "drift" if drifted else "ok",
                )
            )
            rows.append(point("quality.null_share", 0.0, feature))
        rows.append(point("drift.share", 0.5 if w == WINDOWS - 1 else 0.0))
        for role, version, rate in (("primary", 1, 9.0), ("canary", 2, 1.0)):
            rows.append(point("health.request_rate", rate + w, version=version, role=role))
            rows.append(point("health.latency_p95_ms", 12.5 + w, version=version, role=role))
            rows.append(point("health.error_share", 0.01, version=version, role=role))
        rows.append(point("performance.accuracy", 0.8 - w / 100))
        rows.append(point("estimated.accuracy", 0.79 - w / 100))
        with stores.db.write() as conn:
            conn.execute(
                monitor_runs.insert().values(
                    id=f"m{w}",
                    model="churn",
                    ref="churn@production",
                    window_start=start,
                    window_end=end,
                    started_at=end,
                    ended_at=end,
                    status="drift" if w == WINDOWS - 1 else "ok",
                    rows=500,
                    summary={
                        "groups": [
                            {
                                "version": 1,
                                "role": "primary",
                                "anomalies": [{"request_id": "req-1", "row": 0, "score": 4.2}],
                            }
                        ]
                    },
                )
            )
    with stores.db.write() as conn:
        conn.execute(series.insert(), rows)
