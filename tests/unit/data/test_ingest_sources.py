"""Ingest from DataFrames, Arrow, Parquet, SQL and S3 URLs, and the canonical content digest."""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopline.config import S3Settings
from loopline.data.content import normalise_table, table_digest
from loopline.data.errors import (
    DataArgumentError,
    DuplicateColumnsError,
    EmptySourceError,
    IngestError,
    MixedTypesError,
    SourceNotFoundError,
    UnsupportedTypeError,
)
from loopline.data.ingest import read_source


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": np.arange(6, dtype=np.int32),
            "score": [0.5, np.nan, 1.5, 2.0, 2.5, 3.0],
            "plan": pd.Categorical(["a", "b", "a", None, "b", "a"]),
            "when": pd.date_range("2024-01-01", periods=6, freq="D"),
            "ok": [True, False, True, True, False, True],
        }
    )


def digest_of(source: object, **kw: object) -> str:
    return table_digest(read_source(source, **kw).table)  # type: ignore[arg-type]


def test_one_content_one_digest_whatever_the_source(frame: pd.DataFrame, tmp_path: Path) -> None:
    from_pandas = read_source(frame)
    assert from_pandas.format == "pandas"
    t = from_pandas.table
    assert [str(x) for x in t.schema.types] == [
        "int64",
        "double",
        "large_string",
        "timestamp[us]",
        "bool",
    ]
    assert t.column("score").null_count == 1  # NaN is missing
    d = table_digest(t)
    # An Arrow table with other widths, NaN instead of null, plain strings, chunks.
    arrow = pa.table(
        {
            "id": pa.array(range(6), pa.int16()),
            "score": pa.array([0.5, float("nan"), 1.5, 2.0, 2.5, 3.0], pa.float32()),
            "plan": pa.array(["a", "b", "a", None, "b", "a"], pa.string()),
            "when": pa.array(
                [dt.datetime(2024, 1, 1) + dt.timedelta(days=i) for i in range(6)],
                pa.timestamp("ns"),
            ),
            "ok": [True, False, True, True, False, True],
        }
    )
    chunked = pa.Table.from_batches(arrow.to_batches(max_chunksize=4))
    assert chunked.column("id").num_chunks == 2
    assert digest_of(chunked) == d
    assert digest_of(pl.from_pandas(frame)) == d
    pq.write_table(arrow, tmp_path / "x.parquet", row_group_size=2, compression="snappy")
    assert digest_of(tmp_path / "x.parquet") == d
    # A sliced array (non-zero offsets) of the same values.
    bigger = pa.concat_tables([arrow.slice(0, 1), arrow]).slice(1)
    assert digest_of(bigger) == d


def test_every_value_counts(frame: pd.DataFrame) -> None:
    d = digest_of(frame)
    for column, row, value in [
        ("score", 5, 3.0000001),
        ("plan", 0, "c"),
        ("ok", 2, False),
        ("when", 1, pd.Timestamp("2030-01-01")),
    ]:
        changed = frame.copy()
        changed[column] = changed[column].astype(object)
        changed.loc[row, column] = value
        if column == "plan":
            changed["plan"] = changed["plan"].astype("str")
        assert digest_of(changed) != d, column
    assert digest_of(frame.iloc[:5]) != d
    assert digest_of(frame[["score", "id", "plan", "when", "ok"]]) != d
    assert digest_of(frame.rename(columns={"ok": "okay"})) != d
    # A null is not an empty string, nor zero.
    assert digest_of(pa.table({"a": ["", "x"]})) != digest_of(pa.table({"a": [None, "x"]}))
    assert digest_of(pa.table({"a": [0, 1]})) != digest_of(pa.table({"a": [None, 1]}))
    # Same bytes, other split between values.
    assert digest_of(pa.table({"a": ["ab", "c"]})) != digest_of(pa.table({"a": ["a", "bc"]}))


def test_pandas_index_and_names(frame: pd.DataFrame) -> None:
    indexed = frame.set_index("id")
    got = read_source(indexed)
    assert got.table.column_names[0] == "id"
    assert any("index" in n for n in got.notes)
    unnamed = frame.iloc[[1, 3, 5]]  # an unnamed, non-default index is dropped
    assert read_source(unnamed).table.column_names == list(frame.columns)
    numbered = pd.DataFrame([[1, 2]], columns=[0, 1])
    assert read_source(numbered).table.column_names == ["0", "1"]
    dup = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(DuplicateColumnsError):
        read_source(dup)


def test_mixed_python_values_name_the_rows() -> None:
    df = pd.DataFrame({"n": [1, 2, "abc", 4, 5.5, None, b"x"]})
    with pytest.raises(MixedTypesError) as info:
        read_source(df)
    err = info.value
    assert err.column == "n"
    assert err.expected == "numbers"
    assert err.count == 2
    assert [(r, v) for r, _, v in err.examples] == [(2, "abc"), (6, b"x")]
    assert "row 2: 'abc' (text)" in str(err)


def test_empty_and_unsupported() -> None:
    with pytest.raises(EmptySourceError, match="has no rows"):
        read_source(pd.DataFrame({"a": pd.Series([], dtype=float)}))
    with pytest.raises(EmptySourceError, match="has no columns"):
        read_source(pa.table({}))
    with pytest.raises(UnsupportedTypeError) as info:
        read_source(pa.table({"v": [[1, 2], [3]]}))
    assert info.value.column == "v"
    with pytest.raises(DataArgumentError, match=r"cannot read a builtins\.dict"):
        read_source({"a": [1]})
    with pytest.raises(DataArgumentError, match="no source"):
        read_source()
    with pytest.raises(DataArgumentError, match="LazyFrame"):
        read_source(pl.DataFrame({"a": [1]}).lazy())


