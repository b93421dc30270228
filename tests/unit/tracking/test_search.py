"""Searching runs on SQLite and PostgreSQL: filters, sorting, limits, id prefixes."""

from __future__ import annotations

import itertools
import uuid

import pytest

from loopline.tracking import Tracker
from loopline.tracking.errors import InvalidRunFilterError, RunNotFoundError, TrackingError
from loopline.tracking.search import parse_filter, parse_sort


@pytest.fixture
def populated(tracker: Tracker) -> dict[str, str]:
    """Five runs of "exp" and one of "other"; returns name -> id."""
    specs = [
        ("rf-1", "finished", {"model": "rf", "n_estimators": 100}, {"f1": 0.82, "loss": 0.4}),
        ("rf-2", "finished", {"model": "rf", "n_estimators": 50}, {"f1": 0.78, "loss": 0.5}),
        ("lr-1", "finished", {"model": "lr", "C": 0.5}, {"f1": 0.91, "loss": 0.2}),
        ("lr-2", "failed", {"model": "lr", "C": 2}, {"f1": 0.6}),
        ("nan", "finished", {"model": "svm", "C": "auto"}, {"f1": float("nan")}),
    ]
    ids = {}
    for name, status, params, metrics in specs:
        run = tracker.start_run("exp", name, params=params, tags={"team": f"team-{name[:2]}"})
        with run:
            run.log_metrics(metrics)
        if status != "finished":
            # Re-finish through the table: the handle already ended it as finished.
            from loopline.tracking.tables import runs

            with tracker.stores.db.write() as conn:
                conn.execute(runs.update().where(runs.c.id == run.id).values(status=status))
        ids[name] = run.id
    with tracker.start_run("other", "o", params={"model": "rf"}) as run:
        run.log_metric("f1", 0.99)
    ids["o"] = run.id
    return ids


def names(tracker: Tracker, **kwargs: object) -> list[str | None]:
    return [r.name for r in tracker.search_runs(experiment="exp", **kwargs)]  # type: ignore[arg-type]


def test_filters(tracker: Tracker, populated: dict[str, str]) -> None:
    assert set(names(tracker, filters=["metrics.f1 >= 0.8"])) == {"rf-1", "lr-1"}
    assert set(names(tracker, filters=["params.model = rf"])) == {"rf-1", "rf-2"}
    assert set(names(tracker, filters=["params.model != rf"])) == {"lr-1", "lr-2", "nan"}
    assert set(names(tracker, filters=["metrics.f1 > 0.7", "params.model = 'rf'"])) == {
        "rf-1",
        "rf-2",
    }
    # Params compare as numbers when the value is an unquoted number; "auto" is not one.
    assert set(names(tracker, filters=["params.C < 1"])) == {"lr-1"}
    assert set(names(tracker, filters=["params.C >= 0.5"])) == {"lr-1", "lr-2"}
    assert set(names(tracker, filters=["params.n_estimators = 100.0"])) == {"rf-1"}
    assert set(names(tracker, filters=["params.n_estimators = '100.0'"])) == set()
    assert set(names(tracker, filters=["tags.team like team-l%"])) == {"lr-1", "lr-2"}
    assert set(names(tracker, filters=["status = failed"])) == {"lr-2"}
    assert set(names(tracker, filters=["attributes.name like rf%"])) == {"rf-1", "rf-2"}
    assert names(tracker, filters=["metrics.missing > 0"]) == []
    assert set(names(tracker, status="failed")) == {"lr-2"}
    assert set(names(tracker, status=["failed", "finished"])) == {
        "rf-1",
        "rf-2",
        "lr-1",
        "lr-2",
        "nan",
    }
    assert set(names(tracker, filters=["attributes.start_time >= 2000-01-01"])) == {
        "rf-1",
        "rf-2",
        "lr-1",
        "lr-2",
        "nan",
    }
    everywhere = tracker.search_runs(filters=["metrics.f1 > 0.95"])
    assert [r.name for r in everywhere] == ["o"]


