"""Batch transform: score a CSV or Parquet file with a registered model, chunk by chunk.

The input is streamed (``ParquetFile.iter_batches``, pyarrow's streaming CSV reader) in
chunks of ``chunk_rows`` rows, so memory stays bounded however large the file is. Each
chunk goes through what the HTTP endpoint does to a request:

1. validation against the model's signature (:class:`~loopline.registry.validation.InputValidator`);
   rows with problems are written to a side file (row, column, value, expected) and not
   scored; a problem of the whole input (a missing column) stops the run;
2. the model on the valid rows: ``prediction``, and ``proba.<class>`` for classifiers;
3. the prediction log (:class:`~loopline.trigger.batchlog.BatchLogWriter`, role
   ``batch``, one request id per chunk), written in chunk order, flushed at the end.

The output (Parquet or CSV, by extension) holds the valid rows' input columns and the
model's outputs, and, when the rows are logged, ``request_id`` and ``row``: the keys of
each row in the prediction log, so a file of ``request_id, row, label`` sent to
``loopline feedback import`` joins labels to these predictions. Columns the model does not
read pass through with their types (in a CSV, a column whose cells in the first chunk
all read as integers, numbers or booleans gets that type). It is written to a temporary
file and renamed (or uploaded whole to an object store) only when every chunk is done: a
failed run leaves nothing at the target.

    from loopline.trigger.batch import predict_file
    result = predict_file(stores, "churn@production", "in.csv", "scores.parquet")
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from loopline.trigger.errors import BatchInputError, BatchOutputError

if TYPE_CHECKING:
    from loopline.config import S3Settings
    from loopline.execute import Executor
    from loopline.registry import LoadedModel
    from loopline.store.objects.base import ObjectStore
    from loopline.store.stores import Stores
    from loopline.trigger.batchlog import BatchLogWriter, LoggedChunk

#: ``progress(rows_done, rows_total)``; for a CSV file the total is the count of its lines
#: (exact unless quoted fields hold line breaks), found while the file is first read.
Progress = Callable[[int, "int | None"], None]
#: ``reading(bytes_read, bytes_total)`` while a CSV file is first read (checked and its
#: lines counted), before any row is scored; the total is None when the size is unknown.
Reading = Callable[[int, "int | None"], None]

DEFAULT_CHUNK_ROWS = 50_000
ROLE = "batch"
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
PREDICTION = "prediction"
PROBA_PREFIX = "proba."
#: The prediction log's keys of each output row (what ``loopline feedback import`` reads).
REQUEST_ID = "request_id"
REQUEST_ROW = "row"
INVALID_SUFFIX = ".invalid.csv"
INVALID_COLUMNS = ("row", "column", "value", "expected", "problem")


def file_format(name: str) -> str | None:
    """``"csv"`` or ``"parquet"`` from a file name's extension, or None."""
    return FORMATS.get(os.path.splitext(name)[1].lower())


def output_format(target: Target) -> str:
    """``"csv"`` or ``"parquet"``, the format of the output ``target``, or an error."""
    found = file_format(target.name)
    if found is None:
        raise BatchOutputError(
            target.name,
            "the extension says neither CSV nor Parquet",
            hint="Name the output *.parquet or *.csv",
        )
    return found


@dataclass
class BatchResult:
    """What one batch prediction did."""

    model: str
    version: int
    input: str
    output: str
    rows_total: int
    rows_scored: int
    rows_invalid: int
    invalid_path: str | None
    chunks: int
    #: Seconds spent reading, validating, scoring and writing (the rate is of these).
    seconds: float
    #: How the model ran: ``"onnx"`` (its ONNX export on onnxruntime) or ``"native"``.
    path: str = "native"
    logged_rows: int = 0
    log_dropped_rows: int = 0
    #: Seconds of the whole run: loading the model, reading, scoring, writing, logging.
    total_seconds: float = 0.0
    #: The process ids that scored the chunks (this one, or an executor's workers).
    workers: list[int] = field(default_factory=lambda: [os.getpid()])
    #: Over an executor: seconds the driver spent copying the shards' rows into the output.
    merge_seconds: float = 0.0
    #: Over an executor: seconds the shards took in the workers, summed (for sizing).
    worker_seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_total / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["seconds"] = round(self.seconds, 3)
        data["total_seconds"] = round(self.total_seconds, 3)
        data["merge_seconds"] = round(self.merge_seconds, 3)
        data["worker_seconds"] = round(self.worker_seconds, 3)
        data["rows_per_second"] = round(self.rows_per_second, 1)
        return data


