"""``loopline alarms ...`` and ``loopline loop ...`` as a user runs them, and the
controller daemon's routes (health, metrics, Alertmanager) over real HTTP."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from e2e.cli import clean_env, command, init, one_line_error, run
from loopline.config import settings_for
from loopline.monitor.tables import series
from loopline.store.stores import Stores
from unit.monitor.support import make_trained

ALARMS = """
[monitor.churn]
every = "1m"
window = "1m"

[alarms.drift]
model = "churn@production"
when = "drift.share > 0.5"
periods = 3
datapoints = 2
actions = ["ops"]

[actions.ops]
kind = "webhook"
url = "http://127.0.0.1:9/hook"
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = init(tmp_path)
    toml = root / "loopline.toml"
    toml.write_text(toml.read_text().split("[gates.credit_risk]")[0] + ALARMS)
    with Stores.open(settings_for(root, environ={})) as stores:
        make_trained(stores, n=600)
    return root


def _windows(root: Path, values: list[float]) -> None:
    """Stored monitor windows of churn/1 with these drift shares, oldest first."""
    t0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
    with Stores.open(settings_for(root, environ={})) as stores, stores.db.write() as conn:
        for i, value in enumerate(values):
            conn.execute(
                series.insert().values(
                    model="churn",
                    version=1,
                    role="primary",
                    window_start=t0 + timedelta(minutes=i),
                    window_end=t0 + timedelta(minutes=i + 1),
                    metric="drift.share",
                    feature="",
                    value=value,
                    threshold=0.5,
                    status="ok",
                    rows=100,
                    run_id=f"r{i}",
                    computed_at=t0,
                )
            )


def test_alarms_ls_test_show_and_export(project: Path) -> None:
    listing = json.loads(run("alarms", "ls", "--json", cwd=project).stdout)
    assert [(a["alarm"], a["state"]) for a in listing] == [("drift", "insufficient_data")]

    _windows(project, [0.1, 0.7, 0.8])
    dry = json.loads(run("alarms", "test", "drift", "--json", cwd=project).stdout)
    assert dry["state"] == "alarm"
    assert dry["would_run"] == ["ops"]
    human = run("alarms", "test", "drift", cwd=project).stdout
    assert "would run: ops (nothing was run: this is a test)" in human
    # A test records nothing.
    assert json.loads(run("alarms", "show", "drift", "--json", cwd=project).stdout)["history"] == []

    missing = run("alarms", "show", "drfit", cwd=project, code=2)
    assert "did you mean 'drift'" in one_line_error(missing)

    rules = project / "rules.yml"
    run("alarms", "export-prometheus", "-o", str(rules), cwd=project)
    text = rules.read_text()
    assert 'loopline_monitor_value{model=\\"churn\\",role=\\"primary\\"' in text
    assert "drift.share" in text
    assert 'loopline_alarm: "drift"' in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_loop_retrain_status_history_pause(project: Path) -> None:
    toml = project / "loopline.toml"
    toml.write_text(toml.read_text() + '\n[loop.churn]\nalias = "production"\n')
    started = json.loads(
        run("loop", "retrain", "churn", "--reason", "by hand", "--json", cwd=project).stdout
    )
    assert started["state"] == "pending"
    assert started["cause"]["reason"] == "by hand"
    again = run("loop", "retrain", "churn", cwd=project, code=1)
    assert "already has a rollout in progress" in one_line_error(again)

    status = json.loads(run("loop", "status", "--json", cwd=project).stdout)
    assert [r["id"] for r in status["rollouts"]] == [started["id"]]
    assert status["lease"] is None
    assert "none running" in run("loop", "status", cwd=project).stdout

    history = json.loads(run("loop", "history", "churn", "--json", cwd=project).stdout)
    assert [r["id"] for r in history] == [started["id"]]
    shown = json.loads(run("loop", "show", started["id"][:10], "--json", cwd=project).stdout)
    assert [e["to"] for e in shown["events"]] == ["pending"]

    assert (
        "churn: paused" in run("loop", "pause", "churn", "--reason", "freeze", cwd=project).stdout
    )
    assert "was paused already" in run("loop", "pause", "churn", cwd=project).stdout
    assert json.loads(run("loop", "status", "--json", cwd=project).stdout)["models"]["churn"][
        "paused"
    ]
    assert "churn: resumed" in run("loop", "resume", "churn", cwd=project).stdout
    assert "matches no rollout" in one_line_error(run("loop", "show", "ffff", cwd=project, code=1))


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_controller_daemon_serves_health_metrics_and_alertmanager(project: Path) -> None:
    proc = subprocess.Popen(
        command("loop", "run", "--port", "0"),
        cwd=project,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        url = None
        deadline = time.monotonic() + 60
        lines = []
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            found = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            url = found.group(1) if found else None
        assert url is not None, "".join(lines)
        for _ in range(100):
            status, body = _get(url + "/health")
            if json.loads(body).get("status") == "leader":
                break
            time.sleep(0.1)
        assert status == 200
        assert json.loads(body)["status"] == "leader"

        payload = {
            "version": "4",
            "status": "firing",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "LooplineDrift", "loopline_alarm": "drift"},
                    "annotations": {"summary": "drift share above 0.5"},
                },
                {"status": "firing", "labels": {"alertname": "SomethingElse"}},
            ],
        }
        status, body = _post(url + "/alertmanager", json.dumps(payload).encode())
        assert status == 200, body
        applied = json.loads(body)["alerts"]
        assert [a["applied"] for a in applied] == [True, False]
        assert _post(url + "/alertmanager", b"{nope")[0] == 400

        status, body = _get(url + "/metrics")
        text = body.decode()
        assert status == 200
        assert "loopline_loop_leader 1.0" in text
        assert 'loopline_alarm_state{alarm="drift",state="alarm"} 1.0' in text
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    # It gave its lease up on the way out.
    with Stores.open(settings_for(project, environ={})) as stores, stores.db.read() as conn:
        from loopline.loop.tables import leases

        assert conn.execute(sa.select(sa.func.count()).select_from(leases)).scalar() == 0
    assert os.path.exists(project / "loopline.toml")
