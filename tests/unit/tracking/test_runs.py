"""Runs on SQLite and PostgreSQL: what is logged comes back, whatever ends the run."""

from __future__ import annotations

import io
import math
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from loopline.store.stores import Stores
from loopline.tracking import Run, Tracker, current_run
from loopline.tracking.errors import InvalidMetricError, ParamConflictError, TrackingError
from loopline.tracking.tables import metrics


def count_points(stores: Stores, run_id: str, key: str | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(metrics).where(metrics.c.run_id == run_id)
    if key is not None:
        query = query.where(metrics.c.key == key)
    with stores.db.read() as conn:
        return int(conn.execute(query).scalar_one())


def test_params_metrics_tags_round_trip(tracker: Tracker) -> None:
    with tracker.start_run(
        "exp", "first", params={"C": 0.5, "model": "rf", "layers": [64, 32]}, tags={"t": "1"}
    ) as run:
        run.log_param("seed", 7)
        run.log_params({"flag": True, "none": None})
        run.set_tag("team", "ml")
        run.set_tags({"t": "2"})
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"f1": 0.8, "acc": 0.9}, step=3)
        assert current_run() is run
    assert current_run() is None
    assert run.status == "finished"

    record = tracker.get_run(run.id)
    assert record.status == "finished"
    assert record.experiment == "exp"
    assert record.name == "first"
    assert record.params == {
        "C": "0.5",
        "model": "rf",
        "layers": "[64, 32]",
        "seed": "7",
        "flag": "True",
        "none": "None",
    }
    assert record.tags == {"t": "2", "team": "ml"}
    assert record.metrics == {"loss": 0.2, "f1": 0.8, "acc": 0.9}
    assert record.metric_summaries["loss"].points == 5
    assert record.metric_summaries["loss"].step == 4
    assert record.end_time is not None
    assert record.end_time >= record.start_time
    assert record.error is None
    assert record.start_time.tzinfo is not None
    history = tracker.metric_history(run.id, "loss")
    assert [p.step for p in history] == [0, 1, 2, 3, 4]
    assert [p.value for p in history] == [1.0, 0.5, 1 / 3, 0.25, 0.2]


def test_buffered_points_are_all_durable_after_the_block(tracker: Tracker) -> None:
    with tracker.start_run("exp") as run:
        for i in range(3_000):
            run.log_metric("x", float(i))
    assert count_points(tracker.stores, run.id) == 3_000
    record = tracker.get_run(run.id)
    assert record.metrics["x"] == 2_999.0
    assert record.metric_summaries["x"].step == 2_999  # steps count up by default


def test_an_exception_fails_the_run_and_keeps_every_point(sqlite_tracker: Tracker) -> None:
    run = sqlite_tracker.start_run("exp")

    def train() -> None:
        with run:
            for i in range(1_500):
                run.log_metric("x", i)
            run.log_param("p", 1)
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        train()
    record = sqlite_tracker.get_run(run.id)
    assert record.status == "failed"
    assert record.error == "ZeroDivisionError: division by zero"
    assert record.params == {"p": "1"}
    assert count_points(sqlite_tracker.stores, run.id) == 1_500


def test_keyboard_interrupt_kills_the_run(sqlite_tracker: Tracker) -> None:
    run = sqlite_tracker.start_run("exp")

    def train() -> None:
        with run:
            run.log_metric("x", 1)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train()
    record = sqlite_tracker.get_run(run.id)
    assert record.status == "killed"
    assert record.metrics == {"x": 1.0}


@pytest.mark.parametrize(("code", "status"), [(0, "finished"), (None, "finished"), (3, "failed")])
def test_sys_exit_inside_the_block(sqlite_tracker: Tracker, code: int | None, status: str) -> None:
    with pytest.raises(SystemExit), sqlite_tracker.start_run("exp") as run:
        raise SystemExit(code)
    assert sqlite_tracker.get_run(run.id).status == status


def test_finish_without_a_with_block_and_twice(sqlite_tracker: Tracker) -> None:
    run = sqlite_tracker.start_run("exp")
    run.log_metric("x", 2.0)
    run.finish("failed", error="bad data")
    run.finish("finished")  # no-op once ended
    record = sqlite_tracker.get_run(run.id)
    assert (record.status, record.error, record.metrics) == ("failed", "bad data", {"x": 2.0})
    with pytest.raises(TrackingError, match="has ended"):
        run.log_metric("x", 3.0)
    other = sqlite_tracker.start_run("exp")
    with pytest.raises(TrackingError, match="expected one of"):
        other.finish("done")
    other.finish()


def test_params_are_immutable(sqlite_tracker: Tracker) -> None:
    with sqlite_tracker.start_run("exp", params={"lr": 0.1}) as run:
        run.log_param("lr", 0.1)  # same value: fine
        with pytest.raises(ParamConflictError) as info:
            run.log_param("lr", 0.2)
        assert info.value.key == "lr"
        assert info.value.old == "0.1"
        assert info.value.new == "0.2"
        assert "immutable" in str(info.value)
        with pytest.raises(ParamConflictError):
            run.log_params({"new": 1, "lr": 0.3})
    assert sqlite_tracker.get_run(run.id).params == {"lr": "0.1"}  # "new" was not logged either


