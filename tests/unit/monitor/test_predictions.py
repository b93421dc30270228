"""The prediction log: buffered writes, bounded memory, Parquet by model and hour, reading."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from loopline.config import S3Settings
from loopline.monitor.predictions import (
    PredictionBatch,
    PredictionIndex,
    PredictionLogWriter,
    inputs_frame,
    prediction_files,
    read_predictions,
)
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.objects import open_object_store
from loopline.store.objects.memory import MemoryObjectStore


def batch(ids: list[str], version: int = 1, model: str = "churn", rows: int = 2) -> PredictionBatch:
    n = len(ids) * rows
    return PredictionBatch.from_requests(
        model=model,
        version=version,
        role="primary",
        request_ids=ids,
        row_counts=[rows] * len(ids),
        arrived=[time.time()] * len(ids),
        latency_ms=[1.5] * len(ids),
        inputs={"x": np.arange(n, dtype=np.float64), "plan": np.array(["a"] * n, dtype=object)},
        outputs={"prediction": np.zeros(n, dtype=np.int64), "proba.1": np.full(n, 0.25)},
    )


def test_rows_are_written_as_parquet_partitioned_by_model_and_hour() -> None:
    store = MemoryObjectStore()
    writer = PredictionLogWriter(store, flush_interval_s=60)
    writer.append(batch(["a", "b"]))
    writer.append(batch(["c"], version=2, model="other"))
    assert writer.flush() == 6
    keys = prediction_files(store)
    assert len(keys) == 2
    hour = datetime.now(UTC).strftime("date=%Y-%m-%d/hour=%H")
    assert all(hour in k for k in keys)
    table = read_predictions(store, model="churn")
    assert table.num_rows == 4
    assert table.column("request_id").to_pylist() == ["a", "a", "b", "b"]
    assert table.column("row").to_pylist() == [0, 1, 0, 1]
    assert {"input.x", "input.plan", "output.prediction", "output.proba.1"} <= set(
        table.column_names
    )
    assert list(inputs_frame(table).columns) == ["x", "plan"]
    later = read_predictions(store, start=datetime.now(UTC) + timedelta(hours=2))
    assert later.num_rows == 0


def test_background_flush_by_rows_and_close_loses_nothing() -> None:
    store = MemoryObjectStore()
    writer = PredictionLogWriter(store, flush_interval_s=60, flush_rows=10).start()
    writer.append(batch([f"r{i}" for i in range(6)]))  # 12 rows: over flush_rows
    deadline = time.monotonic() + 10
    while not prediction_files(store) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert prediction_files(store)
    writer.append(batch(["last"]))
    writer.close()
    ids = set(read_predictions(store).column("request_id").to_pylist())
    assert ids == {f"r{i}" for i in range(6)} | {"last"}
    assert writer.stats.buffered_rows == 0


def test_full_buffer_drops_and_counts_instead_of_blocking() -> None:
    class Down(MemoryObjectStore):
        def put(self, key: str, data: object) -> int:  # type: ignore[override]
            raise OSError("store down")

    writer = PredictionLogWriter(Down(), flush_interval_s=60, max_buffer_rows=10)
    assert writer.append(batch(["a", "b", "c"]))  # 6 rows
    assert not writer.append(batch(["d", "e", "f"]))  # would be 12
    assert writer.stats.dropped_rows == 6
    assert writer.flush() == 0
    assert writer.stats.flush_errors == 1
    assert writer.stats.buffered_rows == 6  # kept for the next try
    assert writer.has_request("a")


def test_concurrent_appends_are_all_written() -> None:
    store = MemoryObjectStore()
    writer = PredictionLogWriter(store, flush_interval_s=0.05).start()

    def produce(k: int) -> None:
        for i in range(50):
            writer.append(batch([f"t{k}-{i}"], rows=1))

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert read_predictions(store).num_rows == 200


@pytest.mark.s3
def test_log_on_s3(s3_url: str, s3_settings: S3Settings) -> None:
    store = open_object_store(s3_url, s3=s3_settings)
    with PredictionLogWriter(store, flush_interval_s=60) as writer:
        writer.append(batch(["s3-a"]))
    assert read_predictions(store, model="churn").column("request_id").to_pylist() == ["s3-a"] * 2


def test_index_records_each_request(metadata_url: str, tmp_path: Path) -> None:
    with Database(metadata_url, create=True) as db:
        migrate.upgrade(db)
        index = PredictionIndex(db)
        writer = PredictionLogWriter(MemoryObjectStore(), flush_interval_s=60, index=index.add)
        writer.append(batch(["i1", "i2"], rows=3))
        writer.close()
        found = index.lookup(["i1", "i2", "nope"])
        assert set(found) == {"i1", "i2"}
        assert found["i1"].rows == 3
        assert found["i1"].version == 1
        assert index.count(model="churn") == 2
