"""Staging: a file streamed to Parquet and read back a column at a time, in bounded memory."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from loopline.data import staging
from loopline.data.content import RestartStream, normalise_table, table_digest
from loopline.data.ingest import read_source, stage_source
from loopline.data.profile import compute_profile
from loopline.data.schema import infer_schema
from loopline.data.validate import validate_table
from loopline.store.objects.tables import COMPRESSION, COMPRESSION_LEVEL, ROW_GROUP_SIZE


def numbers(rows: int, columns: int = 4, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {f"i{k}": rng.integers(0, 10**6, rows) for k in range(columns // 2)}
    data.update({f"f{k}": rng.normal(size=rows).round(3) for k in range(columns - columns // 2)})
    return pa.table(data)


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_parquet_bytes_depend_on_the_data_only(tmp_path: Path) -> None:
    table, _ = normalise_table(
        pa.table({"x": np.arange(5000), "s": [f"v{k % 7}" if k % 5 else None for k in range(5000)]})
    )
    whole, pieces = tmp_path / "whole.parquet", tmp_path / "pieces.parquet"
    staging.write_parquet(table, whole)
    staging.write_parquet(pa.Table.from_batches(table.to_batches(max_chunksize=333)), pieces)
    assert sha_of(whole) == sha_of(pieces)
    # A table within one row group gives the bytes the store has always written.
    reference = tmp_path / "reference.parquet"
    pq.write_table(
        table,
        reference,
        compression=COMPRESSION,
        compression_level=COMPRESSION_LEVEL,
        row_group_size=ROW_GROUP_SIZE,
        write_statistics=True,
        use_dictionary=True,
    )
    assert sha_of(whole) == sha_of(reference)


def test_row_groups_are_sized_by_the_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    narrow = pa.schema([("x", pa.int64())])
    assert staging.row_group_rows(narrow) == ROW_GROUP_SIZE
    wide = pa.schema([(f"s{k}", pa.large_string()) for k in range(200)])
    assert staging.row_group_rows(wide) == staging.MIN_ROW_GROUP_ROWS
    monkeypatch.setattr(staging, "ROW_GROUP_BYTES", 8 * 1000)
    monkeypatch.setattr(staging, "MIN_ROW_GROUP_ROWS", 10)
    table, _ = normalise_table(numbers(4500, columns=1))
    path = tmp_path / "t.parquet"
    staging.write_parquet(table, path)
    assert [pq.ParquetFile(path).metadata.row_group(g).num_rows for g in range(5)] == [1000] * 4 + [
        500
    ]


def test_a_staged_table_reads_like_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(staging, "ROW_GROUP_BYTES", 64 * 1024)
    monkeypatch.setattr(staging, "MIN_ROW_GROUP_ROWS", 100)
    frame = numbers(20_000, columns=6).to_pandas()
    frame["label"] = np.where(frame["i0"] % 3 == 0, "a", "b")
    frame.loc[::7, "f0"] = np.nan
    frame.to_csv(tmp_path / "t.csv", index=False)
    memory = read_source(tmp_path / "t.csv").table
    (tmp_path / "one").mkdir()
    staged = stage_source(tmp_path / "t.csv", tmp_path / "one").table
    assert isinstance(staged, staging.StagedTable)
    assert pq.ParquetFile(staged.path).metadata.num_row_groups > 1
    assert (staged.num_rows, staged.num_columns) == (memory.num_rows, memory.num_columns)
    assert staged.schema == memory.schema
    assert staged.column("f0").equals(memory.column("f0"))
    assert staged.column(6).equals(memory.column("label"))
    assert pa.concat_tables(staged.iter_tables()).equals(memory)
    assert table_digest(staged) == table_digest(memory)
    assert compute_profile(staged) == compute_profile(memory)
    schema = infer_schema(memory, compute_profile(memory))
    assert infer_schema(staged, compute_profile(staged)) == schema
    doubled = pa.concat_tables([memory, memory.slice(0, 10)])
    staging.write_parquet(doubled, tmp_path / "doubled.parquet")
    (tmp_path / "two").mkdir()
    with_dups = stage_source(tmp_path / "doubled.parquet", tmp_path / "two").table
    report = validate_table(with_dups, schema, check_duplicates=True)
    assert report.to_dict() == validate_table(doubled, schema, check_duplicates=True).to_dict()
    [dups] = report.findings
    assert (dups.rule, dups.count) == ("duplicate_rows", 10)


def test_threads_hold_fewer_large_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table, _ = normalise_table(numbers(10_000, columns=4))
    staging.write_parquet(table, tmp_path / "t.parquet")
    staged = staging.StagedTable(tmp_path / "t.parquet", table.schema, table.num_rows)
    assert staged.column_workers >= 4
    monkeypatch.setattr(staging, "COLUMN_BYTES_IN_FLIGHT", 1)
    assert staging.StagedTable(tmp_path / "t.parquet", table.schema, 10_000).column_workers == 1


class _Twice:
    """A source that learns something during its first pass and asks to be read again."""

    source = "twice"
    format = "arrow"

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.notes: list[str] = []
        self.passes = 0

    def batches(self) -> Iterator[Any]:
        self.passes += 1
        for i, batch in enumerate(self.table.to_batches(max_chunksize=100)):
            if self.passes == 1 and i == 3:
                raise RestartStream("again")
            yield batch


def test_a_source_may_ask_to_be_read_again(tmp_path: Path) -> None:
    table, _ = normalise_table(numbers(1000))
    source = _Twice(table)
    staged = staging.stage(source, tmp_path)
    assert source.passes == 2
    assert staged.to_table().equals(table)
    assert sorted(p.name for p in tmp_path.iterdir()) == [staged.path.name]
    source = _Twice(table)
    assert staging.collect(source).equals(table)


_PEAK_SCRIPT = """
import importlib, json, sys, tempfile
from pathlib import Path
import pyarrow as pa
# Small blocks and row groups, so that a small file shows how memory is bounded.
for module, name, value in [
    ("loopline.data.csvfile", "BLOCK_BYTES", 1 << 16),
    ("loopline.data.csvfile", "COUNT_ROWS", 1 << 14),
    ("loopline.data.staging", "ROW_GROUP_BYTES", 1 << 20),
    ("loopline.data.staging", "MIN_ROW_GROUP_ROWS", 1024),
    ("loopline.data.staging", "MAX_PENDING_BYTES", 4 << 20),
]:
    try:
        setattr(importlib.import_module(module), name, value)
    except ImportError:
        pass
from loopline.config import settings_for
from loopline.data import Datasets
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores
with tempfile.TemporaryDirectory() as tmp:
    settings = settings_for(Path(tmp), environ={})
    migrate.upgrade(Database(settings.metadata_url, create=True))
    with Stores.open(settings) as stores:
        version = Datasets(stores).add("numbers", sys.argv[1])
print(json.dumps({"rows": version.rows, "peak": pa.default_memory_pool().max_memory()}))
"""


@pytest.mark.slow
def test_adding_a_csv_holds_a_block_and_a_few_columns_not_the_table(tmp_path: Path) -> None:
    table = numbers(150_000, columns=24)
    path = tmp_path / "numbers.csv"
    pacsv.write_csv(table, path)
    canonical_bytes = table.num_rows * table.num_columns * 8
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")},
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rows"] == 150_000
    # Arrow's allocations at their peak: a few columns and a row group, not the table.
    assert result["peak"] < 0.4 * canonical_bytes, result
