"""A batch log file holds its chunks in one column type per column, whatever each chunk's."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from loopline.trigger.batchlog import LoggedChunk, log_table


def chunk(i: int, values: object) -> LoggedChunk:
    arr = np.asarray(values, dtype=object) if isinstance(values, list) else values
    return LoggedChunk(
        model="m",
        version=1,
        request_id=f"batch-r-{i}",
        rows=len(arr),
        arrived=1_700_000_000.0 + i,
        latency_ms=1.0,
        inputs={"x": arr},
        outputs={"prediction": np.zeros(len(arr), dtype=np.int64)},
    )


def test_ints_beside_floats_and_a_chunk_of_nulls_become_one_float_column() -> None:
    table = log_table(
        [
            chunk(0, np.array([1, 2], dtype=np.int64)),
            chunk(1, np.array([0.5, 1.5])),
            chunk(2, [None, None]),
        ]
    )
    assert table.schema.field("input.x").type == pa.float64()
    assert table.column("input.x").to_pylist() == [1.0, 2.0, 0.5, 1.5, None, None]
    assert (
        table.column("request_id").to_pylist()
        == ["batch-r-0"] * 2 + ["batch-r-1"] * 2 + ["batch-r-2"] * 2
    )
    assert table.column("row").to_pylist() == [0, 1, 0, 1, 0, 1]


def test_text_beside_numbers_and_mixed_values_are_kept_as_text() -> None:
    table = log_table(
        [
            chunk(0, np.array(["a", "b"], dtype=object)),
            chunk(1, np.array([3, 4], dtype=np.int64)),
            chunk(2, ["c", 5]),
        ]
    )
    assert table.schema.field("input.x").type == pa.string()
    assert table.column("input.x").to_pylist() == ["a", "b", "3", "4", "c", "5"]


def test_values_arrow_cannot_cast_to_text_are_written_as_python_text() -> None:
    # Lists become an Arrow list column, which has no cast to text: each value is
    # written as Python prints it, beside the other chunk's text.
    table = log_table([chunk(0, np.array(["a", "b"], dtype=object)), chunk(1, [[1, 2], [3]])])
    assert table.schema.field("input.x").type == pa.string()
    assert table.column("input.x").to_pylist() == ["a", "b", "[1, 2]", "[3]"]
