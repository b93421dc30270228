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

Both work without holding a whole table: :class:`Normaliser` gives record batches the
canonical form batch by batch, and :func:`table_digest` takes one column at a time from
anything that has ``column(i)`` (a ``pyarrow.Table``, or a table staged on disk) and hashes
it chunk by chunk, without joining the chunks.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from loopline.data.errors import UnsupportedTypeError
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


class RestartStream(Exception):
    """A stream of batches found out late how a column must be read (a timestamp column
    whose later values lose precision in microseconds, a CSV column whose later values
    do not fit the type the first block suggested); read it again from the start."""


class Normaliser:
    """:func:`normalise_table` for a stream of record batches: the same canonical form.

    Every conversion works value by value except one: timestamps, times and durations
    move to microseconds only when no value of the whole column loses precision. The
    first batch decides; a later batch that would lose precision raises
    :class:`RestartStream`, and from then on the column keeps its unit.
    """

    def __init__(self, source: str | None = None) -> None:
        self._source = source
        self._keep_unit: set[str] = set()
        self._converted: set[str] = set()
        self.notes: list[str] = []

    def reset(self) -> None:
        """Start a new pass over the stream (decisions made so far stay)."""
        self._converted.clear()
        self.notes.clear()

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        arrays = []
        fields = []
        for field, column in zip(batch.schema, batch.columns, strict=True):
            to_unit = functools.partial(self._to_unit, field.name)
            col, note = _normalise_column(field.name, column, self._source, to_unit)
            if note and note not in self.notes:
                self.notes.append(note)
            arrays.append(col)
            fields.append(pa.field(field.name, col.type))
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))

    def _to_unit(self, name: str, col: Any, target: Any) -> Any:
        if name in self._keep_unit:
            return col
        converted = _to_unit(col, target)
        if converted.type == target:
            self._converted.add(name)
            return converted
        self._keep_unit.add(name)
        if name in self._converted:
            raise RestartStream(f"column {name!r} keeps its unit")
        return col


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


def _normalise_column(
    name: str, col: Any, source: str | None, to_unit: Callable[[Any, Any], Any] | None = None
) -> tuple[Any, str | None]:
    import pyarrow as pa
    import pyarrow.compute as pc

    unit = to_unit or _to_unit

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
        return unit(col, pa.timestamp("us", tz=t.tz)), None
    if pa.types.is_date(t):
        return (col if t == pa.date32() else col.cast(pa.date32())), None
    if pa.types.is_time(t):
        return unit(col, pa.time64("us")), None
    if pa.types.is_duration(t):
        return unit(col, pa.duration("us")), None
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
    """The sha256 naming the content of a canonical table (see the module docstring).

    ``table`` is a ``pyarrow.Table`` or anything with its ``column_names``, ``num_rows``
    and ``column(i)``; columns are taken one at a time (a few at once in threads, no more
    than its ``column_workers`` if it has one).
    """
    names = table.column_names
    workers = column_workers(table, len(names))

    def digest_of(i: int) -> tuple[str, bytes]:
        col = table.column(i)
        return str(col.type), column_digest(col)

    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            digests = list(pool.map(digest_of, range(len(names))))
    else:
        digests = [digest_of(i) for i in range(len(names))]
    top = hashlib.sha256()
    top.update(DIGEST_FORMAT)
    top.update(struct.pack("<qq", table.num_rows, len(names)))
    for name, (type_name, d) in zip(names, digests, strict=True):
        _update_str(top, name)
        _update_str(top, type_name)
        top.update(d)
    return Digest(top.hexdigest())


def column_workers(table: Any, columns: int) -> int:
    """Threads to take ``columns`` columns of ``table`` with: up to 4 and the CPUs, and
    no more than the table's ``column_workers`` (a staged table limits them by size)."""
    limit = getattr(table, "column_workers", 4)
    return max(1, min(columns, os.cpu_count() or 1, 4, limit))


def column_digest(column: Any) -> bytes:
    """sha256 of one canonical column: its validity, then its values (chunking-free).

    The bytes hashed are those of the column's chunks joined into one array, fed chunk by
    chunk: validity bits packed across chunk boundaries, and for text all lengths before
    all bytes.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    h = hashlib.sha256()
    chunks = [c for c in _chunks(column) if len(c)]
    n = len(column)
    h.update(struct.pack("<q", n))
    t = column.type
    if pa.types.is_null(t):
        h.update(b"null")
        return h.digest()
    nulls = column.null_count
    if nulls:
        h.update(b"validity")
        bits = _BitPacker(h)
        for chunk in chunks:
            bits.add(pc.is_valid(chunk).to_numpy(zero_copy_only=False))
        bits.flush()
    else:
        h.update(b"all-valid")

    def filled(chunk: Any) -> Any:
        return pc.fill_null(chunk, _zero(t)) if chunk.null_count else chunk

    if pa.types.is_boolean(t):
        for chunk in chunks:
            h.update(filled(chunk).to_numpy(zero_copy_only=False).astype(np.uint8).tobytes())
    elif pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        for chunk in chunks:
            h.update(_lengths(chunk).astype("<i8").tobytes())
        for chunk in chunks:
            # Null slots may hold bytes in an array; zeroed, they hold none.
            nulls_hold_bytes = chunk.null_count and _lengths(chunk, nulls=True).any()
            h.update(_value_bytes(filled(chunk) if nulls_hold_bytes else chunk))
    else:
        width = t.bit_width // 8
        for chunk in chunks:
            arr = filled(chunk)
            start = arr.offset * width
            h.update(memoryview(arr.buffers()[1])[start : start + len(arr) * width])
    return h.digest()


def _chunks(column: Any) -> list[Any]:
    import pyarrow as pa

    return list(column.chunks) if isinstance(column, pa.ChunkedArray) else [column]


def _offsets(chunk: Any) -> Any:
    import numpy as np

    offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64)
    return offsets[chunk.offset : chunk.offset + len(chunk) + 1]


def _lengths(chunk: Any, *, nulls: bool = False) -> Any:
    """Byte lengths of the values of a large string or binary array, 0 for nulls; with
    ``nulls``, the lengths of the null slots only."""
    import numpy as np
    import pyarrow.compute as pc

    lengths = np.diff(_offsets(chunk))
    if not chunk.null_count:
        return lengths[:0] if nulls else lengths
    valid = pc.is_valid(chunk).to_numpy(zero_copy_only=False)
    return lengths[~valid] if nulls else np.where(valid, lengths, 0)


def _value_bytes(chunk: Any) -> memoryview:
    """The bytes of all values of a large string or binary array, one after the other."""
    offsets = _offsets(chunk)
    data = chunk.buffers()[2]
    if data is None or offsets[-1] == offsets[0]:
        return memoryview(b"")
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])]


class _BitPacker:
    """``numpy.packbits`` of booleans arriving in pieces, fed to a hash as whole bytes."""

    def __init__(self, h: Any) -> None:
        import numpy as np

        self._h = h
        self._left = np.zeros(0, dtype=bool)

    def add(self, bits: Any) -> None:
        import numpy as np

        bits = np.concatenate([self._left, bits]) if len(self._left) else bits
        whole = len(bits) // 8 * 8
        self._h.update(np.packbits(bits[:whole]).tobytes())
        self._left = bits[whole:]

    def flush(self) -> None:
        import numpy as np

        if len(self._left):
            self._h.update(np.packbits(self._left).tobytes())


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
