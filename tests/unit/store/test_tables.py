"""Parquet tables in the content-addressed store: round trips and reproducible digests."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopline.errors import IntegrityError
from loopline.store.objects import ContentStore, open_object_store
from loopline.store.objects.tables import get_dataframe, get_table, put_table


@pytest.fixture
def cas() -> ContentStore:
    return ContentStore(open_object_store("memory://"))


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(1000),
            "score": [i / 7 for i in range(1000)],
            "plan": ["basic", "plus", "pro", None] * 250,
            "active": [i % 3 == 0 for i in range(1000)],
            "when": pd.date_range("2024-01-01", periods=1000, freq="h"),
        }
    )


def test_dataframe_round_trip(cas: ContentStore, frame: pd.DataFrame) -> None:
    digest = put_table(cas, frame)
    back = get_dataframe(cas, digest)
    pd.testing.assert_frame_equal(back, frame)


def test_dataframe_with_a_named_index_round_trips(cas: ContentStore, frame: pd.DataFrame) -> None:
    indexed = frame.set_index("id")
    back = get_dataframe(cas, put_table(cas, indexed))
    pd.testing.assert_frame_equal(back, indexed)


def test_table_round_trip(cas: ContentStore) -> None:
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", None], "c": [[1], [], [2, 3]]})
    digest = put_table(cas, table)
    assert get_table(cas, digest).equals(table)


def test_column_selection(cas: ContentStore, frame: pd.DataFrame) -> None:
    digest = put_table(cas, frame)
    assert get_table(cas, digest, columns=["plan", "id"]).column_names == ["plan", "id"]
    assert list(get_dataframe(cas, digest, columns=["score"]).columns) == ["score"]


def test_same_table_same_digest(cas: ContentStore, frame: pd.DataFrame) -> None:
    first = put_table(cas, frame)
    assert put_table(cas, frame.copy()) == first
    assert put_table(cas, pa.Table.from_pandas(frame)) == first
    assert len(list(cas.digests())) == 1
    changed = frame.copy()
    changed.loc[0, "score"] = -1.0
    assert put_table(cas, changed) != first


def test_digest_is_reproducible_across_processes(cas: ContentStore) -> None:
    code = (
        "import pyarrow as pa\n"
        "from loopline.store.objects import ContentStore, open_object_store\n"
        "from loopline.store.objects.tables import put_table\n"
        "t = pa.table({'a': list(range(100)), 'b': [str(i) for i in range(100)]})\n"
        "print(put_table(ContentStore(open_object_store('memory://')), t))\n"
    )
    table = pa.table({"a": list(range(100)), "b": [str(i) for i in range(100)]})
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == put_table(cas, table)


def test_written_as_zstd_parquet(cas: ContentStore, frame: pd.DataFrame) -> None:
    digest = put_table(cas, frame)
    metadata = pq.ParquetFile(pa.BufferReader(cas.get(digest))).metadata
    assert metadata.row_group(0).column(0).compression == "ZSTD"


def test_corrupted_table_is_refused(cas: ContentStore, frame: pd.DataFrame) -> None:
    digest = put_table(cas, frame)
    data = bytearray(cas.store.get(cas.key_for(digest)))
    data[len(data) // 2] ^= 0xFF
    cas.store.put(cas.key_for(digest), bytes(data))
    with pytest.raises(IntegrityError):
        get_table(cas, digest)


def test_other_objects_are_refused_clearly(cas: ContentStore) -> None:
    with pytest.raises(TypeError, match=r"pyarrow.Table or a pandas.DataFrame, not builtins.dict"):
        put_table(cas, {"a": [1]})


def test_importing_tables_does_not_import_pyarrow() -> None:
    code = (
        "import sys\n"
        "import loopline.store.objects, loopline.store.objects.tables\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pyarrow', 'pandas', 's3fs', 'botocore', 'boto3')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
