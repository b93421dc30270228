"""monitor run with the window's files split over Ray workers: the same report as one
process reading the whole window (drift, quality, anomalies, prediction drift, realized
and estimated performance, health), on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from loopline.execute import Executor
from loopline.monitor.runner import run_monitor
from loopline.monitor.windows import make_window

from .support import Trained, make_frame

pytestmark = pytest.mark.ray


def _same(a: Any, b: Any, where: str = "report") -> None:
    """Equal, floats to 1e-9 relative (sums over shards add in another order)."""
    if isinstance(a, dict):
        assert isinstance(b, dict), where
        assert sorted(a) == sorted(b), where
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        if math.isnan(a):
            assert math.isnan(b), where
        else:
            assert b == pytest.approx(a, rel=1e-9, abs=1e-12), where
    else:
        assert a == b, where


def test_a_window_over_ray_gives_the_report_of_one_process(
    trained: Trained, ray_executor: Executor
) -> None:
    now = time.time()
    frames = [make_frame(1_200, seed=60 + i, shift=0.4 * (i % 2)) for i in range(5)]
    for i, frame in enumerate(frames):
        ids = trained.log(frame, at=now - 60 * (5 - i), prefix=f"r{i}")
        if i % 2 == 0:
            trained.label(ids, frame)  # labels for some of the files
    canary = make_frame(800, seed=70)
    trained.log(canary, at=now - 30, role="canary", prefix="c")
    window = make_window(window="1h")
    local = run_monitor(trained.stores, "churn@production", window, store=False)
    assert local.files >= 6
    rows: list[int] = []
    sharded = run_monitor(
        trained.stores,
        "churn@production",
        window,
        store=False,
        executor=ray_executor,
        on_progress=lambda done, _total: rows.append(done),
    )
    assert sharded.rows == local.rows == 6_800
    a, b = local.to_dict(), sharded.to_dict()
    for report in (a, b):
        report.pop("run_id")
        report.pop("seconds")
    _same(a, b)
    # The shards were real: drift found, labels joined, the canary judged apart.
    assert {g.role for g in sharded.groups} == {"primary", "canary"}
    primary = next(g for g in sharded.groups if g.role == "primary")
    assert primary.labels == 3 * 1_200
    assert any(d.drifted for d in primary.drift)
    assert rows[-1] == 6_800
