"""The canonical form of a table, and the content digest that names a dataset version.

Every source ends as a ``pyarrow.Table`` in one canonical form, so the same data gives the
same digest whichever way it arrived (CSV, Parquet, SQL, pandas, polars, Arrow):

- integers of any width become ``int64``; floats become ``float64`` and NaN becomes null
  (pandas does not tell them apart); decimals become ``float64`` (with a note);
- strings, string views and dictionary (categorical) columns become ``large_string``;
  binary becomes ``large_binary``; dates become ``date32``;
- timestamps, times and durations become microseconds when that loses nothing;
- schema and field metadata (pandas' index description, for instance) are dropped.

The digest is the sha256 over a header (format tag, rows, and per column its name and
canonical type) followed by one sha256 per column of its validity and its values (null
slots zeroed; strings as lengths then bytes). It depends on every row and on nothing a
Parquet writer decides (compression, row groups, chunking), so adding the same data twice
finds the version that holds it. Column order and row order are part of the content.
"""

from __future__ import annotations

import hashlib
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from loopline.errors import UnsupportedTypeError
from loopline.types import Digest

#: Changes whenever the canonical form or the digest layout changes.
DIGEST_FORMAT = b"loopline.table.v1"

#: Logical dtypes: what a schema records and validation compares.
LOGICAL_DTYPES = (
    "integer",
    "float",
    "boolean",
    "string",
    "binary",
    "datetime",
    "date",
    "time",
    "duration",
    "null",
)


def logical_dtype(arrow_type: Any) -> str:
    """The logical dtype (one of :data:`LOGICAL_DTYPES`) of a canonical Arrow type."""
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or _is_string_view(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "binary"
    if pa.types.is_timestamp(t):
        return "datetime"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_duration(t):
        return "duration"
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_dictionary(t):
        return logical_dtype(t.value_type)
    return str(t)


def normalise_table(table: Any, *, source: str | None = None) -> tuple[Any, list[str]]:
    """The canonical form of ``table`` and notes on any conversion worth telling the user."""
    import pyarrow as pa

    notes: list[str] = []
    arrays = []
    fields = []
    for field, column in zip(table.schema, table.columns, strict=True):
        col, note = _normalise_column(field.name, column, source)
        if note:
            notes.append(note)
        arrays.append(col)
        fields.append(pa.field(field.name, col.type))
    out = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    return out, notes


def _normalise_column(name: str, col: Any, source: str | None) -> tuple[Any, str | None]:
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    note = None
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = col.type
    if pa.types.is_integer(t):
        if t != pa.int64():
            try:
                col = col.cast(pa.int64())
            except (pa.ArrowInvalid, OverflowError) as exc:
                raise UnsupportedTypeError(
                    f"column {name!r} ({t}) holds values above 9223372036854775807 ({exc})",
                    source=source,
                    column=name,
                    hint="Datasets hold 64-bit signed integers; store such values as text",
                ) from exc
        return col, None
    if pa.types.is_decimal(t):
        col = col.cast(pa.float64())
        note = f"column {name!r}: {t} stored as float64"
        t = col.type
    if pa.types.is_floating(t):
        if t != pa.float64():
            col = col.cast(pa.float64())
        if pc.any(pc.is_nan(col)).as_py():
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, pa.float64()), col)
        return col, note
    if pa.types.is_boolean(t) or pa.types.is_null(t):
        return col, None
    if pa.types.is_string(t) or _is_string_view(t):
        return col.cast(pa.large_string()), None
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return col, None
    if pa.types.is_binary(t) or pa.types.is_fixed_size_binary(t) or _is_binary_view(t):
        return col.cast(pa.large_binary()), None
    if pa.types.is_timestamp(t):
        return _to_unit(col, pa.timestamp("us", tz=t.tz)), None
    if pa.types.is_date(t):
        return (col if t == pa.date32() else col.cast(pa.date32())), None
    if pa.types.is_time(t):
        return _to_unit(col, pa.time64("us")), None
    if pa.types.is_duration(t):
        return _to_unit(col, pa.duration("us")), None
    raise UnsupportedTypeError(
        f"column {name!r} has type {t}, which a dataset cannot hold",
        source=source,
        column=name,
        hint="Datasets hold flat columns (numbers, text, booleans, dates and times); "
        "flatten or serialise nested values first",
    )


