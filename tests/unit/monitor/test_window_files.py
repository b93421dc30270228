"""Which log files a window opens: those written since it began (a file is named after a
moment no earlier than any of its rows), so a window of a few seconds does not read the
whole hour; rows stamped ahead of the writer's clock are not lost."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np

from loopline.monitor.predictions import PredictionBatch, PredictionLogWriter, prediction_files
from loopline.monitor.windows import LogScan, Window
from loopline.store.objects.memory import MemoryObjectStore


def _batch(request: str, at: float) -> PredictionBatch:
    return PredictionBatch.from_requests(
        model="churn",
        version=1,
        role="primary",
        request_ids=[request],
        row_counts=[1],
        arrived=[at],
        latency_ms=[1.0],
        inputs={"x": np.array([1.0])},
        outputs={"prediction": np.array([0])},
    )


def _write(store: MemoryObjectStore, request: str, at: float) -> str:
    """Log one request that arrived at ``at``; the key of the file written."""
    before = set(prediction_files(store))
    writer = PredictionLogWriter(store, flush_interval_s=3600)
    batch = _batch(request, at)
    batch.logged_at = at
    writer.append(batch)
    writer.flush()
    (key,) = set(prediction_files(store)) - before
    return key


def _stamp(key: str) -> str:
    return key.rsplit("/", 1)[-1][:15]


def _second(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y%m%dT%H%M%S")


def test_a_window_opens_only_the_files_written_since_it_began() -> None:
    store = MemoryObjectStore()
    now = time.time()
    # A file is named after the moment it was written, after the rows it holds.
    old = _write(store, "old", now - 600)
    assert _second(now) <= _stamp(old) <= _second(time.time())
    # A future-dated row (a replay of simulated time): its file is named after the row.
    ahead = now + 7_200
    future = _write(store, "ahead", ahead)
    assert _stamp(future) == _second(ahead)
    # A window that starts after both files of this hour were written opens neither...
    later = datetime.fromtimestamp(now + 60, UTC)
    assert LogScan(store, "churn", Window(later, later + timedelta(seconds=4))).files == 0
    # ... but one holding the future row opens its file (and reads the row).
    start = datetime.fromtimestamp(ahead - 2, UTC)
    scan = LogScan(store, "churn", Window(start, start + timedelta(seconds=4)))
    assert scan.keys == [future]
    rows = sum(b.num_rows for b in scan.batches())
    assert rows == 1
    # A window from before the first file opens every file that may hold its rows.
    early = datetime.fromtimestamp(now - 700, UTC)
    assert LogScan(store, "churn", Window(early, early + timedelta(hours=3))).files == 2
