"""The column types pyarrow infers for a whole CSV file, worked out one batch at a time.

pyarrow's table reader gives each column the first type, in a fixed order, that every
value of the column converts to: null, int64, boolean, double, date32, time32[s],
timestamp[s] and timestamp[ns] (naive, or with a zone as UTC), else text. Its streaming
reader decides from the first block alone and fails on a later block that does not fit.
When that happens, the CSV reader reads the file as text once and feeds every column's
batches to a :class:`ColumnKinds`, which keeps, for each type, whether all values so far
convert to it, using pyarrow's own converters (so that "0x10", " 7" or "2024-01-01T10"
are judged exactly as pyarrow judges them):

- a batch's non-null values are written as a one-column CSV and parsed by pyarrow, which
  infers the batch's own type (the first that fits it);
- no value fits two types of different families (numbers, booleans, dates and times,
  zoned timestamps, times of day); within a family a batch's values can fit a later type
  too (0/1 integers are booleans, integers are doubles, dates are timestamps, seconds are
  nanoseconds), and those few are checked by converting the batch to them.

The file's type is then the first type in pyarrow's order that every batch fits, which is
what the table reader would have chosen over the whole column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: pyarrow's order of inference (types of different families never share a value, so
#: only the order within a family matters).
ORDER = (
    "null",
    "integer",
    "boolean",
    "real",
    "date",
    "time",
    "timestamp",
    "timestamp_ns",
    "timestamp_tz",
    "timestamp_tz_ns",
    "text",
)
#: Later types (of the same family) that a batch of a given type may also fit.
_ALSO = {
    "integer": ("boolean", "real"),
    "date": ("timestamp", "timestamp_ns"),
    "timestamp": ("timestamp_ns",),
    "timestamp_tz": ("timestamp_tz_ns",),
}


def arrow_type(kind: str) -> Any:
    """The Arrow type the CSV reader is asked for, for a kind of :data:`ORDER`."""
    import pyarrow as pa

    return {
        "null": pa.null(),
        "integer": pa.int64(),
        "boolean": pa.bool_(),
        "real": pa.float64(),
        "date": pa.date32(),
        "time": pa.time32("s"),
        "timestamp": pa.timestamp("s"),
        "timestamp_ns": pa.timestamp("ns"),
        "timestamp_tz": pa.timestamp("s", tz="UTC"),
        "timestamp_tz_ns": pa.timestamp("ns", tz="UTC"),
        "text": pa.large_string(),
    }[kind]


def kind_of(t: Any) -> str:
    """The kind of an Arrow type that pyarrow's CSV inference produced."""
    import pyarrow as pa

    if pa.types.is_null(t):
        return "null"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_floating(t):
        return "real"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_timestamp(t):
        zoned = t.tz is not None
        fine = t.unit != "s"
        return "timestamp" + ("_tz" if zoned else "") + ("_ns" if fine else "")
    return "text"


class ColumnKinds:
    """Which kinds every value of one column seen so far converts to (see the module)."""

    def __init__(self, null_values: Sequence[str] | None) -> None:
        import pyarrow.csv as pacsv

        self._convert: Mapping[str, Any] = {
            "strings_can_be_null": True,
            **({"null_values": list(null_values)} if null_values is not None else {}),
        }
        defaults = pacsv.ConvertOptions()
        self._booleans = list(defaults.true_values) + list(defaults.false_values)
        self.fits = dict.fromkeys(ORDER, True)

    def update(self, values: Any) -> None:
        """Take in one batch of the column, read as text (nulls already recognised)."""
        import pyarrow.compute as pc

        present = pc.drop_null(values)
        if len(present) == 0:
            return  # nulls fit every type
        if pc.any(pc.match_substring(present, '"')).as_py():
            batch = {"text"}  # no number or date holds a quote
        else:
            data = _one_column_csv(present)
            kind = kind_of(self._read(data, None).schema.field(0).type)
            batch = {kind, "text"}
            for later in _ALSO.get(kind, ()):
                if self.fits[later] and self._fits(later, data, present):
                    batch.add(later)
        for kind in ORDER:
            if kind not in batch:
                self.fits[kind] = False

    def result(self) -> str:
        """The kind pyarrow would give the whole column."""
        return next(kind for kind in ORDER if self.fits[kind])

    def _fits(self, kind: str, data: Any, present: Any) -> bool:
        import pyarrow as pa
        import pyarrow.compute as pc

        if kind == "boolean":
            return bool(pc.all(pc.is_in(present, value_set=pa.array(self._booleans))).as_py())
        hexadecimal = pc.any(pc.match_substring(present, "x", ignore_case=True)).as_py()
        if kind == "real" and not hexadecimal:
            return True  # decimal integers are doubles; only hexadecimal ones are not
        try:
            self._read(data, arrow_type(kind))
        except pa.ArrowInvalid:
            return False
        return True

    def _read(self, data: Any, type_: Any) -> Any:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        convert = pacsv.ConvertOptions(
            **self._convert, **({"column_types": {"v": type_}} if type_ is not None else {})
        )
        return pacsv.read_csv(
            pa.BufferReader(data),
            read_options=pacsv.ReadOptions(column_names=["v"]),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=convert,
        )


def _one_column_csv(values: Any) -> Any:
    """Every value quoted on its own line (none holds a quote): a one-column CSV."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pa.large_string()
    if not pa.types.is_large_string(values.type):
        values = values.cast(text)
    joined = pc.binary_join_element_wise(
        pa.scalar('"', text), values, pa.scalar('"\n', text), pa.scalar("", text)
    )
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int64)
    first, last = int(offsets[joined.offset]), int(offsets[joined.offset + len(joined)])
    return joined.buffers()[2][first:last]
