"""Reading CSV text as canonical record batches without silently coercing or losing anything.

pyarrow parses (its streaming reader, multi-threaded, a block at a time, so memory stays
bounded however large the file is); the checks around it turn what it would accept
quietly into errors that name the line, column and value:

- an empty file, or a header without rows -> :class:`EmptySourceError`;
- NUL bytes at the start, or the magic bytes of Parquet, gzip, zip ... ->
  :class:`FormatMismatchError` (a ``.csv`` that is not text);
- bytes that are not UTF-8 -> :class:`EncodingError` with the line and byte offset
  (pyarrow would turn the column into binary); pass ``encoding=`` to read other encodings;
- a quote that opens a field and is never closed (pyarrow would make the rest of the file
  one value), or a quoted field longer than ``max_field_bytes`` (1 MiB unless the caller
  says otherwise; an unclosed quote that a later quote happens to close) ->
  :class:`UnterminatedQuoteError` with the line where the quote opened;
- lines with more or fewer fields than the header -> :class:`MalformedRowsError`, listing
  the first lines and the total count (pyarrow would raise on the first without a number);
- duplicate or empty column names -> :class:`DuplicateColumnsError`;
- a column whose values are mostly numbers (or booleans, or dates) but not all ->
  :class:`MixedTypesError` with rows, lines and values, where pyarrow would silently make it
  a text column. A column is text only when most of its values are text; ``dtypes=`` forces
  a column's type.

Column types are the ones pyarrow's whole-file reader infers. The streaming reader infers
them from the first block; when a later block does not fit, the file is read once more as
text to infer them over every value (:mod:`loopline.data.csvinfer`), then read with those
types. Problems found over the whole file (malformed lines, mixed types) are raised at the
end of a pass. Line numbers are worked out only when there is an error to report (by a
slower pass with Python's csv module that follows quoted newlines and skipped blank lines).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from loopline.data.content import Normaliser, RestartStream
from loopline.data.csvscan import (
    DEFAULT_MAX_FIELD_BYTES,
    QuoteScan,
    line_at,
    quote_error,
    scan_quotes,
)
from loopline.data.errors import (
    DataArgumentError,
    DuplicateColumnsError,
    EmptySourceError,
    EncodingError,
    FormatMismatchError,
    IngestError,
    MalformedRowsError,
)
from loopline.data.textcolumns import MAX_EXAMPLES, MixedKinds, TextCoercion, count_kinds

#: Bytes pyarrow's streaming reader parses at a time (the first block decides the types,
#: unless a later one does not fit them).
BLOCK_BYTES = 1 << 19
#: Rows of a text column counted at once for the mixed-types check (batches are small;
#: counting a hundred thousand values or so at a time costs less per value).
COUNT_ROWS = 1 << 17

#: A function that opens the text afresh: a binary stream at its first byte.
Opener = Callable[[], Any]

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
_BOM = b"\xef\xbb\xbf"


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


class _Retype(Exception):
    """A block after the first does not fit the types inferred from the first."""


class _GrowBlocks(Exception):
    """A record is longer than a block: pyarrow's streaming reader needs it in one."""


#: The largest block tried for records longer than :data:`BLOCK_BYTES`.
MAX_BLOCK_BYTES = 1 << 30


