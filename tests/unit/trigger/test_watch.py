"""The watcher: each file scored once, growing files left alone, retries, crash recovery."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
import sqlalchemy as sa

from loopline.config import S3Settings
from loopline.store.stores import Stores
from loopline.trigger import batch
from loopline.trigger.tables import trigger_files
from loopline.trigger.watch import Watcher

REF = "churn@production"


def ledger(stores: Stores) -> list[Any]:
    with stores.db.read() as conn:
        return list(conn.execute(sa.select(trigger_files).order_by(trigger_files.c.key)).all())


def folders(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "in").mkdir()
    return tmp_path / "in", tmp_path / "out"


def test_each_file_is_scored_exactly_once(db_stores: Stores, tmp_path: Path, frame: Any) -> None:
    src, dest = folders(tmp_path)
    frame(10).to_csv(src / "a.csv", index=False)
    frame(12).to_parquet(src / "b.parquet")
    (src / ".hidden.csv").write_text("x1,x2\n1,2\n")
    (src / "c.csv.part").write_text("x1,x2\n1,2\n")
    watcher = Watcher(db_stores, str(src), REF, str(dest), settle_s=0)
    first = watcher.run_once()
    assert [(o.key, o.status, o.rows_scored) for o in first] == [
        ("a.csv", "done", 10),
        ("b.parquet", "done", 12),
    ]
    assert watcher.run_once() == []
    frame(5).to_csv(src / "c.csv", index=False)
    assert [o.key for o in watcher.run_once()] == ["c.csv"]
    # A new watcher (a restart) finds the ledger and scores nothing again.
    assert Watcher(db_stores, str(src), REF, str(dest), settle_s=0).run_once() == []
    watcher.close()
    rows = ledger(db_stores)
    assert [(r.key, r.status, r.attempts) for r in rows] == [
        ("a.csv", "done", 1),
        ("b.parquet", "done", 1),
        ("c.csv", "done", 1),
    ]
    outputs = sorted(p.name for p in dest.iterdir() if not p.name.startswith("."))
    assert outputs == sorted(r.output_key for r in rows)
    assert sum(len(pd.read_parquet(dest / r.output_key)) for r in rows) == 27


def test_a_growing_file_is_read_only_once_settled(
    stores: Stores, tmp_path: Path, frame: Any
) -> None:
    src, dest = folders(tmp_path)
    text = frame(40).to_csv(index=False)
    half = len(text) // 2
    (src / "big.csv").write_text(text[:half])
    watcher = Watcher(stores, str(src), REF, str(dest), settle_s=0.2)
    assert watcher.run_once() == []
    assert watcher.pending == {"big.csv"}
    with (src / "big.csv").open("a") as f:
        f.write(text[half:])
    assert watcher.run_once() == []  # changed since the last poll: wait again
    time.sleep(0.25)
    [outcome] = watcher.run_once()
    watcher.close()
    assert (outcome.status, outcome.rows_scored, outcome.rows_invalid) == ("done", 40, 0)


def test_failures_are_retried_then_reported(
    stores: Stores, tmp_path: Path, frame: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dest = folders(tmp_path)
    frame(5).to_csv(src / "a.csv", index=False)

    def broken(self: Any, columns: Any) -> Any:
        raise RuntimeError("model down")

    monkeypatch.setattr(batch.ChunkScorer, "_predict", broken)
    watcher = Watcher(stores, str(src), REF, str(dest), settle_s=0, attempts=2, backoff_s=0)
    [first] = watcher.run_once()
    assert (first.status, first.attempts) == ("retry", 1)
    [second] = watcher.run_once()
    assert (second.status, second.attempts) == ("failed", 2)
    assert watcher.run_once() == []
    [row] = ledger(stores)
    assert row.status == "failed"
    assert "model down" in row.error
    reports = list(dest.glob("a-*.error.json"))
    assert len(reports) == 1
    assert "model down" in reports[0].read_text()


def test_an_interrupted_claim_is_recovered_or_retried(
    stores: Stores, tmp_path: Path, frame: Any
) -> None:
    src, dest = folders(tmp_path)
    frame(8).to_csv(src / "a.csv", index=False)
    frame(9).to_csv(src / "b.csv", index=False)
    Watcher(stores, str(src), REF, str(dest), settle_s=0, name="w").run_once()
    a, b = ledger(stores)
    kept = (dest / a.output_key).stat().st_mtime_ns
    (dest / b.output_key).unlink()
    # As if killed: a after its output was written, b before.
    with stores.db.write() as conn:
        conn.execute(trigger_files.update().values(status="processing"))
    outcomes = Watcher(stores, str(src), REF, str(dest), settle_s=0, name="w").run_once()
    assert [(o.key, o.status, o.attempts) for o in outcomes] == [
        ("a.csv", "recovered", 1),
        ("b.csv", "done", 2),
    ]
    assert (dest / a.output_key).stat().st_mtime_ns == kept
    assert len(pd.read_parquet(dest / b.output_key)) == 9
    assert [r.status for r in ledger(stores)] == ["done", "done"]


def test_watching_an_s3_prefix(
    s3_stores: Stores, s3_settings: S3Settings, s3_bucket: str, frame: Any
) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=s3_settings.endpoint_url,
        region_name=s3_settings.region,
        aws_access_key_id=s3_settings.access_key_id,
        aws_secret_access_key=s3_settings.secret_access_key,
    )
    client.put_object(Bucket=s3_bucket, Key="in/a.csv", Body=frame(6).to_csv(index=False))
    client.put_object(Bucket=s3_bucket, Key="in/b.csv.tmp", Body=b"x1,x2\n")
    src, dest = f"s3://{s3_bucket}/in", f"s3://{s3_bucket}/out"
    watcher = Watcher(s3_stores, src, REF, dest, settle_s=0)
    [outcome] = watcher.run_once()
    assert (outcome.key, outcome.status, outcome.rows_scored) == ("a.csv", "done", 6)
    assert watcher.run_once() == []
    watcher.close()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="out/")["Contents"]]
    assert keys == [f"out/{outcome.output_key}"]
