"""Feedback: parsing, and storing labels with their statuses (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from loopline.data.errors import UnterminatedQuoteError
from loopline.monitor.errors import FeedbackError
from loopline.monitor.feedback import FeedbackStore, parse_feedback, read_feedback_file
from loopline.monitor.predictions import IndexEntry, PredictionIndex
from loopline.store.db import migrate
from loopline.store.db.engine import Database


@pytest.fixture
def db(metadata_url: str) -> Iterator[Database]:
    with Database(metadata_url, create=True) as database:
        migrate.upgrade(database)
        yield database


def _index(db: Database, rid: str, rows: int, at: datetime | None = None) -> None:
    PredictionIndex(db).add(
        [IndexEntry(rid, "churn", 3, "primary", rows, at or datetime.now(UTC), "k.parquet")]
    )


def test_parse_shapes_and_invalid_entries() -> None:
    items, invalid = parse_feedback({"request_id": "r1", "label": 1})
    assert [(i.request_id, i.row, i.label) for i in items] == [("r1", 0, 1)]
    items, invalid = parse_feedback(
        {
            "feedback": [
                {"request_id": "r2", "labels": ["a", "b"]},
                {"label": 1},
                5,
                {"request_id": "r3", "label": [1]},
                {"request_id": "r4", "row": -1, "label": 1},
            ]
        }
    )
    assert [(i.row, i.label) for i in items] == [(0, "a"), (1, "b")]
    assert len(invalid) == 4
    label, _ = parse_feedback({"request_id": "r5", "label": np.int64(2)})
    assert label[0].label == 2
    with pytest.raises(FeedbackError):
        parse_feedback([])


def test_rows_past_64_bits_and_deeply_nested_labels_are_invalid_entries() -> None:
    deep: object = 1
    for _ in range(5_000):
        deep = [deep]
    items, invalid = parse_feedback(
        [
            {"request_id": "a", "row": 10296170768595521536, "label": 1},
            {"request_id": "b", "label": deep},
            {"request_id": "c", "row": 2**63 - 1, "label": 0},
        ]
    )
    assert [(i.request_id, i.row) for i in items] == [("c", 2**63 - 1)]
    assert [r.request_id for r in invalid] == ["a", "b"]
    assert all(len(r.message or "") < 1_500 for r in invalid)


def test_statuses_stored_duplicate_updated_unknown_invalid_late(db: Database) -> None:
    _index(db, "known", rows=2)
    _index(db, "old", rows=1, at=datetime.now(UTC) - timedelta(days=30))
    store = FeedbackStore(db)
    items, invalid = parse_feedback(
        [
            {"request_id": "known", "labels": [1, 0]},
            {"request_id": "ghost", "label": 1},
            {"request_id": "old", "label": 0},
            {"request_id": "known", "row": 7, "label": 1},
        ]
    )
    report = store.record(items, invalid=invalid)
    counts = report.counts
    assert (counts["stored"], counts["unknown"], counts["invalid"], counts["late"]) == (3, 1, 1, 1)
    again = store.record(parse_feedback([{"request_id": "known", "labels": [1, 1]}])[0])
    assert [i.status for i in again.items] == ["duplicate", "updated"]
    labels = {(r.request_id, r.row): r for r in store.labels()}
    assert labels[("known", 1)].label == 1
    assert labels[("known", 1)].revisions == 1
    assert labels[("known", 0)].version == 3
    assert labels[("ghost", 0)].known is False
    assert labels[("old", 0)].predicted_at is not None


def test_pending_ids_count_as_known(db: Database) -> None:
    store = FeedbackStore(db, pending=lambda rid: rid == "buffered")
    report = store.record(parse_feedback({"request_id": "buffered", "label": 1})[0])
    assert report.items[0].status == "stored"


def test_import_csv_and_jsonl(db: Database, tmp_path: Path) -> None:
    _index(db, "a", rows=1)
    csv = tmp_path / "labels.csv"
    csv.write_text("request_id,label\na,1\nb,0\n,1\n")
    items, invalid = read_feedback_file(csv)
    report = FeedbackStore(db).record(items, invalid=invalid, source="file:labels.csv")
    assert report.counts["stored"] == 1
    assert report.counts["unknown"] == 1
    assert report.counts["invalid"] == 1
    jsonl = tmp_path / "labels.jsonl"
    jsonl.write_text('{"request_id": "a", "row": 0, "label": 1}\n')
    items, _ = read_feedback_file(jsonl)
    assert FeedbackStore(db).record(items).items[0].status == "duplicate"
    (tmp_path / "bad.csv").write_text("id,y\n1,2\n")
    with pytest.raises(FeedbackError, match="request_id"):
        read_feedback_file(tmp_path / "bad.csv")
    (tmp_path / "quote.csv").write_text('request_id,label\na,"1\nb,0\n')
    with pytest.raises(UnterminatedQuoteError, match="line 2"):
        read_feedback_file(tmp_path / "quote.csv")
    time.sleep(0)