# -- where bytes come from and go to --------------------------------------------------------


class Source:
    """An input file: a local path, or a key of an object store."""

    def __init__(
        self,
        name: str,
        opener: Callable[[], IO[bytes]],
        *,
        fmt: str | None = None,
        size: int | None = None,
    ) -> None:
        self.name = name
        self.opener = opener
        #: Bytes of the file, when known (for progress while it is read).
        self.size = size
        found = fmt or file_format(name)
        if found is None:
            raise BatchInputError(
                name,
                "the extension says neither CSV nor Parquet",
                hint="Name the file *.csv or *.parquet",
            )
        self.format = found

    @classmethod
    def from_location(cls, where: str, s3: S3Settings | None = None) -> Source:
        """A path, ``file://`` URL or ``s3://bucket/key`` (read through the ObjectStore)."""
        if _is_url(where):
            store, key = _store_and_key(where, s3)
            return cls.in_store(store, key, name=where)
        path = Path(where).expanduser()
        if not path.is_file():
            raise BatchInputError(where, "no such file", hint="Check the path")
        return cls(str(path), lambda: path.open("rb"), size=path.stat().st_size)

    @classmethod
    def in_store(cls, store: ObjectStore, key: str, *, name: str | None = None) -> Source:
        try:
            size: int | None = store.stat(key).size
        except Exception:  # the size only serves the progress display
            size = None
        return cls(name or f"{store.url}/{key}", lambda: store.open(key), size=size)


class Target:
    """Where a result file goes, written whole or not at all.

    Local paths get a temporary file in the same folder, renamed over the target; object
    store keys get a local temporary file uploaded with one ``put`` (atomic per object).
    """

    def __init__(self, name: str, *, path: Path | None = None, store: Any = None, key: str = ""):
        self.name = name
        self.path = path
        self.store: ObjectStore | None = store
        self.key = key

    @classmethod
    def from_location(cls, where: str, s3: S3Settings | None = None) -> Target:
        if _is_url(where):
            store, key = _store_and_key(where, s3)
            return cls(where, store=store, key=key)
        path = Path(where).expanduser().absolute()
        if not path.parent.is_dir():
            raise BatchOutputError(
                where, f"the folder {path.parent} does not exist", hint="Create it first"
            )
        return cls(str(path), path=path)

    @classmethod
    def in_store(cls, store: ObjectStore, key: str) -> Target:
        return cls(f"{store.url}/{key}", store=store, key=key)

    def sibling(self, suffix: str) -> Target:
        """The target named like this one plus ``suffix`` (for the side files)."""
        if self.path is not None:
            return Target(self.name + suffix, path=Path(str(self.path) + suffix))
        return Target(self.name + suffix, store=self.store, key=self.key + suffix)

    def exists(self) -> bool:
        if self.path is not None:
            return self.path.exists()
        assert self.store is not None
        return self.store.exists(self.key)

    def temp_file(self) -> Path:
        """A fresh temporary file for the content (same folder for local targets)."""
        if self.path is not None:
            folder, prefix = self.path.parent, f".{self.path.name}."
        else:
            folder, prefix = Path(tempfile.gettempdir()), "loopline-batch-"
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
        os.close(fd)
        return Path(name)

    def commit(self, temp: Path) -> None:
        """Put the finished temporary file in place (and remove it)."""
        try:
            if self.path is not None:
                os.replace(temp, self.path)
                return
            assert self.store is not None
            with temp.open("rb") as f:
                self.store.put(self.key, f)
        except OSError as exc:
            raise BatchOutputError(self.name, exc.strerror or str(exc)) from exc
        finally:
            _unlink(temp)


def _is_url(where: str) -> bool:
    return "://" in where and not where.startswith("file://")


