"""loopline monitor run|show|report|compare, predictions ls|export and feedback ls, as a
user runs them on a project with a served (logged) model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from e2e.cli import one_line_error, run
from loopline.config import settings_for
from loopline.project.create import init_project
from loopline.store.stores import Stores
from unit.monitor.support import make_frame, make_trained


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("monitored") / "p"
    init_project(root, environ={})
    with Stores.open(settings_for(root, environ={})) as stores:
        trained = make_trained(stores)
        frame = make_frame(2_000, seed=70, shift=0.7)
        ids = trained.log(frame)
        trained.label(ids[:100], frame.iloc[:400])
    return root


def test_run_prints_the_drift_table_stores_it_and_exits_1(project: Path) -> None:
    proc = run("monitor", "run", "churn@production", "--window", "1h", cwd=project, code=1)
    assert re.search(r"num_0\s.*wasserstein", proc.stdout)
    assert "alert: " in proc.stdout
    report = json.loads(
        run("monitor", "run", "churn@production", "--json", cwd=project, code=1).stdout
    )
    (group,) = report["groups"]
    drifted = sorted(f["feature"] for f in group["features"] if f["drifted"])
    assert drifted == ["num_0", "num_1", "num_2"]
    assert group["performance"]["labels"] == 400
    shown = json.loads(
        run(
            "monitor",
            "show",
            "churn@production",
            "--metric",
            "feature_drift.score",
            "--json",
            cwd=project,
        ).stdout
    )
    assert {p["feature"] for p in shown if p["status"] == "drift"} == {"num_0", "num_1", "num_2"}
    table = run("monitor", "show", "churn@production", "--metric", "drift.share", cwd=project)
    assert "drift.share" in table.stdout


def test_report_writes_a_self_contained_page(project: Path) -> None:
    run("monitor", "run", "churn@production", cwd=project, code=1)
    out = project / "reports" / "drift.html"
    run("monitor", "report", "churn@production", "--out", str(out), cwd=project)
    html = out.read_text()
    assert html.startswith("<!doctype html>")
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html
    assert html.count("class='cell'") >= 8  # the heatmap: windows x features
    assert "num_0" in html


def test_compare_two_files_without_a_model(project: Path, tmp_path: Path) -> None:
    def features(seed: int, shift: float = 0.0):  # type: ignore[no-untyped-def]
        return make_frame(3_000, seed=seed, shift=shift).drop(columns=["churned"])

    features(71).to_csv(tmp_path / "ref.csv", index=False)
    features(72).to_parquet(tmp_path / "same.parquet")
    features(73, 1.0).to_parquet(tmp_path / "shifted.parquet")
    run(
        "monitor", "compare", str(tmp_path / "ref.csv"), str(tmp_path / "same.parquet"), cwd=project
    )
    moved = run(
        "monitor",
        "compare",
        str(tmp_path / "ref.csv"),
        str(tmp_path / "shifted.parquet"),
        "--json",
        cwd=project,
        code=1,
    )
    body = json.loads(moved.stdout)
    assert sorted(f["feature"] for f in body["features"] if f["drifted"]) == [
        "num_0",
        "num_1",
        "num_2",
    ]


def test_predictions_and_feedback_are_listed_and_exported(project: Path, tmp_path: Path) -> None:
    rows = json.loads(
        run("predictions", "ls", "churn@production", "-n", "5", "--json", cwd=project).stdout
    )
    assert len(rows) == 5
    assert {"request_id", "row", "version", "output.prediction"} <= set(rows[0])
    out = tmp_path / "log.parquet"
    summary = json.loads(
        run("predictions", "export", "churn@production", str(out), "--json", cwd=project).stdout
    )
    assert summary["rows"] == 2_000
    import pyarrow.parquet as pq

    assert pq.read_table(out).num_rows == 2_000
    labels = json.loads(
        run("feedback", "ls", "churn@production", "-n", "3", "--json", cwd=project).stdout
    )
    assert len(labels) == 3
    assert all(item["prediction"] is not None for item in labels)


def test_bad_arguments_are_one_line_usage_errors(project: Path) -> None:
    err = run("monitor", "run", "churn@production", "--window", "soon", cwd=project, code=2)
    assert "not a duration" in one_line_error(err)
    err = run("monitor", "run", "churn@prod", cwd=project, code=1)
    assert "prod" in one_line_error(err)