def test_sorting_and_limit(tracker: Tracker, populated: dict[str, str]) -> None:
    # NaN is stored as NULL: it sorts last both ways.
    assert names(tracker, order_by=["metrics.f1 desc"]) == ["lr-1", "rf-1", "rf-2", "lr-2", "nan"]
    assert names(tracker, order_by=["metrics.f1"]) == ["lr-2", "rf-2", "rf-1", "lr-1", "nan"]
    assert names(tracker, order_by=["-metrics.loss"])[:3] == ["rf-2", "rf-1", "lr-1"]
    # Numeric params sort as numbers (50 before 100), text after them.
    assert names(tracker, order_by=["params.n_estimators"])[:2] == ["rf-2", "rf-1"]
    assert names(tracker, order_by=["params.C"])[:3] == ["lr-1", "lr-2", "nan"]
    assert names(tracker, order_by=["name"]) == ["lr-1", "lr-2", "nan", "rf-1", "rf-2"]
    assert names(tracker, order_by=["metrics.f1 desc"], limit=2) == ["lr-1", "rf-1"]
    newest_first = names(tracker)
    assert newest_first == ["nan", "lr-2", "lr-1", "rf-2", "rf-1"]
    assert names(tracker, limit=0) == []


def test_search_rejects_bad_expressions(sqlite_tracker: Tracker) -> None:
    bad = [
        "metrics.f1 >= high",
        "metrics.f1 like 0.%",
        "params.C",
        "params.C > abc",
        "nonsense = 1",
        "status = done",
        "attributes.start_time > yesterday",
        'params."unclosed = 1',
        "",
    ]
    for expression in bad:
        with pytest.raises(InvalidRunFilterError) as info:
            sqlite_tracker.search_runs(filters=[expression])
        assert info.value.expression == expression
    with pytest.raises(InvalidRunFilterError):
        sqlite_tracker.search_runs(order_by=["metrics.f1 sideways"])
    with pytest.raises(TrackingError, match="Unknown run status"):
        sqlite_tracker.search_runs(status="done")


def test_parsing() -> None:
    f = parse_filter('params."max depth" <= 3')
    assert (f.field.kind, f.field.key, f.op, f.value, f.number) == (
        "params",
        "max depth",
        "<=",
        "3",
        3.0,
    )
    assert str(f.field) == 'params."max depth"'
    f = parse_filter("metric.f1==0.5")
    assert (f.field.kind, f.field.key, f.op, f.number) == ("metrics", "f1", "=", 0.5)
    f = parse_filter("tags.note = 'a = b'")
    assert (f.value, f.quoted) == ("a = b", True)
    f = parse_filter("params.model <> rf")
    assert f.op == "!="
    s = parse_sort("metrics.f1 DESC")
    assert (str(s.field), s.descending) == ("metrics.f1", True)
    s = parse_sort("-start_time")
    assert (str(s.field), s.descending) == ("attributes.start_time", True)


def test_id_prefixes(sqlite_tracker: Tracker, monkeypatch: pytest.MonkeyPatch) -> None:
    fixed = iter(
        [
            uuid.UUID("abcd0000000000000000000000000001"),
            uuid.UUID("abcd0000000000000000000000000002"),
            uuid.UUID("12340000000000000000000000000003"),
        ]
    )
    monkeypatch.setattr(uuid, "uuid4", lambda: next(fixed))
    for _ in range(3):
        sqlite_tracker.start_run("exp").finish()
    monkeypatch.undo()
    assert sqlite_tracker.resolve_run_id("1234") == "12340000000000000000000000000003"
    assert sqlite_tracker.get_run("ABCD0000000000000000000000000001").id.endswith("1")
    with pytest.raises(RunNotFoundError) as info:
        sqlite_tracker.get_run("abcd")
    assert "ambiguous" in str(info.value)
    assert len(info.value.candidates) == 2
    assert "loopline runs ls" in str(info.value)
    for missing in ("ffff", "not-hex", "", "a" * 33):
        with pytest.raises(RunNotFoundError) as info:
            sqlite_tracker.get_run(missing)
        assert "No run with id or id prefix" in str(info.value)
        assert "loopline runs ls" in str(info.value)
        assert info.value.run_id == missing
    with pytest.raises(RunNotFoundError):
        sqlite_tracker.metric_history("ffff", "x")
    with pytest.raises(RunNotFoundError):
        sqlite_tracker.start_run("exp", parent="ffff")


def test_many_runs_are_loaded_in_chunks(sqlite_tracker: Tracker) -> None:
    for i in range(3):
        with sqlite_tracker.start_run("bulk", f"r{i}", params={"i": i}) as run:
            run.log_metric("m", i)
    import loopline.tracking.tracker as tracker_module

    original = tracker_module._CHUNK
    tracker_module._CHUNK = 2
    try:
        records = sqlite_tracker.search_runs(experiment="bulk", order_by=["params.i"])
    finally:
        tracker_module._CHUNK = original
    assert [(r.params["i"], r.metrics["m"]) for r in records] == [
        (str(i), float(i)) for i in range(3)
    ]
    assert list(itertools.pairwise(r.name for r in records)) == [("r0", "r1"), ("r1", "r2")]
