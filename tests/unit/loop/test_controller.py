"""The controller's schedule: aligned windows, each run once, missed ones caught up to a
limit, late labels counted by running a window again; and configuration refused when a
loop could never act."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from loopline.errors import ConfigError
from loopline.loop.controller import Controller
from loopline.monitor.tables import monitor_runs, series
from loopline.store.stores import Stores

from .support import make_bed, production


def _runs(stores: Stores) -> list[tuple[str, str]]:
    with stores.db.read() as conn:
        rows = conn.execute(
            sa.select(monitor_runs.c.window_start, monitor_runs.c.window_end).order_by(
                monitor_runs.c.started_at
            )
        ).all()
    return [(r.window_start.strftime("%H:%M"), r.window_end.strftime("%H:%M")) for r in rows]


def test_windows_are_aligned_run_once_and_caught_up_to_a_limit(
    sqlite_stores: Stores, tmp_path: Path
) -> None:
    bed = make_bed(sqlite_stores, tmp_path)
    ctl = bed.controller()
    _, end = bed.window(0)
    # Mid-window: the newest complete window is the one before.
    assert ctl.due_windows("churn", end + timedelta(seconds=20)) == [bed.window(0)]
    bed.tick(ctl, 0)
    assert ctl.due_windows("churn", end + timedelta(seconds=30)) == []
    bed.tick(ctl, 0)  # the same window again: nothing runs
    assert len(_runs(sqlite_stores)) == 1
    # Down for 10 windows: the newest catch_up (3) are run, older ones skipped.
    later = bed.window(10)[1] + timedelta(seconds=1)
    assert ctl.due_windows("churn", later) == [bed.window(i) for i in (8, 9, 10)]


def test_a_window_is_run_again_for_its_late_labels(sqlite_stores: Stores, tmp_path: Path) -> None:
    bed = make_bed(sqlite_stores, tmp_path)
    tables = dict(bed.settings.tables)
    tables["monitor"] = {"churn": dict(tables["monitor"]["churn"], label_delay="2m")}
    bed.settings = bed.settings.with_overrides(tables=tables)
    ctl = bed.controller()
    frame = production(300, 5)
    ids = bed.traffic(0, frame)
    bed.tick(ctl, 0)

    def labels_in(window_end: object) -> float | None:
        with sqlite_stores.db.read() as conn:
            return conn.execute(
                sa.select(series.c.value).where(
                    series.c.metric == "performance.labels", series.c.window_end == window_end
                )
            ).scalar()

    assert labels_in(bed.window(0)[1]) == 0.0
    bed.trained.label(ids, frame)  # the labels arrive a minute later
    bed.tick(ctl, 1)
    assert labels_in(bed.window(0)[1]) == 0.0  # not yet: label_delay is 2 minutes
    bed.tick(ctl, 2)
    assert labels_in(bed.window(0)[1]) == 300.0
    runs = _runs(sqlite_stores)
    assert runs.count(runs[0]) == 2  # window 0: once on time, once for its labels


def test_a_loop_without_gates_or_schedule_is_refused(sqlite_stores: Stores, tmp_path: Path) -> None:
    bed = make_bed(sqlite_stores, tmp_path)
    tables = {k: v for k, v in bed.settings.tables.items() if k != "gates"}
    with pytest.raises(ConfigError, match=r"\[loop.churn\] needs a \[gates.churn\] table"):
        Controller(sqlite_stores, bed.settings.with_overrides(tables=tables))
    tables = {k: v for k, v in bed.settings.tables.items() if k != "monitor"}
    with pytest.raises(ConfigError, match=r"needs \[monitor.churn\] every"):
        Controller(sqlite_stores, bed.settings.with_overrides(tables=tables))
    tables = dict(bed.settings.tables)
    tables["loop"] = {"churn": dict(tables["loop"]["churn"], actions=["opps"])}
    with pytest.raises(ConfigError, match="notifies the action 'opps'"):
        Controller(sqlite_stores, bed.settings.with_overrides(tables=tables))