def _store_and_key(url: str, s3: S3Settings | None) -> tuple[ObjectStore, str]:
    from loopline.store.objects.base import open_object_store

    parent, _, key = url.rstrip("/").rpartition("/")
    if not key or parent.endswith(":/"):
        raise BatchInputError(url, "the URL names no object", hint="Use s3://bucket/path/file")
    return open_object_store(parent, s3=s3), key


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# -- reading in chunks ----------------------------------------------------------------------


def iter_chunks(
    source: Source, chunk_rows: int, *, reading: Reading | None = None
) -> tuple[Iterator[Any], int | None]:
    """The input as pyarrow Tables of at most ``chunk_rows`` rows, and the row count (of
    a CSV file: its lines after the header, read once first; see :data:`Progress`).

    CSV cells are read as text (empty cells as null), so that a bad value in one row is a
    problem of that row rather than an error of the whole block.
    """
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    if source.format == "parquet":
        return _parquet_chunks(source, chunk_rows)
    names, lines = _check_csv(source, reading)
    return _rechunk(_csv_batches(source, chunk_rows, names), chunk_rows), lines


class _Counting:
    """A binary stream that counts the bytes and line breaks read through it."""

    def __init__(self, stream: IO[bytes], on_read: Reading | None, total: int | None) -> None:
        self.stream = stream
        self.on_read = on_read
        self.total = total
        self.bytes = 0
        self.lines = 0
        self.last = b""

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        if data:
            self.bytes += len(data)
            self.lines += data.count(b"\n")
            self.last = data[-1:]
            if self.on_read is not None:
                self.on_read(self.bytes, self.total)
        return data


def _check_csv(source: Source, reading: Reading | None) -> tuple[list[str], int]:
    """The header's column names and the number of lines after it; refuses a file whose
    quoted field never closes (pyarrow would read the rest as one value: rows vanish)."""
    from loopline.data.csvscan import DEFAULT_MAX_FIELD_BYTES, line_at, quote_error, scan_quotes

    with source.opener() as head:
        first = head.readline().decode("utf-8", errors="replace").lstrip("\ufeff")
    names = next(csv.reader([first]), [])
    if not names:
        raise BatchInputError(source.name, "the CSV file is empty (no header line)")
    with source.opener() as stream:
        counting = _Counting(stream, reading, source.size)
        found = scan_quotes(counting, ",")
    opened = found.unterminated_at if found.unterminated_at is not None else found.too_long_at
    if opened is not None:
        with source.opener() as stream:
            line = line_at(stream, opened)
        exc = quote_error(
            found,
            source=source.name,
            line=line,
            byte_offset=opened,
            max_field_bytes=DEFAULT_MAX_FIELD_BYTES,
        )
        raise BatchInputError(
            source.name, exc.message.removeprefix(f"{source.name}: "), hint=exc.hint
        )
    lines = counting.lines + (1 if counting.bytes and counting.last != b"\n" else 0)
    return names, max(0, lines - 1)


def _parquet_chunks(source: Source, chunk_rows: int) -> tuple[Iterator[Any], int | None]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    stream = source.opener()
    try:
        # No pre-buffering: it holds several whole row groups (hundreds of MB) at once.
        reader = pq.ParquetFile(stream, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as exc:
        stream.close()
        raise BatchInputError(source.name, f"not a readable Parquet file ({exc})") from exc
    total = int(reader.metadata.num_rows)

    def batches() -> Iterator[Any]:
        try:
            yield from reader.iter_batches(batch_size=chunk_rows)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BatchInputError(source.name, f"unreadable Parquet data ({exc})") from exc
        finally:
            stream.close()

    return _rechunk(batches(), chunk_rows), total


def _csv_batches(source: Source, chunk_rows: int, names: list[str]) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # A block of about 100 bytes per row: the reader's memory follows the chunk size.
    block = min(max(chunk_rows * 100, 1 << 16), 1 << 26)
    stream = source.opener()
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=block),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                strings_can_be_null=True,
                null_values=[""],
            ),
        )
        yield from reader
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise BatchInputError(
            source.name, f"not a readable CSV file ({str(exc).splitlines()[0]})"
        ) from exc
    finally:
        stream.close()