class CsvSource:
    """A CSV text read as canonical record batches (a :class:`~loopline.data.staging.BatchSource`).

    ``opener`` opens the (decompressed) text afresh each time it is called. The checks
    that need only the start of the text, and the quote scan, run here; reading happens
    in :meth:`batches`, which may be called again after it raised RestartStream.
    """

    format = "csv"

    def __init__(
        self,
        opener: Opener,
        source: str,
        *,
        delimiter: str | None = None,
        dtypes: Mapping[str, str] | None = None,
        null_values: Sequence[str] | None = None,
        encoding: str | None = None,
        max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
        notes: Sequence[str] = (),
    ) -> None:
        if not isinstance(max_field_bytes, int) or max_field_bytes < 1:
            raise DataArgumentError(
                f"max_field_bytes must be a positive number of bytes, not {max_field_bytes!r}"
            )
        self._open = opener
        self.source = source
        self._dtypes = dict(dtypes or {})
        self._null_values = list(null_values) if null_values is not None else None
        self._encoding = encoding
        self._max_field_bytes = max_field_bytes
        self._base_notes = list(notes)
        self.notes = list(notes)
        self._skip = 0
        self._exact_types: dict[str, Any] | None = None
        self._retype = False
        self._block = BLOCK_BYTES
        self._normalise = Normaliser(source)
        self.delimiter = delimiter or ","
        self._check_start(delimiter)
        self._quotes = self._scan()

    # -- reading ---------------------------------------------------------------------------

    def batches(self) -> Iterator[Any]:
        """Canonical record batches of the whole text (see the module docstring)."""
        self._normalise.reset()
        try:
            if self._retype and self._exact_types is None:
                self._exact_types = self._infer_types()
            yield from self._read(self._exact_types)
        except _Retype:
            self._retype = True
            raise RestartStream("a later block does not fit the first block's types") from None
        except _GrowBlocks:
            if self._block >= MAX_BLOCK_BYTES:
                raise IngestError(
                    f"has a line longer than {MAX_BLOCK_BYTES:,} bytes", source=self.source
                ) from None
            self._block *= 4
            raise RestartStream("a record is longer than a block") from None
        self.notes = self._base_notes + self._normalise.notes

    def _read(self, exact: dict[str, Any] | None) -> Iterator[Any]:
        import pyarrow as pa

        text = pa.large_string()
        types = dict(exact) if exact is not None else {name: text for name in self._dtypes}
        bad_rows: list[tuple[int | None, int, int, str]] = []
        stream = self._open()
        try:
            reader = self._reader(stream, types, bad_rows, infer=exact is None)
            names = self._check_header(reader.schema)
            coerce = {n: TextCoercion(n, d, self.source) for n, d in self._dtypes.items()}
            mixed = {
                f.name: MixedKinds()
                for f in reader.schema
                if f.name not in coerce and (pa.types.is_string(f.type) or f.type == text)
            }
            rows = 0
            failing = False
            held: dict[str, list[Any]] = {name: [] for name in mixed}
            held_from = 0
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                    raise self._arrow_error(exc, infer=exact is None) from exc
                columns = []
                for name, col in zip(names, batch.columns, strict=True):
                    if name in coerce:
                        col = coerce[name](col, rows)
                        failing = failing or col is None
                    elif name in held:
                        held[name].append(col)
                    columns.append(col)
                if not failing:
                    yield self._normalise(pa.RecordBatch.from_arrays(columns, names=names))
                rows += batch.num_rows
                if rows - held_from >= COUNT_ROWS:
                    count_kinds(mixed, held, held_from)
                    held_from = rows
            count_kinds(mixed, held, held_from)
        finally:
            stream.close()
        if bad_rows:
            if any(number is None for number, *_ in bad_rows):
                bad_rows = self._number_bad_rows(names)
            raise self._malformed(bad_rows)
        if rows == 0:
            raise EmptySourceError(
                f"has a header ({', '.join(names[:8])}) but no data rows", source=self.source
            )
        line_of = _LineMap(self._open, self.delimiter, self._encoding)
        for name in names:
            if name in coerce:
                coerce[name].check(line_of)
            elif name in mixed:
                mixed[name].check(name, self.source, line_of)

    def _reader(
        self,
        stream: Any,
        types: Mapping[str, Any],
        bad_rows: list[tuple[int | None, int, int, str]] | None,
        *,
        infer: bool,
        threads: bool = True,
    ) -> Any:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        def on_invalid(row: Any) -> str:
            if bad_rows is not None:
                bad_rows.append((row.number, row.expected_columns, row.actual_columns, row.text))
            return "skip"

        convert = pacsv.ConvertOptions(
            column_types=dict(types),
            strings_can_be_null=True,
            **({"null_values": self._null_values} if self._null_values is not None else {}),
        )
        try:
            return pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(
                    block_size=self._block,
                    use_threads=threads,
                    **({"encoding": self._encoding} if self._encoding else {}),
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=self.delimiter,
                    # Quoted fields may hold newlines only if there are quotes at all;
                    # checking for them keeps the fast (chunked, parallel) parse.
                    newlines_in_values=self._quotes.has_quotes,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=convert,
            )
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise self._arrow_error(exc, infer=infer) from exc

    def _check_header(self, schema: Any) -> list[str]:
        import pyarrow as pa

        try:
            names = list(schema.names)
        except UnicodeDecodeError as exc:  # a header that is not UTF-8
            raise self._encoding_error() from exc
        binary = [f.name for f in schema if pa.types.is_binary(f.type)]
        if binary and self._encoding is None:
            raise self._encoding_error()
        check_column_names(names, self.source)
        unknown = sorted(set(self._dtypes) - set(names))
        if unknown:
            raise DataArgumentError(
                f"{self.source}: dtypes names no column {unknown[0]!r}; the columns are "
                f"{', '.join(names)}"
            )
        return names

    def _infer_types(self) -> dict[str, Any]:
        """Each column's type as pyarrow infers it over the whole file (a pass as text)."""
        import pyarrow as pa

        from loopline.data.csvinfer import ColumnKinds, arrow_type

        text = pa.large_string()
        stream = self._open()
        try:
            names = list(self._reader(stream, {}, None, infer=False).schema.names)
        finally:
            stream.close()
        kinds = {n: ColumnKinds(self._null_values) for n in names if n not in self._dtypes}
        stream = self._open()
        try:
            reader = self._reader(stream, dict.fromkeys(names, text), None, infer=False)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                    raise self._arrow_error(exc, infer=False) from exc
                for name, col in zip(names, batch.columns, strict=True):
                    if name in kinds:
                        kinds[name].update(col)
        finally:
            stream.close()
        return {n: arrow_type(kinds[n].result()) if n in kinds else text for n in names}

    def _number_bad_rows(self, names: list[str]) -> list[tuple[int | None, int, int, str]]:
        """The malformed rows again, numbered (a serial pass; threads do not number)."""
        import pyarrow as pa

        bad: list[tuple[int | None, int, int, str]] = []
        stream = self._open()
        try:
            types = dict.fromkeys(names, pa.large_string())
            reader = self._reader(stream, types, bad, infer=False, threads=False)
            for _batch in reader:
                pass
        finally:
            stream.close()
        return bad

    # -- the start of the text ---------------------------------------------------------------

    def _check_start(self, delimiter: str | None) -> None:
        """Checks on the first bytes; the delimiter, unless given, from the header."""
        with self._open() as f:
            try:
                head = f.read(_SNIFF_BYTES)
            except OSError as exc:
                raise _stream_error(exc, self.source) from exc
        if head.startswith((b"\xff\xfe", b"\xfe\xff")) and self._encoding is None:
            raise EncodingError(
                "is UTF-16 text (it starts with a UTF-16 byte order mark), not UTF-8",
                source=self.source,
                byte_offset=0,
                hint="Convert it to UTF-8, or pass encoding='utf-16' (CLI: --encoding utf-16)",
            )
        if head.startswith(_BOM):
            self._skip = len(_BOM)
            head = head[self._skip :]
        if not head.strip():
            raise EmptySourceError(
                "is empty" if not head else "holds only whitespace",
                source=self.source,
                hint="Check the path, and that the file was completely written",
            )
        check_magic(head, self.source, "csv")
        if self._encoding is None and b"\x00" in head:
            offset = head.index(b"\x00")
            line = head.count(b"\n", 0, offset) + 1
            raise FormatMismatchError(
                f"is binary, not CSV text: it has a NUL byte at byte offset "
                f"{offset + self._skip} (line {line})",
                source=self.source,
                byte_offset=offset + self._skip,
                line=line,
                hint="Check that the file is really a CSV export",
            )
        first_line, newline, _rest = head.partition(b"\n")
        if delimiter is None:
            self.delimiter = _sniff_delimiter(first_line)
            if self.delimiter != ",":
                self._base_notes.append(f"fields are separated by {self.delimiter!r}")
                self.notes = list(self._base_notes)
        if self._encoding is None and newline:
            try:
                first_line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self._encoding_error() from exc

    def _scan(self) -> QuoteScan:
        """Find quotes that never close (or close too late) before anything is parsed."""
        import pyarrow as pa

        ascii_text = _ascii_compatible(self._encoding)
        stream = self._open()
        try:
            if ascii_text:
                stream.read(self._skip)
                text = stream
            else:
                text = pa.transcoding_input_stream(stream, self._encoding, "utf-8")
            found = scan_quotes(
                text,
                self.delimiter,
                max_field_bytes=self._max_field_bytes,
                offset=self._skip if ascii_text else 0,
            )
        except OSError as exc:
            raise _stream_error(exc, self.source) from exc
        finally:
            stream.close()
        opened = found.unterminated_at if found.unterminated_at is not None else found.too_long_at
        if opened is None:
            return found
        with self._open() as again:
            if not ascii_text:
                again = pa.transcoding_input_stream(again, self._encoding, "utf-8")
            line = line_at(again, opened)
        raise quote_error(
            found,
            source=self.source,
            line=line,
            byte_offset=opened if ascii_text else None,
            max_field_bytes=self._max_field_bytes,
        )

    # -- errors ----------------------------------------------------------------------------

    def _arrow_error(self, exc: BaseException, *, infer: bool) -> BaseException:
        if isinstance(exc, UnicodeDecodeError):
            return self._encoding_error()
        message = str(exc)
        if "UTF8" in message or "UTF-8" in message or "utf-8" in message:
            return self._encoding_error()
        if "Empty CSV file" in message:
            return EmptySourceError("is empty", source=self.source)
        if "straddling" in message or "straddles" in message:
            return _GrowBlocks(message)
        if infer and "conversion error" in message:
            return _Retype(message)
        return IngestError(
            f"cannot be parsed as CSV: {message.splitlines()[0]}", source=self.source
        )

    def _encoding_error(self) -> EncodingError:
        return encoding_error(self._open, self.source, self.delimiter)

    def _malformed(self, bad: list[tuple[int | None, int, int, str]]) -> MalformedRowsError:
        expected = bad[0][1]
        first = bad[:MAX_EXAMPLES]
        records = [number for number, *_ in first if number is not None]
        lines = _LineMap(self._open, self.delimiter, self._encoding).lines_of_records(records)
        by_record = dict(zip(records, lines, strict=True))
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
            f"has {len(bad):,} line{'s' if len(bad) > 1 else ''} whose number of fields "
            f"differs from the header's {expected}: {described}{more}",
            source=self.source,
            expected=expected,
            lines=listed,
            count=len(bad),
            hint="Fix those lines (quote fields that contain the delimiter "
            f"{self.delimiter!r}), or pass the right delimiter (CLI: --delimiter)",
        )


