"""Listings (``Tracker.list_runs``, the SQLite reader of ``runs ls``, the compact JSON):
the same runs, in the same order, with the same content as full records, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from loopline.store.stores import Stores
from loopline.tracking import RunRecord, Tracker
from loopline.tracking.listing import ListedRun, compact, dumps_listing
from loopline.tracking.listing_sqlite import read_listing
from loopline.tracking.tables import runs

#: Values a double may hold that text round trips get wrong first.
AWKWARD = {
    "tenth": 0.1,
    "third": 1 / 3,
    "big": 1.7976931348623157e308,
    "tiny": 5e-324,
    "neg_zero": -0.0,
    "whole": 3.0,
    "long": 0.9657017199667374,
    "inf": math.inf,
    "neg_inf": -math.inf,
    "nan": math.nan,
}


def fill(tracker: Tracker) -> dict[str, str]:
    """Runs of two experiments with every kind of thing a run holds; name -> id."""
    ids: dict[str, str] = {}
    specs = [
        ("rf-1", "finished", {"model": "rf", "n": 100}, {"f1": 0.82, "loss": 0.4}),
        ("rf-2", "failed", {"model": "rf", "n": 50}, {"f1": 0.78}),
        ("lr-1", "finished", {"model": "lr", "C": 0.5}, {"f1": 0.91, "loss": 0.2}),
        ("svm", "killed", {"model": "svm", "C": "auto"}, {}),
        ("odd", "finished", {"key with spaces": "x", "é": "ü"}, AWKWARD),
    ]
    for name, status, params, metrics in specs:
        with tracker.start_run("exp", name, params=params, tags={"team": name[:2]}) as run:
            if metrics:
                run.log_metrics(metrics)
        if status != "finished":
            with tracker.stores.db.write() as conn:
                conn.execute(runs.update().where(runs.c.id == run.id).values(status=status))
        ids[name] = run.id
    with tracker.start_run("exp", "curve", params={"model": "rf"}) as parent:
        for step in range(5):
            parent.log_metric("loss", 1.0 / (step + 1), step=step)
        parent.log_metric("f1", 0.5)
        parent.log_input("churn", 3, "ab" * 32)
        parent.log_artifact("report.txt", b"hello")
        with tracker.start_run("exp", "child", parent=parent) as child:
            child.log_metric("f1", 0.7, step=2)
            child.log_input("churn", 3, "ab" * 32, role="validation")
    ids["curve"], ids["child"] = parent.id, child.id
    with tracker.start_run("other", None, params={"model": "rf"}) as run:
        run.log_metric("f1", 0.99)
    ids["other"] = run.id
    return ids


@pytest.fixture
def populated(tracker: Tracker) -> dict[str, str]:
    return fill(tracker)


def same(record: RunRecord, listed: ListedRun) -> None:
    """The listing holds what the record holds (metric steps: those worth listing)."""
    assert listed["id"] == record.id
    assert listed["experiment"] == record.experiment
    assert listed["name"] == record.name
    assert listed["status"] == record.status
    assert listed["parent_id"] == record.parent_id
    assert listed["start_time"] == record.start_time
    assert listed["end_time"] == record.end_time
    assert listed["heartbeat_at"] == record.heartbeat_at
    assert listed["user"] == record.user
    assert listed["source"] == record.source
    assert listed["git_commit"] == record.git_commit
    assert listed["git_dirty"] == record.git_dirty
    assert listed["error"] == record.error
    assert list(listed["params"].items()) == sorted(record.params.items())
    assert list(listed["tags"].items()) == sorted(record.tags.items())
    assert list(listed["metrics"]) == sorted(record.metrics)
    for key, value in record.metrics.items():
        got = listed["metrics"][key]
        assert type(got) is float
        assert (math.isnan(got) and math.isnan(value)) or (
            got == value and math.copysign(1, got) == math.copysign(1, value)
        ), key
    assert listed["steps"] == {
        k: (s.step, s.points)
        for k, s in record.metric_summaries.items()
        if (s.step, s.points) != (0, 1)
    }
    inputs = [
        {"kind": i.kind, "name": i.name, "version": i.version, "digest": i.digest, "role": i.role}
        for i in record.inputs
    ]
    assert listed["inputs"] == inputs
    artifacts = [
        {"name": a.name, "digest": a.digest, "size": a.size, "created_at": a.created_at}
        for a in record.artifacts
    ]
    assert listed["artifacts"] == artifacts


SEARCHES: list[dict[str, Any]] = [
    {},
    {"limit": 3},
    {"limit": 2, "offset": 3},
    {"limit": 0},
    {"limit": None},
    {"experiment": "exp"},
    {"experiment": "nope"},
    {"status": ["failed", "killed"]},
    {"status": "finished", "experiment": "exp", "limit": 2},
    {"filters": ["metrics.f1 >= 0.8"]},
    {"filters": ["params.model = rf", "metrics.f1 > 0.1"]},
    {"filters": ["params.C < 1"]},
    {"filters": ["tags.team like r%"]},
    {"order_by": ["metrics.f1 desc"]},
    {"order_by": ["metrics.f1"]},
    {"order_by": ["params.C", "-name"]},
    {"order_by": ["params.n desc"], "limit": 2},
    {"order_by": ["tags.team", "metrics.loss desc"], "offset": 1},
    {"order_by": ["status", "start_time"], "filters": ["status != killed"]},
]


@pytest.mark.parametrize("search", SEARCHES)
def test_listing_matches_the_full_records(
    tracker: Tracker, populated: dict[str, str], search: dict[str, Any]
) -> None:
    records = tracker.search_runs(**search)
    listed = tracker.list_runs(**search)
    assert [r["id"] for r in listed] == [r.id for r in records]
    for record, one in zip(records, listed, strict=True):
        same(record, one)


def test_listing_of_children(tracker: Tracker, populated: dict[str, str]) -> None:
    parent = populated["curve"]
    listed = tracker.list_runs(parent_id=parent[:10])
    assert [r["id"] for r in listed] == [populated["child"]]
    same(tracker.get_run(populated["child"]), listed[0])
    assert listed[0]["steps"] == {"f1": (2, 1)}


def test_compact_json(tracker: Tracker, populated: dict[str, str]) -> None:
    listed = {r["name"]: r for r in tracker.list_runs(limit=None)}
    out = json.loads(dumps_listing(list(listed.values())))
    assert len(out) == len(listed)
    by_name = {r.get("name"): r for r in out}
    rf = by_name["rf-1"]
    optional = ("user", "source", "git_commit", "git_dirty", "error")
    set_there = {k for k in optional if listed["rf-1"][k] is not None}  # type: ignore[literal-required]
    always = {"id", "experiment", "status", "start_time", "params", "metrics", "tags"}
    assert set(rf) == always | {"name", "end_time", "duration_s"} | set_there
    assert rf["params"] == {"model": "rf", "n": "100"}
    assert rf["metrics"] == {"f1": 0.82, "loss": 0.4}
    assert rf["tags"] == {"team": "rf"}
    assert None not in {v for r in out for v in r.values() if not isinstance(v, dict | list)}
    start = datetime.fromisoformat(rf["start_time"])
    assert rf["start_time"].endswith("Z")
    assert start == listed["rf-1"]["start_time"]
    assert rf["duration_s"] == pytest.approx(
        (datetime.fromisoformat(rf["end_time"]) - start).total_seconds()
    )
    odd = by_name["odd"]["metrics"]
    assert (odd["nan"], odd["inf"], odd["neg_inf"]) == ("NaN", "Infinity", "-Infinity")
    assert odd["long"] == 0.9657017199667374
    assert odd["tiny"] == 5e-324
    curve = by_name["curve"]
    assert curve["metric_steps"] == {"loss": [4, 5]}
    assert curve["inputs"] == [
        {"kind": "dataset", "name": "churn", "version": "3", "digest": "ab" * 32, "role": "input"}
    ]
    (artifact,) = curve["artifacts"]
    assert artifact["name"] == "report.txt"
    assert artifact["size"] == 5
    assert artifact["created_at"].endswith("Z")
    assert "metric_steps" not in rf
    assert "inputs" not in rf
    assert "artifacts" not in rf
    assert by_name["child"]["parent_id"] == populated["curve"]
    (unnamed,) = [r for r in out if r["experiment"] == "other"]
    assert "name" not in unnamed  # no nulls: a key that has no value is left out
    assert "heartbeat_at" not in rf  # only while running


def test_compact_json_of_a_running_run(tracker: Tracker) -> None:
    run = tracker.start_run("exp", "live")
    try:
        (listed,) = tracker.list_runs()
        out = compact(listed)
        assert out["status"] == "running"
        assert "end_time" not in out
        assert "duration_s" not in out
        assert datetime.fromisoformat(out["heartbeat_at"]) == listed["heartbeat_at"]
    finally:
        run.finish()


def test_one_run_a_line(tracker: Tracker, populated: dict[str, str]) -> None:
    text = dumps_listing(tracker.list_runs(limit=None)).decode()
    lines = text.splitlines()
    assert lines[0] == "["
    assert lines[-1] == "]"
    assert len(lines) == len(populated) + 2
    assert all(orjson.loads(line.rstrip(",")) for line in lines[1:-1])
    assert dumps_listing([]) == b"[]\n"


# -- the SQLite reader of `loopline runs ls` ------------------------------------------------


def _reader(stores: Stores, **kwargs: Any) -> list[ListedRun] | None:
    path = stores.db.sqlite_path
    assert path is not None
    args: dict[str, Any] = {"experiment": None, "statuses": (), "limit": 50} | kwargs
    return read_listing(path, stores.settings.artifacts_url, busy_timeout=5.0, **args)


@pytest.mark.parametrize(
    "search",
    [
        {},
        {"limit": 2},
        {"limit": 0},
        {"limit": None},
        {"experiment": "exp"},
        {"experiment": "nope"},
        {"statuses": ["failed", "killed"]},
        {"experiment": "exp", "statuses": ["finished"], "limit": 3},
    ],
)
def test_sqlite_reader_matches_the_listing(sqlite_tracker: Tracker, search: dict[str, Any]) -> None:
    tracker = sqlite_tracker
    fill(tracker)
    read = _reader(tracker.stores, **search)
    listed = tracker.list_runs(
        experiment=search.get("experiment"),
        status=search.get("statuses") or None,
        limit=search.get("limit", 50),
    )
    assert read is not None
    assert repr(read) == repr(listed)  # equal, NaN metrics included
    assert dumps_listing(read) == dumps_listing(listed)


def test_sqlite_reader_leaves_dead_runs_to_the_reaper(sqlite_tracker: Tracker) -> None:
    tracker = sqlite_tracker
    with tracker.start_run("exp", "done"):
        pass
    assert _reader(tracker.stores) is not None
    live = tracker.start_run("exp", "live")
    try:
        assert _reader(tracker.stores) is not None  # its heartbeat is fresh
        with tracker.stores.db.write() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == live.id)
                .values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=5))
            )
        assert _reader(tracker.stores) is None
    finally:
        live.finish()
    assert _reader(tracker.stores) is not None


def test_sqlite_reader_leaves_ended_pipeline_runs_to_the_reaper(sqlite_tracker: Tracker) -> None:
    from loopline.pipeline.tables import pipeline_runs

    tracker = sqlite_tracker
    with tracker.start_run("pipe", "p") as run:
        pass
    row = {
        "id": "f" * 32,
        "pipeline": "p",
        "run_id": run.id,
        "status": "running",
        "params": {},
        "executor": "local",
        "use_cache": True,
        "started_at": datetime.now(UTC),
    }
    with tracker.stores.db.write() as conn:
        conn.execute(pipeline_runs.insert().values(**row))
    assert _reader(tracker.stores) is None


def test_sqlite_reader_refuses_what_the_regular_path_reports(
    sqlite_tracker: Tracker, tmp_path: Path
) -> None:
    stores = sqlite_tracker.stores
    path = stores.db.sqlite_path
    assert path is not None
    assert _reader(stores) == []
    other_store = read_listing(
        path, str(tmp_path / "elsewhere"), busy_timeout=5.0, experiment=None, statuses=(), limit=5
    )
    from loopline.store.db.project import bind_project

    bind_project(stores.db, stores.settings.artifacts_url, None)
    assert _reader(stores) == []
    assert other_store in (None, [])  # not bound yet: nothing to refuse
    assert (
        read_listing(
            path,
            str(tmp_path / "elsewhere"),
            busy_timeout=5.0,
            experiment=None,
            statuses=(),
            limit=5,
        )
        is None
    )
    with stores.db.write() as conn:
        conn.exec_driver_sql("UPDATE loopline_alembic_version SET version_num = '0001'")
    assert _reader(stores) is None
    missing = read_listing(
        tmp_path / "none.db", "x", busy_timeout=1.0, experiment=None, statuses=(), limit=5
    )
    assert missing is None
    assert not (tmp_path / "none.db").exists()
