"""Reading CSV text into a table without silently coercing or losing anything.

pyarrow parses (multi-threaded); the checks around it turn what it would accept quietly
into errors that name the line, column and value:

- an empty file, or a header without rows -> :class:`EmptySourceError`;
- NUL bytes at the start, or the magic bytes of Parquet, gzip, zip ... ->
  :class:`FormatMismatchError` (a ``.csv`` that is not text);
- bytes that are not UTF-8 -> :class:`EncodingError` with the line and byte offset
  (pyarrow would turn the column into binary); pass ``encoding=`` to read other encodings;
- lines with more or fewer fields than the header -> :class:`MalformedRowsError`, listing
  the first lines and the total count (pyarrow would raise on the first without a number);
- duplicate or empty column names -> :class:`DuplicateColumnsError`;
- a column whose values are mostly numbers (or booleans, or dates) but not all ->
  :class:`MixedTypesError` with rows, lines and values, where pyarrow would silently make it
  a text column. A column is text only when most of its values are text; ``dtypes=`` forces
  a column's type.

Line numbers are worked out only when there is an error to report (by a second, slower
pass with Python's csv module that follows quoted newlines and skipped blank lines).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from loopline.errors import (
    DataArgumentError,
    DuplicateColumnsError,
    EmptySourceError,
    EncodingError,
    FormatMismatchError,
    IngestError,
    MalformedRowsError,
    MixedTypesError,
)

#: How many offending lines, rows or values an error quotes.
MAX_EXAMPLES = 5
#: A column is "mostly" of a kind from this share of its non-null values up.
MAJORITY = 0.5

# What pyarrow's CSV converters accept, as RE2 patterns (anchored, no surrounding spaces).
_KIND_PATTERNS = {
    "numbers": r"^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf|Inf|INF)$",
    "booleans": r"^(?:true|True|TRUE|false|False|FALSE)$",
    "dates/times": (
        r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$"
    ),
}
_DTYPE_KIND = {
    "integer": "numbers",
    "float": "numbers",
    "boolean": "booleans",
    "datetime": "dates/times",
    "date": "dates/times",
}
_MAGIC = [
    (b"PAR1", "a Parquet file", "name it .parquet"),
    (b"\x1f\x8b", "gzip-compressed", "name it .csv.gz, or decompress it"),
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx file is one)", "export it as CSV"),
    (b"BZh", "bzip2-compressed", "name it .csv.bz2, or decompress it"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "name it .csv.zst, or decompress it"),
    (b"ARROW1", "an Arrow IPC file", "convert it to Parquet or CSV"),
    (b"SQLite format 3\x00", "a SQLite database", "read it with --sql QUERY --db sqlite:///..."),
    (b"%PDF", "a PDF document", "export the table as CSV"),
]
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
_SNIFF_BYTES = 8192


def compression_for(name: str) -> str | None:
    for ext, codec in _COMPRESSION.items():
        if name.lower().endswith(ext):
            return codec
    return None


def check_magic(head: bytes, source: str, declared: str) -> None:
    """Refuse content that announces another format than ``declared`` (csv/parquet)."""
    for magic, what, fix in _MAGIC:
        if head.startswith(magic):
            if declared == "parquet" and magic == b"PAR1":
                return
            raise FormatMismatchError(
                f"is {what}, not {declared.upper()} (it starts with the bytes {magic[:4]!r})",
                source=source,
                byte_offset=0,
                hint=f"Check the file, or {fix}",
            )


def read_csv(
    buf: Any,
    source: str,
    *,
    delimiter: str | None = None,
    dtypes: Mapping[str, str] | None = None,
    null_values: Sequence[str] | None = None,
    encoding: str | None = None,
) -> tuple[Any, list[str]]:
    """Parse CSV bytes (a ``pyarrow.Buffer``) into a table; returns (table, notes)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    notes: list[str] = []
    head = buf[:_SNIFF_BYTES].to_pybytes()
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) and encoding is None:
        raise EncodingError(
            "is UTF-16 text (it starts with a UTF-16 byte order mark), not UTF-8",
            source=source,
            byte_offset=0,
            hint="Convert it to UTF-8, or pass encoding='utf-16' (CLI: --encoding utf-16)",
        )
    if head.startswith(b"\xef\xbb\xbf"):
        buf = buf.slice(3)
        head = head[3:]
    if not head.strip():
        raise EmptySourceError(
            "is empty" if buf.size == 0 else "holds only whitespace",
            source=source,
            hint="Check the path, and that the file was completely written",
        )
    check_magic(head, source, "csv")
    if encoding is None and b"\x00" in head:
        offset = head.index(b"\x00")
        line = head.count(b"\n", 0, offset) + 1
        raise FormatMismatchError(
            f"is binary, not CSV text: it has a NUL byte at byte offset {offset} (line {line})",
            source=source,
            byte_offset=offset,
            line=line,
            hint="Check that the file is really a CSV export",
        )

    first_line = head.split(b"\n", 1)[0]
    if delimiter is None:
        delimiter = _sniff_delimiter(first_line)
        if delimiter != ",":
            notes.append(f"fields are separated by {delimiter!r}")
    dtypes = dict(dtypes or {})
    column_types = {name: pa.large_string() for name in dtypes}
    bad_rows: list[tuple[int | None, int, int, str]] = []

    def on_invalid(row: Any) -> str:
        bad_rows.append((row.number, row.expected_columns, row.actual_columns, row.text))
        return "skip"

    # Quoted fields may hold newlines only if there are quotes at all; checking for them
    # keeps the fast (chunked, parallel) parse for the common case.
    has_quotes = _has_byte(buf, ord('"'))

    def parse(threads: bool) -> Any:
        bad_rows.clear()
        convert = pacsv.ConvertOptions(
            column_types=column_types,
            strings_can_be_null=True,
            **({"null_values": list(null_values)} if null_values is not None else {}),
        )
        return pacsv.read_csv(
            pa.BufferReader(buf),
            read_options=pacsv.ReadOptions(
                use_threads=threads, **({"encoding": encoding} if encoding else {})
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                newlines_in_values=has_quotes,
                invalid_row_handler=on_invalid,
            ),
            convert_options=convert,
        )

    try:
        table = parse(threads=True)
        if bad_rows and any(number is None for number, *_ in bad_rows):
            table = parse(threads=False)  # the serial parse numbers the rows
    except UnicodeDecodeError as exc:
        raise _encoding_error(buf, source, delimiter) from exc
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "UTF8" in message or "UTF-8" in message or "utf-8" in message:
            raise _encoding_error(buf, source, delimiter) from exc
        if "Empty CSV file" in message:
            raise EmptySourceError("is empty", source=source) from exc
        raise IngestError(
            f"cannot be parsed as CSV: {message.splitlines()[0]}", source=source
        ) from exc

    try:
        names = table.column_names
    except UnicodeDecodeError as exc:  # a header that is not UTF-8
        raise _encoding_error(buf, source, delimiter) from exc
    if bad_rows:
        raise _malformed(buf, source, delimiter, bad_rows)
    binary = [f.name for f in table.schema if pa.types.is_binary(f.type)]
    if binary and encoding is None:
        raise _encoding_error(buf, source, delimiter)
    check_column_names(names, source)
    if table.num_rows == 0:
        raise EmptySourceError(
            f"has a header ({', '.join(names[:8])}) but no data rows", source=source
        )
    unknown = sorted(set(dtypes) - set(names))
    if unknown:
        raise DataArgumentError(
            f"{source}: dtypes names no column {unknown[0]!r}; the columns are {', '.join(names)}"
        )
    line_of = _LineMap(buf, delimiter, source)
    columns = []
    for name, col in zip(names, table.columns, strict=True):
        if name in dtypes:
            col = coerce_text_column(col, name, dtypes[name], source, line_of)
        elif pa.types.is_large_string(col.type) or pa.types.is_string(col.type):
            _check_mixed(col, name, source, line_of)
        columns.append(col)
    return pa.Table.from_arrays(columns, names=names), notes