def _ascii_compatible(encoding: str | None) -> bool:
    """Whether quotes, delimiters and line breaks are the same single bytes as in ASCII."""
    if encoding is None:
        return True
    probe = '",;|\t\n\r'
    try:
        return probe.encode(codecs.lookup(encoding).name) == probe.encode("ascii")
    except (LookupError, UnicodeError):
        return False


def _stream_error(exc: OSError, source: str) -> IngestError:
    """A read that failed: most often compressed data that is not (a damaged .gz ...)."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if any(word in reason.lower() for word in ("inflate", "decompress", "zstd", "bz2", "lz4")):
        return FormatMismatchError(
            f"is not valid compressed data ({reason})",
            source=source,
            hint="Check the file, or remove the compression extension from its name",
        )
    return IngestError(f"cannot be read ({reason})", source=source)


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


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def encoding_error(opener: Opener, source: str, delimiter: str) -> EncodingError:
    """Find the first byte that is not UTF-8 and say where it is (line, column, offset)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    step = 1 << 22
    offset = 0
    bad_at = None
    reason = ""
    with opener() as stream:
        header = b""
        while True:
            chunk = stream.read(step)
            header = header or chunk[: 1 << 16]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # The decoder may hold back up to 3 bytes of an incomplete sequence.
                pending = len(decoder.getstate()[0])
                bad_at = max(offset - pending + exc.start if exc.start >= 0 else offset, 0)
                reason = exc.reason
                break
            if not chunk:
                break
            offset += len(chunk)
    if bad_at is None:
        return EncodingError(
            "is not valid UTF-8 text", source=source, hint="Convert it to UTF-8 first"
        )
    # A second pass to the bad byte: the line it is on, and that line up to it.
    lines = 1
    line = b""
    with opener() as stream:
        done = 0
        while done < bad_at:
            chunk = stream.read(min(step, bad_at - done))
            if not chunk:
                break
            breaks = chunk.count(b"\n")
            lines += breaks
            line = chunk[chunk.rfind(b"\n") + 1 :] if breaks else line + chunk
            done += len(chunk)
        byte = (stream.read(1) or b"\x00")[0]
    return _encoding_error_at(source, delimiter, bad_at, lines, line, header, byte, reason)


def _encoding_error_at(
    source: str,
    delimiter: str,
    bad_at: int,
    line: int,
    prefix: bytes,
    header: bytes,
    byte: int,
    reason: str,
) -> EncodingError:
    field = prefix.count(delimiter.encode()) if delimiter else 0
    names = header.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
    columns = names.lstrip("\ufeff").split(delimiter)
    column = columns[field] if 0 <= field < len(columns) and line > 1 else None
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

    def __init__(self, opener: Opener, delimiter: str, encoding: str | None) -> None:
        self._open = opener
        self._delimiter = delimiter
        self._encoding = encoding or "utf-8"

    def lines_of_rows(self, rows: Sequence[int]) -> list[int | None]:
        """Lines of 0-based data rows (record = row + 2)."""
        return self.lines_of_records([r + 2 for r in rows])

    def lines_of_records(self, records: Sequence[int]) -> list[int | None]:
        if not records:
            return []
        wanted = set(records)
        last = max(records)
        found: dict[int, int] = {}
        with self._open() as stream:
            text = io.TextIOWrapper(stream, encoding=self._encoding, errors="replace", newline="")
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