def _rechunk(batches: Iterator[Any], chunk_rows: int) -> Iterator[Any]:
    """Tables of exactly ``chunk_rows`` rows (the last one shorter) from record batches."""
    import pyarrow as pa

    pending: list[Any] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_rows)
            rest = table.slice(chunk_rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


# -- scoring --------------------------------------------------------------------------------


@dataclass
class ScoredChunk:
    """One chunk after validation and prediction."""

    table: Any  # pyarrow Table of the valid rows with the outputs, or None
    problems: list[Any]  # Problem records of the invalid rows, rows numbered in the file
    n_rows: int
    n_scored: int
    #: What the prediction log gets (None when nothing is logged or no row was valid).
    log: LoggedChunk | None = None


class ChunkScorer:
    """Validates and scores chunks for one loaded model (shared by batch and the watcher).

    The model runs on ONNX Runtime when the package has an ONNX export (and ``native``
    is False), else natively (see :mod:`loopline.trigger.scoring`). :meth:`score` may run
    in several threads at once once the first chunk is scored (it settles the types of a
    CSV's pass-through columns and whether the class is read off the probabilities);
    :meth:`log` is called in chunk order.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        chunk_rows: int,
        log_writer: BatchLogWriter | None,
        native: bool = False,
        run_id: str | None = None,
    ) -> None:
        from loopline.registry.validation import InputValidator
        from loopline.trigger.scoring import chunk_model

        self.loaded = loaded
        self.signature = loaded.signature
        self.specs = {spec.name: spec for spec in self.signature.inputs}
        self.validator = InputValidator(
            self.signature,
            extra_columns="ignore",
            max_problems=max(100, chunk_rows * max(1, len(self.specs)) + 1),
        )
        self.log_writer = log_writer
        self.model = chunk_model(loaded, native=native)
        #: ``"onnx"`` or ``"native"``: how the model runs.
        self.path = self.model.path
        self.run_id = run_id or secrets.token_hex(6)
        #: Types of the pass-through columns of a text (CSV) input, from its first chunk.
        self._passthrough: dict[str, Any] = {}

    def request_id(self, chunk: int) -> str:
        """The prediction log's request id of chunk number ``chunk`` of this run."""
        return f"batch-{self.run_id}-{chunk:06d}"

    def score(self, table: Any, *, first_row: int, text: bool, chunk: int) -> ScoredChunk:
        """Validate ``table`` (rows ``first_row``...) and score the valid rows."""
        import numpy as np
        import pyarrow as pa

        n = table.num_rows
        if text:
            table = self._numbers_from_text(table)
            table = self._passthrough_from_text(table, first_row)
        arrived = time.time()
        t0 = time.perf_counter()
        result = self.validator.validate_table(table, text=text)
        problems: list[Any] = []
        if not result.ok:
            whole = [p for p in result.problems if p.row is None]
            if whole:
                raise BatchInputError(
                    "the input",
                    "; ".join(str(p) for p in whole[:5]),
                    hint=f"The model needs the columns {', '.join(self.signature.columns)}",
                )
            bad = sorted({int(p.row) for p in result.problems if p.row is not None})
            # One problem per cell: the first is the cause (a later one may be its echo).
            firsts = {(p.row, p.column): p for p in reversed(result.problems)}
            problems = [
                _renumber(p, first_row) for p in result.problems if firsts[(p.row, p.column)] is p
            ]
            keep = np.ones(n, dtype=bool)
            keep[bad] = False
            table = table.filter(pa.array(keep))
            if table.num_rows == 0:
                return ScoredChunk(None, problems, n, 0)
            result = self.validator.validate_table(table, text=text)
            if not result.ok:  # cannot happen: every row with a problem was removed
                raise BatchInputError("the input", result.summary())
        columns = result.columns
        outputs = self._predict(columns)
        latency_ms = (time.perf_counter() - t0) * 1000.0
        logged = None
        extra: dict[str, Any] = {}
        if self.log_writer is not None:
            logged = self._log_batch(columns, outputs, arrived, latency_ms, chunk)
            m = len(table)
            extra[REQUEST_ID] = pa.repeat(pa.scalar(self.request_id(chunk), pa.string()), m)
            extra[REQUEST_ROW] = pa.array(np.arange(m, dtype=np.int64))
        out = self._output_table(table, columns, outputs, extra)
        return ScoredChunk(out, problems, n, len(table), logged)

    def log(self, chunk: ScoredChunk) -> None:
        """Append a scored chunk to the prediction log (in chunk order), flushing files of
        ``flush_rows`` rows."""
        writer = self.log_writer
        if writer is None or chunk.log is None:
            return
        writer.append(chunk.log)
        if writer.pending_rows >= writer.flush_rows:
            writer.flush(wait=False)

    def flush_log(self) -> None:
        """Start writing the log's last rows in the writer's thread (the caller commits the
        output meanwhile; closing the writer waits for them)."""
        if self.log_writer is not None:
            self.log_writer.flush(wait=False)

    def _numbers_from_text(self, table: Any) -> Any:
        """Numeric columns of a text chunk cast in C when every cell parses.

        Otherwise the column stays text and the validator names the rows that do not.
        """
        import pyarrow as pa

        for i, name in enumerate(table.column_names):
            spec = self.specs.get(name)
            if spec is None or spec.kind not in ("float", "integer"):
                continue
            column = _cast(table.column(i), pa.float64() if spec.kind == "float" else pa.int64())
            if column is not None:
                table = table.set_column(i, name, column)
        return table

    def _passthrough_from_text(self, table: Any, first_row: int) -> Any:
        """Columns the model does not read, typed as their cells read: the first chunk
        decides (integers, then numbers, then booleans, else text); later chunks must fit."""
        import pyarrow as pa

        for i, name in enumerate(table.column_names):
            if name in self.specs:
                continue
            column = table.column(i)
            known = self._passthrough.get(name)
            cast = None
            if known is None:
                known = pa.string()
                if column.null_count < len(column):
                    for candidate in (pa.int64(), pa.float64(), pa.bool_()):
                        cast = _cast(column, candidate)
                        if cast is not None:
                            known = candidate
                            break
                self._passthrough[name] = known
            if known == pa.string():
                continue
            if cast is None:
                cast = _cast(column, known)
            if cast is None:
                at, value = _first_unfit(column, known)
                raise BatchInputError(
                    "the input",
                    f"column {name!r} reads as {known} in the first rows, but row "
                    f"{first_row + at} holds {value!r}",
                    hint="Give the column one type through the file (or a larger "
                    "--chunk-rows, so the first chunk sees such values)",
                )
            table = table.set_column(i, name, cast)
        return table

    def _predict(self, columns: dict[str, Any]) -> dict[str, Any]:
        n = len(next(iter(columns.values()))) if columns else 0
        return self.model.outputs(columns, n)

    def _log_batch(
        self,
        columns: dict[str, Any],
        outputs: dict[str, Any],
        arrived: float,
        latency_ms: float,
        chunk: int,
    ) -> LoggedChunk:
        """The chunk as one request of the prediction log."""
        from loopline.trigger.batchlog import LoggedChunk

        return LoggedChunk(
            model=self.loaded.name,
            version=self.loaded.version,
            request_id=self.request_id(chunk),
            rows=len(outputs[PREDICTION]),
            arrived=arrived,
            latency_ms=latency_ms,
            inputs=columns,
            outputs=dict(outputs),
        )

    def _output_table(
        self, table: Any, columns: dict[str, Any], outputs: dict[str, Any], extra: dict[str, Any]
    ) -> Any:
        import pyarrow as pa

        data: dict[str, Any] = {}
        for name in table.column_names:
            if name in outputs or name in extra:
                continue
            if name in columns:
                data[name] = _arrow(pa, columns[name])
            else:
                data[name] = table.column(name)
        for name, values in outputs.items():
            data[name] = _arrow(pa, values)
        data.update(extra)
        return pa.table(data)


def _cast(column: Any, kind: Any) -> Any | None:
    """``column`` cast to the Arrow type ``kind`` (in C), or None when a cell does not fit."""
    import pyarrow as pa

    try:
        return column.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _first_unfit(column: Any, kind: Any) -> tuple[int, Any]:
    """The first cell of a text ``column`` that does not cast to ``kind``, and its value."""
    import pyarrow as pa

    for i, value in enumerate(column.to_pylist()):
        if value is not None and _cast(pa.array([value], type=pa.string()), kind) is None:
            return i, value
    return 0, None


def _arrow(pa: Any, values: Any) -> Any:
    """``values`` as an Arrow array, NaN as null (pandas' convention). A float array with
    no NaN is wrapped without a copy (the NaN-to-null conversion copies and scans every
    value: a tenth of a job's CPU when done to every input column)."""
    kind = getattr(getattr(values, "dtype", None), "kind", None)
    if kind == "f" and getattr(values, "ndim", 0) == 1:
        import numpy as np

        if not np.isnan(values).any():
            return pa.array(values)
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def _renumber(problem: Any, first_row: int) -> Any:
    from dataclasses import replace

    return replace(problem, row=None if problem.row is None else problem.row + first_row)


# -- writing --------------------------------------------------------------------------------


def parquet_options(schema: Any) -> dict[str, Any]:
    """How batch outputs are encoded: zstd at its fast level -1 (within a few percent of
    level 3's ratio on float data, for a fraction of the CPU), dictionaries for text only
    (trying them on float columns costs several times the rest of the write, for
    nothing), and floats split into byte streams (the exponent bytes then compress: a
    tenth smaller, and cheaper to write)."""
    import pyarrow as pa

    text = [f.name for f in schema if pa.types.is_string(f.type)]
    floats = [f.name for f in schema if pa.types.is_floating(f.type)]
    return {
        "compression": "zstd",
        "compression_level": -1,
        "use_dictionary": text or False,
        "use_byte_stream_split": floats or False,
    }


class TableSink:
    """Appends tables to a temporary Parquet or CSV file; the first table fixes the schema."""

    def __init__(self, target: Target, fmt: str) -> None:
        self.target = target
        self.format = fmt
        self.temp = target.temp_file()
        self._writer: Any = None
        self.schema: Any = None

    def write(self, table: Any) -> None:
        import pyarrow as pa

        if self._writer is None:
            self._open(table.schema)
        elif table.schema != self.schema:
            try:
                table = table.select(self.schema.names).cast(self.schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as exc:
                raise BatchInputError(
                    "the input",
                    f"a later chunk's columns do not fit the first chunk's ({exc})",
                    hint="Give every column one type through the file",
                ) from exc
        self._writer.write_table(table)

    def _open(self, schema: Any) -> None:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        self.schema = schema
        if self.format == "parquet":
            self._writer = pq.ParquetWriter(str(self.temp), schema, **parquet_options(schema))
        else:
            self._writer = pacsv.CSVWriter(str(self.temp), schema)

    def commit(self, empty_schema: Any) -> None:
        """Close the file and put it in place (an empty file with ``empty_schema`` if no rows)."""
        if self._writer is None:
            self._open(empty_schema)
        self._writer.close()
        self._writer = None
        self.target.commit(self.temp)

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        _unlink(self.temp)


class ProblemSink:
    """The side file of invalid rows (CSV: row, column, value, expected, problem)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.count = 0
        self.rows: set[int] = set()
        self._temp: Path | None = None
        self._file: IO[str] | None = None
        self._csv: Any = None

    def write(self, problems: list[Any]) -> None:
        if not problems:
            return
        if self._csv is None:
            self._temp = self.target.temp_file()
            self._file = self._temp.open("w", newline="", encoding="utf-8")
            self._csv = csv.writer(self._file)
            self._csv.writerow(INVALID_COLUMNS)
        for p in problems:
            d = p.to_dict()
            value = d["value"]
            if value is None:
                shown = ""
            else:
                shown = value if isinstance(value, str) else json.dumps(value, default=str)
            self._csv.writerow([d["row"], d["column"], shown, d["expected"], d["problem"]])
            self.count += 1
            if p.row is not None:
                self.rows.add(int(p.row))

    def commit(self) -> str | None:
        if self._file is None or self._temp is None:
            return None
        self._file.close()
        self._file = None
        self.target.commit(self._temp)
        return self.target.name

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._temp is not None:
            _unlink(self._temp)


# -- the whole run --------------------------------------------------------------------------


def default_threads() -> int:
    """Chunks scored at once in this process: one per core it may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _Prefetch:
    """Chunks read ahead in a thread (Parquet decoding and CSV parsing release the GIL),
    at most ``depth`` of them held."""

    _END = object()

    def __init__(self, chunks: Iterator[Any], depth: int) -> None:
        import queue
        import threading

        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(chunks,), name="loopline-batch-read", daemon=True
        )
        self._thread.start()

    def _run(self, chunks: Iterator[Any]) -> None:
        item: Any
        try:
            for table in chunks:
                if not self._put(table):
                    return
            item = self._END
        except BaseException as exc:  # handed to the consumer, raised there
            item = _Failed(exc)
        self._put(item)

    def _put(self, item: Any) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


@dataclass
class _Failed:
    error: BaseException


def _check_names(names: list[str], logged: bool, source: Source) -> None:
    """Refuses an input with a column named like one the output adds."""
    outputs = {PREDICTION}
    if logged:
        outputs |= {REQUEST_ID, REQUEST_ROW}
    clash = [c for c in names if c in outputs]
    clash += [c for c in names if c.startswith(PROBA_PREFIX)]
    if clash:
        raise BatchInputError(
            source.name,
            f"the input has a column {clash[0]!r}, a name the output uses",
            hint="Rename that column",
        )


def score_file(
    scorer: ChunkScorer,
    source: Source,
    output: Target,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
    invalid: Target | None = None,
    reading: Reading | None = None,
    threads: int | None = None,
) -> BatchResult:
    """Score ``source`` into ``output`` (and the invalid rows into ``invalid``), atomically.

    Three stages overlap: a thread reads chunks ahead, ``threads`` threads (default: one
    per core) validate and score them (onnxruntime and scikit-learn's trees release the
    GIL), and this thread writes the results in chunk order, output and prediction log.
    The first chunk is scored alone: it settles what later chunks are checked against.

    The side file is committed before the output, so an output in place means the whole
    run is done (the watcher relies on it).
    """
    import collections
    from concurrent.futures import Future, ThreadPoolExecutor

    out_format = output_format(output)
    workers = max(1, threads or default_threads())
    started = time.perf_counter()
    chunks, total = iter_chunks(source, chunk_rows, reading=reading)
    if progress is not None:
        progress(0, total)
    text = source.format == "csv"
    sink = TableSink(output, out_format)
    side = ProblemSink(invalid or output.sibling(INVALID_SUFFIX))
    state = _Written(scorer, sink, side, total, progress)
    read = n_chunks = 0
    input_schema: Any = None
    reader = _Prefetch(chunks, depth=workers + 1)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="loopline-batch") if workers > 1 else None
    inflight: collections.deque[Future[ScoredChunk]] = collections.deque()
    try:
        for table in reader:
            if input_schema is None:
                input_schema = table.schema
                _check_names(table.column_names, scorer.log_writer is not None, source)
            if pool is None or n_chunks == 0:
                state.write(scorer.score(table, first_row=read, text=text, chunk=n_chunks))
            else:
                inflight.append(
                    pool.submit(scorer.score, table, first_row=read, text=text, chunk=n_chunks)
                )
                while len(inflight) > workers:
                    state.write(inflight.popleft().result())
            read += table.num_rows
            n_chunks += 1
        while inflight:
            state.write(inflight.popleft().result())
        # The log's last file is encoded and stored while the output is committed.
        scorer.flush_log()
        invalid_name = state.commit(input_schema)
    except BaseException:
        for future in inflight:
            future.cancel()
        reader.close()
        sink.abort()
        side.abort()
        raise
    finally:
        reader.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return state.result(source, output, invalid_name, n_chunks, time.perf_counter() - started)