def _has_byte(buf: Any, byte: int) -> bool:
    import numpy as np

    data = np.frombuffer(buf, dtype=np.uint8)
    # In slices, so that a large file does not need a second full-size boolean array.
    step = 1 << 24
    return any(bool((data[i : i + step] == byte).any()) for i in range(0, len(data), step))


def _sniff_delimiter(first_line: bytes) -> str:
    """A comma, unless the header has none but a tab, semicolon or pipe."""
    if b"," in first_line:
        return ","
    for candidate in (b"\t", b";", b"|"):
        if candidate in first_line:
            return candidate.decode()
    return ","


def check_column_names(names: Sequence[str], source: str) -> None:
    """Raise DuplicateColumnsError on repeated or empty column names."""
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        seen.setdefault(name, []).append(i)
    empty = [i for i, name in enumerate(names) if not name.strip()]
    if empty:
        raise DuplicateColumnsError(
            f"column {empty[0] + 1} has no name",
            source=source,
            names=[""],
            hint="Give every column a name in the header line",
        )
    dups = {n: idx for n, idx in seen.items() if len(idx) > 1}
    if dups:
        described = "; ".join(
            f"{n!r} at positions {', '.join(str(i + 1) for i in idx)}" for n, idx in dups.items()
        )
        raise DuplicateColumnsError(
            f"has duplicate column names: {described}",
            source=source,
            names=list(dups),
            hint="Rename the columns so that each name appears once",
        )


