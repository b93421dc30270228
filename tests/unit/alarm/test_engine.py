"""The alarm engine on the stores: state changes recorded once with their datapoints,
actions queued in the same transaction and run (retried, recorded, side by side),
Alertmanager payloads, and Prometheus rules that promtool accepts."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from loopline.alarm.engine import ActionRunner, AlarmEngine, build_actions
from loopline.alarm.prometheus import rules_yaml
from loopline.alarm.rules import ALARM, OK
from loopline.alarm.settings import ActionSettings, AlarmSettings
from loopline.alarm.tables import action_runs
from loopline.alarm.webhook import verify_signature
from loopline.monitor.tables import series
from loopline.store.stores import Stores

from .test_webhook import Receiver

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)


@pytest.fixture
def model(stores: Stores) -> int:
    from sklearn.linear_model import LogisticRegression

    from loopline.registry import Registry

    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=80)})
    y = (x["a"] > 0).astype(int)
    reg = Registry(stores)
    mv = reg.register("churn", LogisticRegression().fit(x, y), sample=x)
    reg.set_alias("churn", "prod", mv.version)
    return mv.version


def _window(
    stores: Stores, version: int, i: int, value: float | None, metric: str = "drift.share"
) -> None:
    start = T0 + timedelta(minutes=5 * i)
    with stores.db.write() as conn:
        conn.execute(
            series.insert().values(
                model="churn",
                version=version,
                role="primary",
                window_start=start,
                window_end=start + timedelta(minutes=5),
                metric=metric,
                feature="",
                value=value,
                threshold=0.5,
                status="ok",
                rows=1000,
                run_id=f"r{i}",
                computed_at=start,
            )
        )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _engine(stores: Stores, receiver: Receiver, **alarm: Any) -> tuple[AlarmEngine, ActionRunner]:
    settings = AlarmSettings(
        name="drift",
        model="churn@prod",
        when="drift.share > 0.5",
        actions=("ops",),
        ok_actions=("ops",),
        **alarm,
    )
    actions = {
        "ops": ActionSettings(
            name="ops", kind="webhook", url=receiver.url, secret="k", retries=3, backoff_s=0.01
        )
    }
    engine = AlarmEngine(stores, {"drift": settings}, actions)
    return engine, ActionRunner(stores, build_actions(actions))


def test_a_state_change_is_recorded_once_and_its_webhook_delivered(
    stores: Stores, model: int, receiver: Receiver
) -> None:
    engine, runner = _engine(stores, receiver, periods=3, datapoints=2)
    try:
        for i, v in enumerate([0.1, 0.7, 0.2]):
            _window(stores, model, i, v)
        assert engine.evaluate("drift").state == OK
        _window(stores, model, 3, 0.8)
        receiver.script = [503, 500]  # the receiver fails twice, then recovers
        ev = engine.evaluate("drift")
        assert (ev.previous, ev.state) == (OK, ALARM)
        assert [p.breaching for p in ev.datapoints[-3:]] == [True, False, True]
        assert engine.evaluate("drift").state == ALARM  # no second change
        results = [f.result(timeout=30) for f in runner.dispatch()]
        assert [r.ok for r in results] == [True]
        assert results[0].attempts == 3
        headers, body = receiver.received[-1]
        assert verify_signature("k", body, headers)
        history = engine.history("drift")
        assert [(h["from"], h["to"]) for h in history] == [(OK, ALARM), (None, OK)]
        assert history[0]["actions"][0]["status"] == "ok"
        assert len(history[0]["datapoints"]) >= 3
        assert runner.dispatch() == []  # nothing left to run
    finally:
        runner.shutdown()


def test_two_evaluators_record_a_change_once(
    stores: Stores, model: int, receiver: Receiver
) -> None:
    first, runner = _engine(stores, receiver)
    second, _ = _engine(stores, receiver)
    _window(stores, model, 0, 0.1)
    first.evaluate("drift")
    _window(stores, model, 1, 0.9)
    barrier = threading.Barrier(2)

    def go(engine: AlarmEngine) -> None:
        barrier.wait()
        engine.evaluate("drift")

    threads = [threading.Thread(target=go, args=(e,)) for e in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with stores.db.read() as conn:
        queued = conn.execute(sa.select(sa.func.count()).select_from(action_runs)).scalar_one()
    assert queued == 1
    assert [h["to"] for h in first.history("drift")] == [ALARM, OK]
    runner.shutdown()


def test_a_slow_action_does_not_stall_the_others(
    stores: Stores, model: int, receiver: Receiver
) -> None:
    from loopline.alarm.actions import ActionEvent, ActionResult

    class Slow:
        name, kind = "slow", "webhook"

        def run(self, event: ActionEvent) -> ActionResult:
            time.sleep(2.0)
            return ActionResult("slow", True)

    settings = AlarmSettings(
        name="drift", model="churn@prod", when="drift.share > 0.5", actions=("slow", "ops")
    )
    cfg = {
        "slow": ActionSettings(name="slow", kind="webhook", url="http://127.0.0.1:9/x"),
        "ops": ActionSettings(name="ops", kind="webhook", url=receiver.url),
    }
    engine = AlarmEngine(stores, {"drift": settings}, cfg)
    runner = ActionRunner(stores, {"slow": Slow(), "ops": build_actions(cfg)["ops"]})
    try:
        _window(stores, model, 0, 0.9)
        engine.evaluate("drift")
        started = time.monotonic()
        futures = runner.dispatch()
        assert time.monotonic() - started < 1.0  # dispatch returns at once
        done = [f.result(timeout=30) for f in futures]
        assert sorted(r.action for r in done) == ["ops", "slow"]
        assert len(receiver.received) == 1
    finally:
        runner.shutdown()


def test_a_killed_dispatcher_loses_no_action(
    stores: Stores, model: int, receiver: Receiver
) -> None:
    engine, _ = _engine(stores, receiver)
    _window(stores, model, 0, 0.9)
    engine.evaluate("drift")  # the change and its pending run are stored ...
    # ... and the process dies before running it. A new runner finds it.
    runner = ActionRunner(stores, build_actions(engine.actions))
    try:
        assert runner.pending() == 1
        assert [f.result(timeout=30).ok for f in runner.dispatch()] == [True]
        assert runner.pending() == 0
    finally:
        runner.shutdown()


def test_alertmanager_payloads_move_alarms_and_run_actions(
    stores: Stores, model: int, receiver: Receiver
) -> None:
    engine, runner = _engine(stores, receiver)
    payload = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "drift", "model": "churn"},
                "annotations": {"summary": "PSI above 0.2"},
                "startsAt": T0.isoformat(),
            },
            {"status": "firing", "labels": {"alertname": "unknown"}},
        ],
    }
    out = engine.receive_alertmanager(payload)
    assert out[0] == {"alert": "drift", "applied": True, "state": ALARM, "changed": True}
    assert out[1]["applied"] is False
    assert engine.receive_alertmanager(payload)[0]["changed"] is False  # repeated: no change
    resolved = {
        "status": "resolved",
        "alerts": [{"status": "resolved", "labels": {"alertname": "drift"}}],
    }
    assert engine.receive_alertmanager(resolved)[0]["state"] == OK
    try:
        assert [f.result(timeout=30).ok for f in runner.dispatch()] == [True, True]
    finally:
        runner.shutdown()
    history = engine.history("drift")
    assert [h["source"] for h in history] == ["alertmanager", "alertmanager"]


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian prometheus) is not installed"
)
def test_exported_rules_pass_promtool(tmp_path: Path) -> None:
    alarms = {
        "drift": AlarmSettings(
            name="drift",
            model="churn@prod",
            when="feature_drift.max_psi > 0.2",
            periods=3,
            datapoints=2,
        ),
        "latency": AlarmSettings(
            name="latency", model="churn@prod", when="health.latency_p99_ms > 2 * (100 + 50)"
        ),
        "quality": AlarmSettings(
            name="quality", model="churn@prod", feature="income", when="quality.null_share >= 0.05"
        ),
    }
    text = rules_yaml(alarms, {"churn": "5m"})
    path = tmp_path / "rules.yml"
    path.write_text(text)
    proc = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 3 rules found" in proc.stdout
    assert "for: 300s" in text
    assert (
        'max(loopline_monitor_value{model=\\"churn\\",role=\\"primary\\",metric=\\"feature_drift.max_psi\\",feature=\\"\\"})'
        in text
    )
