"""The JSON twins hold the stores' numbers; the runs table pages, sorts and filters in
the database."""

from __future__ import annotations

import math

from starlette.testclient import TestClient

from loopline.monitor.series import read_series
from loopline.registry import Registry
from loopline.tracking import Tracker

from .support import FEATURES, WINDOWS, Project


def test_runs_are_paged_sorted_and_filtered(client: TestClient, project: Project) -> None:
    tracker = Tracker(project.stores)
    total = tracker.count_runs()
    first = client.get("/api/runs?per_page=10&sort=-metrics.f1").json()
    assert first["total"] == total == len(project.run_ids) + 1  # and the failed run
    assert first["pages"] == math.ceil(total / 10)
    second = client.get("/api/runs?per_page=10&page=2&sort=-metrics.f1").json()
    scores = [r["metrics"].get("f1") for r in first["runs"] + second["runs"]]
    assert len(scores) == 20
    assert scores == sorted(scores, reverse=True)
    expected = tracker.search_runs(order_by=["metrics.f1 desc"], limit=20)
    assert [r["id"] for r in first["runs"] + second["runs"]] == [r.id for r in expected]
    rf = client.get("/api/runs?filter=params.model+%3D+rf&sort=params.C").json()
    assert rf["total"] == tracker.count_runs(filters=["params.model = rf"]) == 12
    values = [float(r["params"]["C"]) for r in rf["runs"]]
    assert values == sorted(values)
    assert {r["params"]["model"] for r in rf["runs"]} == {"rf"}
    both = client.get(
        "/api/runs",
        params=[("filter", "params.model = rf\nmetrics.f1 >= 0.6"), ("status", "finished")],
    ).json()
    assert both["total"] == tracker.count_runs(
        filters=["params.model = rf", "metrics.f1 >= 0.6"], status="finished"
    )
    failed = client.get("/api/runs?status=failed").json()
    assert [r["id"] for r in failed["runs"]] == [project.failed_run]


def test_api_rows_hold_what_the_full_records_hold(client: TestClient, project: Project) -> None:
    """The rows come from the listing statement; each holds what the run's record holds."""
    import json

    from loopline.ui.render import dumps

    tracker = Tracker(project.stores)
    for query, search in (
        ("per_page=1000", {"limit": 1000}),
        (
            "per_page=7&page=2&sort=-metrics.f1",
            {"order_by": ["-metrics.f1"], "limit": 7, "offset": 7},
        ),
        (
            "filter=params.model+%3D+rf&sort=params.C",
            {"filters": ["params.model = rf"], "order_by": ["params.C"], "limit": 100},
        ),
        ("status=failed", {"status": ["failed"], "limit": 100}),
    ):
        rows = client.get(f"/api/runs?{query}").json()["runs"]
        expected = [
            {
                "id": r.id,
                "name": r.name,
                "experiment": r.experiment,
                "status": r.status,
                "parent_id": r.parent_id,
                "start_time": r.start_time.isoformat(),
                "end_time": None if r.end_time is None else r.end_time.isoformat(),
                "duration_s": r.duration,
                "params": r.params,
                "metrics": r.metrics,
                "tags": r.tags,
                "datasets": [f"{i.name}@{i.version}" for i in r.inputs if i.kind == "dataset"],
            }
            for r in tracker.search_runs(**search)  # type: ignore[arg-type]
        ]
        assert rows
        assert rows == json.loads(dumps(expected)), query


def test_a_bad_filter_is_explained_on_the_page(client: TestClient) -> None:
    page = client.get("/runs?filter=metrics.f1+%3E%3D+high")
    assert page.status_code == 400
    assert "metrics compare with numbers" in page.text
    assert client.get("/api/runs?per_page=5000").status_code == 400


def test_columns_are_chosen_and_shown(client: TestClient, project: Project) -> None:
    page = client.get("/runs?col=params.C&col=metrics.loss&per_page=5&sort=-metrics.f1")
    assert page.status_code == 200
    assert 'data-col="params.C"' in page.text
    assert 'data-col="metrics.loss"' in page.text
    assert 'data-col="metrics.f1"' not in page.text
    data = client.get("/api/runs?col=params.C").json()
    assert data["columns"] == ["params.C"]
    assert data["available"] == Tracker(project.stores).run_keys()


def test_run_detail_holds_its_curves_lineage_and_traceback(
    client: TestClient, project: Project
) -> None:
    tracker = Tracker(project.stores)
    run = tracker.get_run(project.run_ids[1])
    data = client.get(f"/api/runs/{run.id}").json()
    assert data["metrics"] == run.metrics
    history = tracker.metric_history(run.id, "loss")
    assert data["curves"]["loss"] == [[p.step, p.value] for p in history]
    assert [m["version"] for m in data["models"]] == [1]  # churn/1 names this run
    assert [c["name"] for c in data["children"]] == ["artifacts"]
    failed = client.get(f"/api/runs/{project.failed_run}").json()
    assert "ValueError: bad" in failed["traceback"]


def test_artifacts_download_and_preview(client: TestClient, project: Project) -> None:
    child = project.run_ids[-1]
    table = client.get(f"/api/runs/{child}/preview/head.parquet").json()
    assert table["total_rows"] == 50
    assert table["columns"] == ["age", "income", "plan"]
    assert len(table["rows"]) == 20
    report = client.get(f"/runs/{child}/artifacts/report.html?inline=1")
    assert report.headers["content-security-policy"].startswith("sandbox")
    download = client.get(f"/runs/{child}/artifacts/report.html")
    assert download.headers["content-disposition"].startswith("attachment")
    assert client.get(f"/runs/{child}/artifacts/nope.txt").status_code == 404