def test_nan_and_infinity_are_values_text_is_not(sqlite_tracker: Tracker) -> None:
    with sqlite_tracker.start_run("exp") as run:
        run.log_metric("nan", math.nan)
        run.log_metric("inf", math.inf)
        run.log_metric("ninf", -math.inf)
        with pytest.raises(InvalidMetricError) as info:
            run.log_metric("acc", "0.9")  # type: ignore[arg-type]
        assert "'acc'" in str(info.value)
        assert "'0.9'" in str(info.value)
        for bad in (None, [1.0, 2.0], {"a": 1}, b"1"):
            with pytest.raises(InvalidMetricError, match="expected a number"):
                run.log_metric("acc", bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidMetricError, match="integer step"):
            run.log_metric("acc", 1.0, step=1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidMetricError, match="metric key"):
            run.log_metric("", 1.0)
        with pytest.raises(InvalidMetricError, match="metric key"):
            run.log_metric(["unhashable"], 1.0)  # type: ignore[arg-type]
        with pytest.raises(InvalidMetricError):
            run.log_metrics({"ok": 1.0, "bad": "x"})  # type: ignore[dict-item]
    record = sqlite_tracker.get_run(run.id)
    assert math.isnan(record.metrics["nan"])
    assert record.metrics["inf"] == math.inf
    assert record.metrics["ninf"] == -math.inf
    assert "ok" not in record.metrics
    assert "acc" not in record.metrics
    assert record.as_dict()["metrics"]["nan"] == "NaN"


def test_numpy_scalars_are_numbers(sqlite_tracker: Tracker) -> None:
    np = pytest.importorskip("numpy")
    with sqlite_tracker.start_run("exp") as run:
        run.log_metric("a", np.float32(0.5), step=np.int64(3))
        run.log_metric("b", np.array(2.0))
        run.log_param("c", np.float64(0.25))
    record = sqlite_tracker.get_run(run.id)
    assert record.metrics == {"a": 0.5, "b": 2.0}
    assert record.params == {"c": "0.25"}


def test_steps_default_to_the_next_step_of_each_key(sqlite_tracker: Tracker) -> None:
    with sqlite_tracker.start_run("exp") as run:
        run.log_metric("a", 1.0)
        run.log_metric("a", 2.0)
        run.log_metric("b", 1.0, step=10)
        run.log_metric("b", 2.0)
        run.log_metrics({"a": 3.0, "b": 3.0})
        run.log_metric("t", 1.0, timestamp=1_000.0)
    steps = {
        key: [p.step for p in sqlite_tracker.metric_history(run.id, key)] for key in ("a", "b")
    }
    assert steps == {"a": [0, 1, 2], "b": [10, 11, 12]}
    assert sqlite_tracker.metric_history(run.id, "t")[0].timestamp == 1_000.0
    assert sqlite_tracker.metric_history(run.id, "missing") == []


def test_latest_value_is_the_highest_step_not_the_last_logged(tracker: Tracker) -> None:
    with tracker.start_run("exp") as run:
        run.log_metric("x", 5.0, step=5)
        run.flush()
        run.log_metric("x", 1.0, step=1)  # a late point for an earlier step
    record = tracker.get_run(run.id)
    assert record.metrics["x"] == 5.0
    assert record.metric_summaries["x"].points == 2