def _kind_masks(values: Any) -> dict[str, Any]:
    import pyarrow.compute as pc

    return {
        kind: pc.match_substring_regex(values, pattern=pattern)
        for kind, pattern in _KIND_PATTERNS.items()
    }


def _check_mixed(col: Any, name: str, source: str, line_of: _LineMap) -> None:
    """Raise MixedTypesError when most values of a text column are of another kind."""
    import pyarrow.compute as pc

    counts = pc.value_counts(col)
    values = counts.field("values")
    freq = counts.field("counts").to_numpy(zero_copy_only=False)
    valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
    total = int(freq[valid].sum())
    if total == 0:
        return
    for kind, mask in _kind_masks(values).items():
        matches = pc.fill_null(mask, False).to_numpy(zero_copy_only=False) & valid
        hits = int(freq[matches].sum())
        if hits == total or hits < MAJORITY * total:
            continue
        offenders = values.filter(pc.invert(pc.fill_null(mask, True)))
        _raise_mixed(col, name, source, kind, offenders, total - hits, total, line_of)


def coerce_text_column(col: Any, name: str, dtype: str, source: str, line_of: Any) -> Any:
    """Convert a text column to ``dtype``; raise MixedTypesError naming the bad values."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from loopline.data.schema import arrow_type_for

    if dtype == "string":
        return col
    kind = _DTYPE_KIND.get(dtype)
    target = arrow_type_for(dtype)
    if kind is None or target is None:
        raise DataArgumentError(
            f"{source}: cannot read column {name!r} as {dtype!r}; expected one of "
            "string, integer, float, boolean, datetime, date"
        )
    mask = pc.match_substring_regex(col, pattern=_KIND_PATTERNS[kind])
    if dtype == "integer":
        mask = pc.and_(mask, pc.match_substring_regex(col, pattern=r"^[+-]?\d+$"))
    elif dtype == "date":  # a time of day would be cut off
        mask = pc.match_substring_regex(col, pattern=r"^\d{4}-\d{2}-\d{2}$")
        kind = "dates (YYYY-MM-DD)"
    bad = pc.invert(pc.fill_null(mask, True))
    n_bad = pc.sum(bad).as_py() or 0
    if n_bad:
        offenders = pc.unique(col.filter(bad))
        total = len(col) - col.null_count
        _raise_mixed(col, name, source, kind, offenders, n_bad, total, line_of, forced=dtype)
    try:
        if dtype == "date":
            return pc.cast(pc.cast(col, pa.timestamp("us")), pa.date32())
        return pc.cast(col, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise MixedTypesError(
            f"column {name!r} cannot be read as {dtype}: {str(exc).splitlines()[0]}",
            source=source,
            column=name,
            expected=dtype,
            examples=[],
            count=0,
        ) from exc


def _raise_mixed(
    col: Any,
    name: str,
    source: str,
    kind: str,
    offenders: Any,
    n_bad: int,
    total: int,
    line_of: Any,
    forced: str | None = None,
) -> None:
    import numpy as np
    import pyarrow.compute as pc

    rows_mask = pc.is_in(col, value_set=offenders).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(rows_mask)[:MAX_EXAMPLES].tolist()
    values = [col[r].as_py() for r in rows]
    lines = line_of.lines_of_rows(rows) if line_of is not None else [None] * len(rows)
    examples = [(r, ln, v) for r, ln, v in zip(rows, lines, values, strict=True)]
    where = ", ".join(
        (f"line {ln} (row {r}): {v!r}" if ln else f"row {r}: {v!r}") for r, ln, v in examples
    )
    what = f"is read as {forced}" if forced else f"holds {kind}"
    hint = (
        "Fix those values, or declare them missing with null_values (CLI: --null-value), "
        f"or read the column as text with dtypes={{{name!r}: 'string'}} "
        f"(CLI: --dtype {name}=string)"
    )
    raise MixedTypesError(
        f"column {name!r} {what}, but {n_bad:,} of its {total:,} values are not {kind}: {where}",
        source=source,
        column=name,
        expected=forced or kind,
        examples=examples,
        count=n_bad,
        hint=hint,
    )


def _malformed(
    buf: Any, source: str, delimiter: str, bad: list[tuple[int | None, int, int, str]]
) -> MalformedRowsError:
    expected = bad[0][1]
    first = bad[:MAX_EXAMPLES]
    records = [number for number, *_ in first]
    line_map = _LineMap(buf, delimiter, source)
    lines = line_map.lines_of_records([r for r in records if r is not None])
    by_record = dict(zip([r for r in records if r is not None], lines, strict=True))
    listed: list[tuple[int | None, int, str]] = []
    for number, _exp, actual, text in first:
        line = by_record.get(number) if number is not None else None
        listed.append((line, actual, text))
    described = "; ".join(
        f"line {ln}: {actual} fields ({_short(text)!r})" if ln else f"{actual} fields"
        for ln, actual, text in listed
    )
    more = f" and {len(bad) - len(first):,} more" if len(bad) > len(first) else ""
    return MalformedRowsError(
        f"has {len(bad):,} line{'s' if len(bad) > 1 else ''} whose number of fields differs "
        f"from the header's {expected}: {described}{more}",
        source=source,
        expected=expected,
        lines=listed,
        count=len(bad),
        hint="Fix those lines (quote fields that contain the delimiter "
        f"{delimiter!r}), or pass the right delimiter (CLI: --delimiter)",
    )


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _encoding_error(buf: Any, source: str, delimiter: str) -> EncodingError:
    """Find the first byte that is not UTF-8 and say where it is."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(buf)
    step = 1 << 22
    offset = 0
    bad_at = None
    reason = ""
    while offset < len(view):
        chunk = bytes(view[offset : offset + step])
        try:
            decoder.decode(chunk, final=offset + step >= len(view))
        except UnicodeDecodeError as exc:
            # The decoder may hold back up to 3 bytes of an incomplete sequence.
            pending = len(decoder.getstate()[0])
            bad_at = offset - pending + exc.start if exc.start >= 0 else offset
            bad_at = max(bad_at, 0)
            reason = exc.reason
            break
        offset += step
    if bad_at is None:
        return EncodingError(
            "is not valid UTF-8 text", source=source, hint="Convert it to UTF-8 first"
        )
    line = bytes(view[:bad_at]).count(b"\n") + 1
    line_start = bytes(view[:bad_at]).rfind(b"\n") + 1
    prefix = bytes(view[line_start:bad_at])
    field = prefix.count(delimiter.encode()) if delimiter else 0
    header = bytes(view[: min(len(view), 1 << 16)]).split(b"\n", 1)[0]
    names = header.decode("utf-8", errors="replace").rstrip("\r").split(delimiter)
    column = names[field] if 0 <= field < len(names) and line > 1 else None
    byte = bytes(view[bad_at : bad_at + 1])[0]
    where = f"line {line}" + (f", column {column!r}" if column else "")
    return EncodingError(
        f"is not UTF-8: byte 0x{byte:02x} at byte offset {bad_at} ({where}) is {reason}",
        source=source,
        line=line,
        column=column,
        byte_offset=bad_at,
        value=f"0x{byte:02x}",
        hint="Convert the file to UTF-8 (iconv -f latin1 -t utf-8), or name its encoding "
        "with encoding='latin-1' (CLI: --encoding latin-1)",
    )


