"""A new user's first hour: ``init``, then ``run``, ``check``, ``serve`` and ``predict`` in
that order, as the commands ``init`` prints say, and labels for the batch sent back."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from e2e.cli import clean_env, command, free_port, run


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("first-hour")
    shown = run("init", "p", cwd=root).stdout
    assert "loopline run pipelines/example.py" in shown
    assert "loopline predict credit_risk@champion data/new_applications.csv scores.csv" in shown
    return root / "p"


def test_run_trains_gates_and_promotes_then_check_passes(project: Path) -> None:
    out = run("run", "pipelines/example.py", cwd=project).stdout
    lines = out.splitlines()
    summary = next(i for i, line in enumerate(lines) if line.startswith("pipeline run "))
    assert lines[summary - 1].startswith("└")  # the table's last line ends before it
    assert "register: registered credit_risk/1 (tuned model); serves with" in out
    assert "register: promoted credit_risk/1 to champion: 4 of 4 gates passed" in out
    checked = json.loads(run("check", "--json", cwd=project).stdout)
    assert checked["passed"] is True
    [gate] = checked["checks"]
    assert (gate["candidate"], gate["champion"]) == ("credit_risk/1", "credit_risk/1")
    assert gate["data"].startswith("credit_applications@1#split")


def test_serve_then_predict_then_feedback(project: Path, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            command("serve", "credit_risk@champion", "--port", str(port)),
            cwd=project,
            env=clean_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        rows = pd.read_csv(project / "data" / "new_applications.csv").head(3)
        body = json.loads(rows.drop(columns=["application_id"]).to_json(orient="records"))
        answer = httpx.post(url + "/predict", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == 1
    finally:
        server.terminate()
        server.wait(60)

    scored = json.loads(
        run(
            "predict",
            "credit_risk@champion",
            "data/new_applications.csv",
            "scores.parquet",
            "--json",
            cwd=project,
        ).stdout
    )
    assert scored["rows_scored"] == 500
    assert scored["total_seconds"] >= scored["seconds"] > 0
    import pyarrow.parquet as pq

    table = pq.read_table(project / "scores.parquet")
    types = {f.name: str(f.type) for f in table.schema}
    assert types["application_id"] == "int64"  # a pass-through column keeps its type
    assert types["age"] == "int64"
    assert types["request_id"] == "string"
    assert types["row"] == "int64"
    frame = table.to_pandas()
    labels = frame[["request_id", "row"]].head(20).assign(label=False)
    labels.to_csv(project / "labels.csv", index=False)
    imported = json.loads(run("feedback", "import", "labels.csv", "--json", cwd=project).stdout)
    assert imported["stored"] == 20, imported
