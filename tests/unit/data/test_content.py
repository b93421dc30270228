"""The content digest and profile of known data stay what they were: versions keep their names.

The pinned values were computed by the digest and profile code as it stood before they
learned to work a column (and a chunk) at a time. A change to any of them renames every
dataset version already stored, so a test failing here is a compatibility break, not a
test to update.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from loopline.data import Datasets
from loopline.data.content import column_digest, normalise_table, table_digest
from loopline.data.ingest import read_source, stage_source
from loopline.data.profile import compute_profile
from loopline.store.stores import Stores

FIXED_TABLE_DIGEST = "0851645aab02a391a6d468c1264ae841a2662979d3254bc0023bd76098049e31"
FIXED_PROFILE_SHA256 = "5556efa90cba9be5eb1828648a5c475114ab48bfb74c649c34850f6f592720f4"
FIXED_CSV_DIGEST = "ea0066d894fd745860fccd75113b9908239a43335ef3d9d4bbf1cd1a3e79a2e7"
FIXED_CSV_PROFILE_SHA256 = "d4710650f71ba8f7ccd0cc94b9f49d7de58ae99a23cf14f88d15810840c7cfc9"


def fixed_table() -> pa.Table:
    n = 1000
    return pa.table(
        {
            "i": pa.array(
                [None if k % 13 == 0 else (k * 37) % 101 - 50 for k in range(n)], pa.int32()
            ),
            "f": pa.array(
                [
                    float("nan") if k % 17 == 0 else None if k % 19 == 0 else k / 7 - 60
                    for k in range(n)
                ]
            ),
            "s": pa.array(
                [
                    None
                    if k % 11 == 0
                    else ""
                    if k % 23 == 0
                    else f"v{k % 9}"
                    if k % 3
                    else f"line\n{k}ü"
                    for k in range(n)
                ]
            ),
            "b": pa.array([None if k % 7 == 0 else k % 3 == 0 for k in range(n)]),
            "d": pa.array(
                [
                    None if k % 29 == 0 else dt.date(2000, 1, 1) + dt.timedelta(days=k * 3)
                    for k in range(n)
                ]
            ),
            "t": pa.array(
                [
                    None
                    if k % 31 == 0
                    else dt.datetime(2024, 1, 1) + dt.timedelta(seconds=k * 7919)
                    for k in range(n)
                ],
                pa.timestamp("ns"),
            ),
            "n": pa.nulls(n),
            "x": pa.array([b"\x00\xff" * (k % 4) if k % 5 else None for k in range(n)]),
        }
    )


FIXED_CSV = "id,amount,name,flag,day,at,note\n" + "".join(
    f"{k},{'' if k % 10 == 3 else k * 1.25},{['Oslo', 'Lima', 'Pune'][k % 3]},"
    f"{'true' if k % 2 else 'false'},2024-01-{k % 28 + 1:02d},"
    f"2024-02-01T{k % 24:02d}:{k % 60:02d}:00.5,"
    f"{chr(34) + 'two' + chr(10) + 'lines, and a comma' + chr(34) if k % 4 == 0 else 'plain'}\n"
    for k in range(300)
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_known_table_keeps_its_digest_and_profile() -> None:
    table, _ = normalise_table(fixed_table())
    assert table_digest(table) == FIXED_TABLE_DIGEST
    assert sha256(compute_profile(table).to_json()) == FIXED_PROFILE_SHA256


def test_a_known_csv_keeps_its_digest_and_profile_read_whole_or_staged(tmp_path: Path) -> None:
    path = tmp_path / "fixed.csv"
    path.write_text(FIXED_CSV)
    table = read_source(path).table
    assert table_digest(table) == FIXED_CSV_DIGEST
    assert sha256(compute_profile(table).to_json()) == FIXED_CSV_PROFILE_SHA256
    staged = stage_source(path, tmp_path).table
    assert table_digest(staged) == FIXED_CSV_DIGEST
    assert sha256(compute_profile(staged).to_json()) == FIXED_CSV_PROFILE_SHA256


def test_a_version_added_from_the_known_csv_keeps_its_name(stores: Stores, tmp_path: Path) -> None:
    path = tmp_path / "fixed.csv"
    path.write_text(FIXED_CSV)
    version = Datasets(stores).add("fixed", path)
    assert version.digest == FIXED_CSV_DIGEST
    assert sha256(Datasets(stores).profile("fixed").to_json()) == FIXED_CSV_PROFILE_SHA256


def test_the_digest_does_not_depend_on_chunks_or_offsets() -> None:
    table, _ = normalise_table(fixed_table())
    rng = np.random.default_rng(5)
    for _ in range(10):
        cuts = np.sort(rng.choice(np.arange(1, table.num_rows), size=12, replace=False))
        bounds = zip([0, *cuts], [*cuts, table.num_rows], strict=True)
        parts = [table.slice(a, b - a) for a, b in bounds]
        chunked = pa.concat_tables(parts)  # odd chunk lengths: validity bits cross bytes
        assert chunked.column("i").num_chunks == 13
        assert table_digest(chunked) == FIXED_TABLE_DIGEST


def test_null_slots_that_hold_bytes_hash_as_empty() -> None:
    clean = pa.array(["ab", None, "c"], pa.large_string())
    # The same values, but the null slot spans two bytes of the data buffer.
    offsets = pa.py_buffer(np.array([0, 2, 4, 5], dtype=np.int64).tobytes())
    dirty = pa.Array.from_buffers(
        pa.large_string(),
        3,
        [clean.buffers()[0], offsets, pa.py_buffer(b"abXYc")],
        null_count=1,
    )
    assert dirty.to_pylist() == clean.to_pylist()
    assert column_digest(dirty) == column_digest(clean)
    assert column_digest(pa.chunked_array([dirty.slice(0, 2), dirty.slice(2)])) == column_digest(
        clean
    )


@pytest.mark.parametrize("rows", [1, 7, 8, 9, 4097])
def test_validity_bits_across_chunks(rows: int) -> None:
    values = pa.array([None if k % 3 == 1 else k for k in range(rows)], pa.int64())
    whole = column_digest(values)
    for size in (1, 3, 8, 13):
        pieces = [values.slice(i, size) for i in range(0, rows, size)]
        assert column_digest(pa.chunked_array(pieces, type=pa.int64())) == whole