class _Written:
    """The writing stage of a run: output, side file, prediction log, counts, progress."""

    def __init__(
        self,
        scorer: ChunkScorer,
        sink: TableSink,
        side: ProblemSink,
        total: int | None,
        progress: Progress | None,
    ) -> None:
        self.scorer = scorer
        self.sink = sink
        self.side = side
        self.total = total
        self.progress = progress
        self.done = 0
        self.scored = 0

    def write(self, result: ScoredChunk) -> None:
        self.side.write(result.problems)
        if result.table is not None:
            self.sink.write(result.table)
        self.scorer.log(result)
        self.add(result.n_rows, result.n_scored)

    def add(self, rows: int, scored: int) -> None:
        self.done += rows
        self.scored += scored
        if self.progress is not None:
            total = max(self.total or 0, self.done) if self.total is not None else None
            self.progress(self.done, total)

    def commit(self, input_schema: Any) -> str | None:
        import pyarrow as pa

        empty = pa.schema([*list(input_schema or []), pa.field(PREDICTION, pa.string())])
        invalid_name = self.side.commit()
        self.sink.commit(empty)
        return invalid_name

    def result(
        self, source: Source, output: Target, invalid_name: str | None, chunks: int, seconds: float
    ) -> BatchResult:
        return BatchResult(
            model=self.scorer.loaded.name,
            version=self.scorer.loaded.version,
            input=source.name,
            output=output.name,
            rows_total=self.done,
            rows_scored=self.scored,
            rows_invalid=len(self.side.rows),
            invalid_path=invalid_name,
            chunks=chunks,
            seconds=seconds,
            path=self.scorer.path,
        )