def test_decimals_become_floats_with_a_note() -> None:
    got = read_source(pa.table({"p": pa.array([decimal.Decimal("1.25")], pa.decimal128(5, 2))}))
    assert got.table.column("p").to_pylist() == [1.25]
    assert any("decimal" in n for n in got.notes)


def test_sql_query(tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE sales (id INTEGER, amount REAL, region TEXT, at TEXT)")
        conn.executemany(
            "INSERT INTO sales VALUES (?, ?, ?, ?)",
            [(i, i * 2.5, ["n", "s"][i % 2], "10:30") for i in range(10)],
        )
        conn.execute("CREATE TABLE messy (v)")
        conn.executemany("INSERT INTO messy VALUES (?)", [(1,), (2,), ("three",), (4,)])
    url = f"sqlite:///{db}"
    got = read_source(url, sql="SELECT * FROM sales WHERE at = '10:30' ORDER BY id")
    assert got.format == "sql"
    assert got.table.num_rows == 10
    assert got.table.column("amount").to_pylist()[3] == 7.5
    assert "SELECT * FROM sales" in got.source
    with pytest.raises(MixedTypesError) as info:
        read_source(url, sql="SELECT v FROM messy")
    assert info.value.examples[0][0] == 2
    assert info.value.examples[0][2] == "three"
    with pytest.raises(EmptySourceError, match="returned no rows"):
        read_source(url, sql="SELECT * FROM sales WHERE id < 0")
    with pytest.raises(IngestError, match="the query failed: no such table: nope"):
        read_source(url, sql="SELECT * FROM nope")
    with pytest.raises(DuplicateColumnsError):
        read_source(url, sql="SELECT id, id FROM sales")
    with pytest.raises(DataArgumentError, match="not a database URL"):
        read_source("nodb://x", sql="SELECT 1")
    with pytest.raises(DataArgumentError, match="needs a database"):
        read_source(sql="SELECT 1")


@pytest.mark.s3
def test_s3_urls_use_the_project_s3_settings(s3_settings: S3Settings, s3_bucket: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=s3_settings.endpoint_url,
        region_name=s3_settings.region,
        aws_access_key_id=s3_settings.access_key_id,
        aws_secret_access_key=s3_settings.secret_access_key,
    )
    client.put_object(Bucket=s3_bucket, Key="in/data.csv", Body=b"a,b\n1,x\n2,y\n")
    got = read_source(f"s3://{s3_bucket}/in/data.csv", s3=s3_settings)
    assert got.table.column("b").to_pylist() == ["x", "y"]
    assert got.source == f"s3://{s3_bucket}/in/data.csv"
    with pytest.raises(SourceNotFoundError):
        read_source(f"s3://{s3_bucket}/in/missing.csv", s3=s3_settings)


def test_forced_dtypes_on_typed_sources_lose_nothing() -> None:
    table = pa.table({"t": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2, 9)], "f": [1.0, 2.5]})
    with pytest.raises(MixedTypesError, match="time of day") as info:
        read_source(table, dtypes={"t": "date"})
    assert info.value.examples[0][0] == 1
    with pytest.raises(MixedTypesError, match="cannot be read as integer"):
        read_source(table, dtypes={"f": "integer"})
    ok = read_source(table.slice(0, 1), dtypes={"t": "date", "f": "integer"}).table
    assert ok.column("t").to_pylist() == [dt.date(2024, 1, 1)]
    assert ok.column("f").to_pylist() == [1]


def test_normalise_keeps_sub_microsecond_timestamps() -> None:
    ns = pa.array([1, 2], pa.timestamp("ns"))
    table, _ = normalise_table(pa.table({"t": ns}))
    assert str(table.column("t").type) == "timestamp[ns]"
    whole = pa.array([1000, 2000], pa.timestamp("ns"))
    table, _ = normalise_table(pa.table({"t": whole}))
    assert str(table.column("t").type) == "timestamp[us]"


def test_a_parquet_file_is_read_in_batches_with_whole_column_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline.data import ingest

    monkeypatch.setattr(ingest, "PARQUET_BATCH_ROWS", 10)
    # Whole microseconds in the first batches; one value needs nanoseconds at the end.
    ns = [k * 1000 for k in range(95)] + [95_001]
    table = pa.table({"t": pa.array(ns, pa.timestamp("ns")), "x": list(range(96))})
    pq.write_table(table, tmp_path / "ns.parquet", row_group_size=10)
    got = read_source(tmp_path / "ns.parquet").table
    assert str(got.column("t").type) == "timestamp[ns]"
    assert got.column("t").to_pylist() == table.column("t").to_pylist()
    assert table_digest(got) == table_digest(normalise_table(table)[0])
    whole = pa.table({"t": pa.array(ns[:95], pa.timestamp("ns"))})
    pq.write_table(whole, tmp_path / "us.parquet", row_group_size=10)
    assert str(read_source(tmp_path / "us.parquet").table.column("t").type) == "timestamp[us]"
    # Forced dtypes are checked over every batch, and name the rows of the whole file.
    stamps = pa.table(
        {"d": pa.array([dt.datetime(2024, 1, 1)] * 25 + [dt.datetime(2024, 1, 2, 9)])}
    )
    pq.write_table(stamps, tmp_path / "d.parquet", row_group_size=10)
    with pytest.raises(MixedTypesError, match="1 timestamps have a time of day") as info:
        read_source(tmp_path / "d.parquet", dtypes={"d": "date"})
    assert info.value.examples[0][0] == 25