def test_compare_lists_differences_and_curves(client: TestClient, project: Project) -> None:
    a, b = project.run_ids[1], project.run_ids[2]
    data = client.get(f"/api/runs/compare?run={a}&run={b}").json()
    rows = {r["field"]: r for r in data["rows"]}
    assert rows["params.model"]["values"] == ["rf", "lr"]
    assert rows["params.model"]["differs"] is True
    assert rows["experiment"]["differs"] is False
    assert set(data["curves"]["loss"]) == {a, b}
    assert client.get(f"/api/runs/compare?run={a}").status_code == 400


def test_model_json_matches_the_registry(client: TestClient, project: Project) -> None:
    reg = Registry(project.stores)
    data = client.get("/api/models/churn").json()
    assert data["aliases"] == reg.aliases("churn")
    assert [v["version"] for v in data["versions"]] == [1, 2]
    assert [m["id"] for m in data["alias_history"]] == [m.id for m in reg.alias_history("churn")]
    held = reg.aliases("churn")["production"]
    serving = {(s["alias"], s["role"]) for s in data["versions"][held - 1]["serving"]}
    assert ("production", "primary") in serving
    canary = data["versions"][1]["serving"]
    assert {"alias": "production", "role": "canary", "percent": 10.0} in canary
    assert data["versions"][0]["datasets"][0]["name"] == "customers"


def test_deployments_show_shares_and_health(client: TestClient, project: Project) -> None:
    data = client.get("/api/deployments").json()
    (model,) = data["models"]
    production = next(a for a in model["aliases"] if a["alias"] == "production")
    shares = {(s["role"], s["version"]): s["share"] for s in production["serving"]}
    assert shares == {("primary", 1): 90.0, ("canary", 2): 10.0}
    newest = read_series(project.stores, "churn", metric="health.request_rate", last=1)
    rates = {(p.role, p.version): p.value for p in newest}
    for s in production["serving"]:
        assert s["health"]["request_rate"] == rates[(s["role"], s["version"])]


def test_monitor_heatmap_holds_every_window_and_feature(
    client: TestClient, project: Project
) -> None:
    data = client.get("/api/monitors/churn").json()
    heat = data["heatmap"]
    assert heat["features"] == sorted(FEATURES)
    assert len(heat["windows"]) == WINDOWS
    assert sum(len(row) for row in heat["cells"]) == WINDOWS * len(FEATURES)
    assert heat["drifted"] == 2
    stored = read_series(project.stores, "churn", metric="feature_drift.score")
    for p in stored:
        cell = heat["cells"][heat["features"].index(p.feature)][
            heat["windows"].index(p.window_end.isoformat())
        ]
        assert (cell["value"], cell["status"]) == (p.value, p.status)
    page = client.get("/monitors/churn")
    assert page.text.count('class="cell s-') == WINDOWS * len(FEATURES)
    assert [e["value"] for e in data["series"]["drift.share"]] == [0.0, 0.0, 0.5]
    assert data["anomalies"][0]["request_id"] == "req-1"
    feature = client.get("/api/monitors/churn/features/age").json()
    assert len(feature["metrics"]["feature_drift.score"]) == WINDOWS
    assert client.get("/api/monitors/nothing").status_code == 404


def test_dataset_page_holds_versions_profile_and_validation(
    client: TestClient, project: Project
) -> None:
    from loopline.data import Datasets

    ds = Datasets(project.stores)
    data = client.get("/api/datasets/customers").json()
    assert [v["version"] for v in data["versions"]] == [v.version for v in ds.versions("customers")]
    assert data["profile"] == ds.profile("customers").to_dict()
    assert data["version"]["validation"]["ok"] is True
    assert client.get("/api/datasets/customers?version=9").status_code == 404


def test_alarms_and_the_loop_show_states_history_and_rollouts(
    client: TestClient, project: Project
) -> None:
    from loopline.loop.rollout import Rollouts

    alarms = client.get("/api/alarms").json()
    (drift,) = alarms["alarms"]
    assert (drift["alarm"], drift["state"], drift["value"]) == ("drift", "alarm", 0.5)
    assert [r["status"] for r in alarms["action_runs"]] == ["ok"]
    detail = client.get("/api/alarms/drift").json()
    (change,) = detail["history"]
    assert change["to"] == "alarm"
    assert change["datapoints"][0]["value"] == 0.5
    assert change["actions"][0]["action"] == "retrain"
    assert client.get("/api/alarms/nope").status_code == 404
    loop = client.get("/api/loop").json()
    (rollout,) = Rollouts(project.stores).history()
    assert [r["id"] for r in loop["rollouts"]] == [rollout.id]
    assert loop["rollouts"][0]["state"] == "pending"
    steps = client.get(f"/api/loop/rollouts/{rollout.id[:8]}").json()
    assert [e["to"] for e in steps["events"]] == ["pending"]
    assert "asked for by alarm:drift" in steps["events"][0]["reason"]
    page = client.get(f"/loop/rollouts/{rollout.id}")
    assert 'data-step="pending"' in page.text
    assert client.get("/alarms/drift").status_code == 200
