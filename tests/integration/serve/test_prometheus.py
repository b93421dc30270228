"""A real Prometheus (Debian's package) scrapes a running ``loopline serve``: the request
counters and the monitor gauges arrive in its database with their labels, and the rules
``loopline alarms export-prometheus`` writes would evaluate over them."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from e2e.cli import free_port

PROMETHEUS = shutil.which("prometheus")


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _monitor_rows(version: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC).replace(microsecond=0)
    return [
        {
            "model": "churn",
            "version": version,
            "role": "primary",
            "window_start": now - timedelta(minutes=5),
            "window_end": now,
            "metric": metric,
            "feature": feature,
            "value": value,
            "threshold": None,
            "status": "drift",
            "rows": 500,
            "run_id": "prometheus-test",
            "computed_at": now,
        }
        for metric, feature, value in (
            ("drift.share", "", 0.6),
            ("feature_drift.score", "income", 0.3),
        )
    ]


@pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed")
def test_prometheus_scrapes_requests_and_monitor_gauges(
    start_server: Any, project: Any, tmp_path: Path
) -> None:
    from loopline.monitor.tables import series

    with project.stores() as stores:
        stores.db.run_write(lambda conn: conn.execute(series.insert(), _monitor_rows(1)))
    server = start_server("churn@prod")
    with server.client() as c:
        for _ in range(5):
            assert c.post("/predict", json=project.rows(2)).status_code == 200

    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: loopline\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
    )
    assert PROMETHEUS is not None
    log = tmp_path / "prometheus.log"
    out = log.open("w")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        drift: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                drift = _query(port, 'loopline_monitor_value{metric="drift.share"}')
            except OSError:
                drift = []
            if drift:
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.5)
        assert drift, "Prometheus never scraped the monitor gauges"
        (point,) = drift
        assert point["metric"]["model"] == "churn"
        assert point["metric"]["version"] == "1"
        assert point["metric"]["role"] == "primary"
        assert float(point["value"][1]) == 0.6
        feature = _query(port, 'loopline_monitor_value{metric="feature_drift.score"}')
        assert [p["metric"]["feature"] for p in feature] == ["income"]
        # The exported alarm rules are over this gauge: the same expression fires here.
        assert _query(port, 'max(loopline_monitor_value{metric="drift.share"}) > 0.5')
        answered = _query(port, 'sum(loopline_requests_total{route="predict",status="200"})')
        assert answered
        assert float(answered[0]["value"][1]) >= 5
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        out.close()
        server.stop()
        with project.stores() as stores:
            stores.db.run_write(
                lambda conn: conn.execute(
                    series.delete().where(series.c.run_id == "prometheus-test")
                )
            )
