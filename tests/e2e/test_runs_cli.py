"""``loopline runs ls|show|compare`` as a user runs them: a subprocess in a project."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from e2e.cli import run as loopline
from loopline.config import settings_for
from loopline.store.stores import Stores
from loopline.tracking import Tracker
from loopline.tracking.tables import runs


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A project with three finished runs, a failed one and one whose process died."""
    root = tmp_path_factory.mktemp("runs-cli")
    loopline("init", "proj", "--json", cwd=root)
    path = root / "proj"
    ids: dict[str, str] = {}
    fixed = iter(
        [
            uuid.UUID("aaaa1111000000000000000000000000"),
            uuid.UUID("aaaa2222000000000000000000000000"),
            uuid.UUID("bbbb0000000000000000000000000000"),
            uuid.UUID("cccc0000000000000000000000000000"),
            uuid.UUID("dddd0000000000000000000000000000"),
        ]
    )
    real_uuid4 = uuid.uuid4
    uuid.uuid4 = lambda: next(fixed)
    try:
        with Stores.open(settings_for(path, environ={})) as stores:
            tracker = Tracker(stores)
            for name, c, f1 in (("rf", 1.0, 0.81), ("lr", 0.5, 0.92), ("lr-small", 0.1, 0.7)):
                with tracker.start_run("churn", name, params={"C": c, "model": name}) as run:
                    run.log_metrics({"f1": f1, "loss": 1 - f1})
                    run.log_metric("loss", 0.05, step=5)
                    run.log_input("customers", 2, "e" * 64)
                    run.log_artifact("report.json", b"{}")
                ids[name] = run.id
            failing = tracker.start_run("churn", "broken", params={"C": 9})
            failing.finish("failed", error="ValueError: bad input")
            ids["broken"] = failing.id
            dead = tracker.start_run("churn", "dead")
            dead._stop.set()
            dead._wake.set()
            assert dead._keeper is not None
            dead._keeper.join()
            ids["dead"] = dead.id
            with stores.db.write() as conn:
                conn.execute(
                    runs.update()
                    .where(runs.c.id == dead.id)
                    .values(heartbeat_at=datetime.now(UTC) - timedelta(hours=2))
                )
            # Abandon the handle, as a killed process would: no atexit, no signal handler.
            from loopline.tracking import run as run_module
            from loopline.tracking import signals

            dead._status = "killed"
            run_module._unregister(dead)
            signals.release(dead._signals)
    finally:
        uuid.uuid4 = real_uuid4
    return {"path": path, "ids": ids}


def test_ls_json_filters_and_sorting(project: dict[str, object]) -> None:
    path = project["path"]
    ids = project["ids"]
    assert isinstance(path, Path)
    assert isinstance(ids, dict)
    listed = json.loads(loopline("runs", "ls", "--json", cwd=path).stdout)
    assert {r["id"] for r in listed} == set(ids.values())
    by_name = {r["name"]: r for r in listed}
    assert by_name["dead"]["status"] == "killed"  # reaped by ls: its heartbeat stopped
    assert by_name["rf"]["params"] == {"C": "1.0", "model": "rf"}
    assert by_name["rf"]["metrics"] == {"f1": 0.81, "loss": 0.05}

    best = json.loads(
        loopline(
            "runs",
            "ls",
            "--filter",
            "metrics.f1 >= 0.8",
            "--sort",
            "metrics.f1",
            "--desc",
            "--json",
            cwd=path,
        ).stdout
    )
    assert [r["name"] for r in best] == ["lr", "rf"]
    failed = json.loads(loopline("runs", "ls", "--status", "failed", "--json", cwd=path).stdout)
    assert [r["name"] for r in failed] == ["broken"]
    table = loopline("runs", "ls", "-f", "params.model = lr", cwd=path).stdout
    assert "aaaa2222" in table
    assert "f1" in table
    assert "params.model" in table
    assert "aaaa1111" not in table