def open_log_writer(stores: Stores, chunk_rows: int) -> BatchLogWriter:
    """The prediction log writer of a batch run: flushed by the caller, no thread. A file
    holds at least 100,000 rows (fewer, larger files: fewer puts and index writes)."""
    from loopline.monitor.predictions import PredictionIndex
    from loopline.trigger.batchlog import BatchLogWriter

    flush_rows = max(chunk_rows, 100_000)
    return BatchLogWriter(
        stores.objects,
        flush_rows=flush_rows,
        max_buffer_rows=max(4 * flush_rows, 1_000_000),
        index=PredictionIndex(stores.db).add,
        writer_id=f"batch{os.getpid()}{secrets.token_hex(3)}",
    )


def predict_file(
    stores: Stores,
    model_ref: str,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Progress | None = None,
    log: bool = True,
    reading: Reading | None = None,
    native: bool = False,
    threads: int | None = None,
    executor: Executor | None = None,
) -> BatchResult:
    """Score the file ``input`` with ``model_ref`` (``name@alias``, ``name/3``) into ``output``.

    ``input`` and ``output`` are paths or object store URLs (``s3://bucket/key``); their
    extensions (``.csv``, ``.parquet``) give the formats. Invalid rows go to
    ``OUTPUT.invalid.csv``. With ``log`` every scored row goes to the prediction log (and
    the output has its ``request_id`` and ``row``). ``reading`` follows the first read of a
    CSV file, ``progress`` the rows scored.

    The model runs on its ONNX export when the registry kept one, unless ``native``;
    ``threads`` chunks are scored at once (default: one per core). With an ``executor``
    that runs work in other processes (Ray), a Parquet input is split into shards of
    whole chunks scored there (:mod:`loopline.trigger.sharded`): the output is the same.
    """
    from loopline.trigger.scoring import load_for_batch

    started = time.perf_counter()
    source = Source.from_location(os.fspath(input), stores.settings.s3)
    target = Target.from_location(os.fspath(output), stores.settings.s3)
    if executor is not None and not executor.shares_memory:
        from loopline.trigger.sharded import predict_sharded

        result = predict_sharded(
            stores,
            executor,
            model_ref,
            source,
            target,
            chunk_rows=chunk_rows,
            progress=progress,
            log=log,
            native=native,
        )
        result.total_seconds = time.perf_counter() - started
        return result
    loaded = load_for_batch(stores, model_ref, native=native)
    writer = open_log_writer(stores, chunk_rows) if log else None
    scorer = ChunkScorer(loaded, chunk_rows=chunk_rows, log_writer=writer, native=native)
    try:
        result = score_file(
            scorer,
            source,
            target,
            chunk_rows=chunk_rows,
            progress=progress,
            reading=reading,
            threads=threads,
        )
    finally:
        if writer is not None:
            writer.close()
    if writer is not None:
        result.logged_rows = writer.stats.written_rows
        result.log_dropped_rows = writer.stats.dropped_rows + writer.stats.buffered_rows
    result.total_seconds = time.perf_counter() - started
    return result


__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "REQUEST_ID",
    "REQUEST_ROW",
    "BatchResult",
    "ChunkScorer",
    "Source",
    "Target",
    "file_format",
    "iter_chunks",
    "predict_file",
    "score_file",
]