def test_artifacts_are_content_addressed(sqlite_tracker: Tracker, tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights" * 1000)
    with sqlite_tracker.start_run("exp") as run:
        d1 = run.log_artifact("report.json", b'{"f1": 0.9}')
        d2 = run.log_artifact("model.bin", path)
        d3 = run.log_artifact("model-as-str", str(path))
        d4 = run.log_artifact("stream", io.BytesIO(b"streamed"))
        assert run.log_artifact("report.json", b'{"f1": 0.9}') == d1  # same content: no-op
        with pytest.raises(TrackingError, match="immutable"):
            run.log_artifact("report.json", b"other")
        with pytest.raises(TrackingError, match="no file"):
            run.log_artifact("missing", str(tmp_path / "nope.txt"))
    assert d2 == d3
    record = sqlite_tracker.get_run(run.id)
    by_name = {a.name: a for a in record.artifacts}
    assert set(by_name) == {"report.json", "model.bin", "model-as-str", "stream"}
    assert by_name["model.bin"].size == 7000
    assert by_name["stream"].size == len(b"streamed")
    assert sqlite_tracker.stores.cas.get(d1) == b'{"f1": 0.9}'
    assert sqlite_tracker.stores.cas.get(d4) == b"streamed"


def test_inputs_record_dataset_versions(tracker: Tracker) -> None:
    with tracker.start_run("exp") as run:
        run.log_input("customers", 3, "a" * 64)
        run.log_input("customers", 3, "a" * 64)  # idempotent
        run.log_input("labels", "v2", "b" * 64, kind="table", role="target")
        with pytest.raises(TrackingError, match="version"):
            run.log_input("x", "", "c" * 64)
    record = tracker.get_run(run.id)
    assert [(i.kind, i.name, i.version, i.role) for i in record.inputs] == [
        ("dataset", "customers", "3", "input"),
        ("table", "labels", "v2", "target"),
    ]


def test_parent_runs_and_children(sqlite_tracker: Tracker) -> None:
    with sqlite_tracker.start_run("exp", "parent") as parent:
        with sqlite_tracker.start_run("exp", "child-a", parent=parent) as a:
            pass
        with sqlite_tracker.start_run("exp", "child-b", parent=parent.id[:10]) as b:
            pass
    assert sqlite_tracker.get_run(a.id).parent_id == parent.id
    children = sqlite_tracker.search_runs(parent_id=parent.id)
    assert {c.id for c in children} == {a.id, b.id}


def test_logging_from_many_threads(sqlite_tracker: Tracker) -> None:
    with sqlite_tracker.start_run("exp") as run:

        def work(t: int) -> None:
            for i in range(500):
                run.log_metric(f"t{t}", float(i), step=i)
            run.set_tag(f"thread{t}", "done")
            run.log_param(f"p{t}", t)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    record = sqlite_tracker.get_run(run.id)
    assert count_points(sqlite_tracker.stores, run.id) == 2_000
    assert record.metrics == {f"t{t}": 499.0 for t in range(4)}
    assert len(record.tags) == 4
    assert len(record.params) == 4


def test_the_keeper_writes_points_and_heartbeats_while_the_run_goes_on(
    tracker: Tracker,
) -> None:
    with tracker.start_run("exp") as run:
        run.log_metric("x", 1.0)
        first = tracker.get_run(run.id).heartbeat_at
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and count_points(tracker.stores, run.id) == 0:
            time.sleep(0.05)
        assert count_points(tracker.stores, run.id) == 1  # written without a flush call
        time.sleep(0.3)
        later = tracker.get_run(run.id).heartbeat_at
        assert first is not None
        assert later is not None
        assert later > first
        assert tracker.reap_dead_runs(timeout_s=0.9) == []  # alive: not reaped


def test_a_run_without_heartbeat_is_reaped_as_killed(tracker: Tracker) -> None:
    run = tracker.start_run("exp")
    run.log_metric("x", 1.0)
    run.flush()
    # Simulate a process that stopped: its keeper thread no longer beats.
    run._stop.set()
    run._wake.set()
    assert run._keeper is not None
    run._keeper.join()
    time.sleep(0.6)
    assert tracker.reap_dead_runs(timeout_s=0.5) == [run.id]
    record = tracker.get_run(run.id)
    assert record.status == "killed"
    assert record.end_time == record.heartbeat_at
    assert record.error is not None
    assert "no heartbeat" in record.error
    assert tracker.reap_dead_runs(timeout_s=0.5) == []
    # The process was only paused: when it ends, its own verdict wins.
    run.finish()
    assert tracker.get_run(run.id).status == "finished"


def test_bad_names_are_refused(sqlite_tracker: Tracker) -> None:
    with pytest.raises(TrackingError, match="experiment"):
        sqlite_tracker.start_run("")
    with pytest.raises(TrackingError, match="param key"):
        sqlite_tracker.start_run("exp", params={" padded": 1})
    with pytest.raises(TrackingError, match="tag key"):
        sqlite_tracker.start_run("exp", tags={"x" * 300: "v"})
    with pytest.raises(TrackingError, match="heartbeat_interval"):
        Tracker(sqlite_tracker.stores, heartbeat_interval=5, dead_after=6)


def test_run_handles_are_independent(sqlite_tracker: Tracker) -> None:
    a = sqlite_tracker.start_run("exp", "a")
    b = sqlite_tracker.start_run("exp", "b")
    with a:
        with b:
            assert current_run() is b
            b.log_metric("m", 2.0)
        assert current_run() is a
        a.log_metric("m", 1.0)
    assert isinstance(a, Run)
    assert sqlite_tracker.get_run(a.id).metrics == {"m": 1.0}
    assert sqlite_tracker.get_run(b.id).metrics == {"m": 2.0}


def test_signal_handlers_are_installed_only_over_the_defaults(sqlite_tracker: Tracker) -> None:
    import signal

    from loopline.tracking import signals

    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    with sqlite_tracker.start_run("exp"):
        assert signal.getsignal(signal.SIGTERM) is signals._handler
        with sqlite_tracker.start_run("exp"):
            assert signal.getsignal(signal.SIGTERM) is signals._handler
        assert signal.getsignal(signal.SIGTERM) is signals._handler  # outer run still open
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def mine(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with sqlite_tracker.start_run("exp"):
            assert signal.getsignal(signal.SIGTERM) is mine  # the application's stays
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)

    done = threading.Event()

    def in_a_thread() -> None:
        with sqlite_tracker.start_run("exp"):
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        done.set()

    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join()
    assert done.is_set()