def test_ls_json_is_compact_and_the_same_on_both_paths(project: dict[str, object]) -> None:
    """A plain listing is read straight from SQLite; with a filter (here one every run
    matches) it takes the regular path. Both print the same bytes."""
    path = project["path"]
    assert isinstance(path, Path)
    loopline("runs", "ls", cwd=path)  # the dead run is reaped (if no test did it yet)
    everything = ("-f", "start_time >= 1970-01-01")
    for args in ((), ("-n", "2"), ("-e", "churn", "-s", "failed"), ("-e", "nope"), ("-n", "0")):
        plain = loopline("runs", "ls", "--json", *args, cwd=path).stdout
        regular = loopline("runs", "ls", "--json", *args, *everything, cwd=path).stdout
        assert plain == regular, args
    text = loopline("runs", "ls", "--json", cwd=path).stdout
    listed = json.loads(text)
    assert len(text.splitlines()) == len(listed) + 2  # one run a line
    assert all(v is not None for r in listed for v in r.values())  # no nulls
    rf = next(r for r in listed if r["name"] == "rf")
    assert rf["params"] == {"C": "1.0", "model": "rf"}
    assert rf["metrics"] == {"f1": 0.81, "loss": 0.05}
    assert rf["metric_steps"] == {"loss": [5, 2]}
    assert rf["inputs"][0]["name"] == "customers"
    assert rf["artifacts"][0]["name"] == "report.json"
    assert rf["start_time"].endswith("Z")
    assert rf["duration_s"] >= 0
    broken = next(r for r in listed if r["name"] == "broken")
    assert broken["error"] == "ValueError: bad input"
    assert "metric_steps" not in broken
    assert "inputs" not in broken


def test_show(project: dict[str, object]) -> None:
    path = project["path"]
    assert isinstance(path, Path)
    shown = json.loads(loopline("runs", "show", "aaaa1", "--json", cwd=path).stdout)
    assert shown["name"] == "rf"
    assert shown["metric_steps"]["loss"] == {
        "step": 5,
        "points": 2,
        "timestamp": shown["metric_steps"]["loss"]["timestamp"],
    }
    assert shown["inputs"][0]["name"] == "customers"
    assert shown["artifacts"][0]["name"] == "report.json"
    text = loopline("runs", "show", "cccc", cwd=path).stdout
    for part in ("aaaa" not in text, "failed" in text, "ValueError: bad input" in text):
        assert part
    text = loopline("runs", "show", "aaaa2", cwd=path).stdout
    for word in ("params", "metrics (latest)", "customers", "report.json", "0.92"):
        assert word in text


def test_compare_highlights_differences(project: dict[str, object]) -> None:
    path = project["path"]
    assert isinstance(path, Path)
    data = json.loads(loopline("runs", "compare", "aaaa1", "aaaa2", "--json", cwd=path).stdout)
    rows = {row["field"]: row for row in data["rows"]}
    assert rows["params.C"] == {"field": "params.C", "values": ["1.0", "0.5"], "differs": True}
    assert rows["experiment"]["differs"] is False
    assert rows["metrics.loss"]["differs"] is False  # 0.05 at step 5 in both
    assert rows["metrics.f1"]["values"] == [0.81, 0.92]
    text = loopline("runs", "compare", "aaaa1", "aaaa2", cwd=path).stdout
    lines = {line.split("│")[2].strip(): line for line in text.splitlines() if "│" in line}
    assert "≠" in lines["params.C"]
    assert "≠" in lines["metrics.f1"]
    assert "≠" not in lines["experiment"]
    only = loopline("runs", "compare", "aaaa1", "aaaa2", "bbbb", "--only-diff", cwd=path).stdout
    assert "params.C" in only
    assert "experiment" not in only


def test_errors_name_the_id_and_the_next_step(project: dict[str, object]) -> None:
    path = project["path"]
    assert isinstance(path, Path)
    missing = loopline("runs", "show", "ffff", cwd=path, code=1)
    assert "No run with id or id prefix 'ffff'" in missing.stderr
    assert "loopline runs ls" in missing.stderr
    ambiguous = loopline("runs", "show", "aaaa", cwd=path, code=1)
    assert "ambiguous" in ambiguous.stderr
    assert "aaaa1111" in ambiguous.stderr
    loopline("runs", "compare", "aaaa1", "aaaa1", cwd=path, code=2)
    bad = loopline("runs", "ls", "--filter", "metrics.f1 >= high", cwd=path, code=2)
    assert "metrics compare with numbers" in bad.stderr