class _LineMap:
    """Physical line numbers of CSV records, worked out on demand with Python's csv module.

    Record 1 is the header; blank lines are skipped, as pyarrow skips them, and a quoted
    field may span lines. Only used to describe errors, so the slow scan stops at the last
    record asked for.
    """

    def __init__(self, buf: Any, delimiter: str, source: str) -> None:
        self._buf = buf
        self._delimiter = delimiter
        self._source = source

    def lines_of_rows(self, rows: Sequence[int]) -> list[int | None]:
        """Lines of 0-based data rows (record = row + 2)."""
        return self.lines_of_records([r + 2 for r in rows])

    def lines_of_records(self, records: Sequence[int]) -> list[int | None]:
        if not records:
            return []
        wanted = set(records)
        last = max(records)
        found: dict[int, int] = {}
        text = io.TextIOWrapper(
            io.BytesIO(memoryview(self._buf)), encoding="utf-8", errors="replace", newline=""
        )
        reader = csv.reader(text, delimiter=self._delimiter)
        record = 0
        previous_line = 0
        try:
            for fields in reader:
                start = previous_line + 1
                previous_line = reader.line_num
                if not fields:
                    continue
                record += 1
                if record in wanted:
                    found[record] = start
                if record >= last:
                    break
        except csv.Error:
            pass
        return [found.get(r) for r in records]