def _to_unit(col: Any, target: Any) -> Any:
    """``col`` in ``target``'s unit when no value loses precision, else unchanged."""
    import pyarrow as pa

    if col.type == target:
        return col
    try:
        return col.cast(target, safe=True)
    except (pa.ArrowInvalid, OverflowError):
        return col


def _is_string_view(t: Any) -> bool:
    import pyarrow as pa

    check = getattr(pa.types, "is_string_view", None)
    return bool(check(t)) if check else False


def _is_binary_view(t: Any) -> bool:
    import pyarrow as pa

    check = getattr(pa.types, "is_binary_view", None)
    return bool(check(t)) if check else False


def table_digest(table: Any) -> Digest:
    """The sha256 naming the content of a canonical table (see the module docstring)."""
    names = table.column_names
    columns = table.columns
    workers = min(len(columns), os.cpu_count() or 1, 4)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            digests = list(pool.map(column_digest, columns))
    else:
        digests = [column_digest(c) for c in columns]
    top = hashlib.sha256()
    top.update(DIGEST_FORMAT)
    top.update(struct.pack("<qq", table.num_rows, table.num_columns))
    for name, col, d in zip(names, columns, digests, strict=True):
        _update_str(top, name)
        _update_str(top, str(col.type))
        top.update(d)
    return Digest(top.hexdigest())


def column_digest(column: Any) -> bytes:
    """sha256 of one canonical column: its validity, then its values (chunking-free)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    h = hashlib.sha256()
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    h.update(struct.pack("<q", n))
    t = arr.type
    if pa.types.is_null(t):
        h.update(b"null")
        return h.digest()
    if arr.null_count:
        valid = pc.is_valid(arr).to_numpy(zero_copy_only=False)
        h.update(b"validity")
        h.update(np.packbits(valid).tobytes())
        arr = pc.fill_null(arr, _zero(t))
        if isinstance(arr, pa.ChunkedArray):  # pragma: no cover - depends on pyarrow
            arr = arr.combine_chunks()
    else:
        h.update(b"all-valid")
    if pa.types.is_boolean(t):
        h.update(arr.to_numpy(zero_copy_only=False).astype(np.uint8).tobytes())
    elif pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        buffers = arr.buffers()
        offsets = np.frombuffer(buffers[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
        lengths = np.diff(offsets)
        h.update(lengths.astype("<i8").tobytes())
        if n and buffers[2] is not None:
            data = memoryview(buffers[2])[int(offsets[0]) : int(offsets[-1])]
            h.update(data)
    else:
        width = t.bit_width // 8
        buf = arr.buffers()[1]
        start = arr.offset * width
        h.update(memoryview(buf)[start : start + n * width])
    return h.digest()


def _zero(t: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_large_string(t):
        return pa.scalar("", t)
    if pa.types.is_large_binary(t):
        return pa.scalar(b"", t)
    if pa.types.is_boolean(t):
        return pa.scalar(False, t)
    # Fixed-width types: the all-zero bit pattern, whatever the type means by it.
    return pa.scalar(0, pa.int64()).cast(t) if pa.types.is_integer(t) else _zero_of(t)


def _zero_of(t: Any) -> Any:
    import pyarrow as pa

    width = t.bit_width
    storage = pa.int64() if width == 64 else pa.int32()
    return pa.scalar(0, storage).cast(t) if not pa.types.is_floating(t) else pa.scalar(0.0, t)


def _update_str(h: Any, text: str) -> None:
    data = text.encode("utf-8")
    h.update(struct.pack("<q", len(data)))
    h.update(data)
