"""The prediction log: every prediction's inputs, outputs, model version, latency and request
id, as Parquet files in the artifact store, partitioned by model and hour.

Writing (:class:`PredictionLogWriter`) never blocks the caller: :meth:`~PredictionLogWriter.append`
puts a :class:`PredictionBatch` in an in-memory buffer under a lock and returns; a
background thread writes the buffer out every ``flush_interval_s`` seconds, or as soon as
it holds ``flush_rows`` rows, and :meth:`~PredictionLogWriter.close` writes what is left
(call it on a graceful stop). The buffer is bounded: when it holds ``max_buffer_rows``
rows (the store is slow or down), new batches are dropped and counted in
``stats.dropped_rows`` instead of growing memory or slowing the caller. A process killed
with SIGKILL loses what it had not flushed yet: at most one flush interval.

Layout, one file per (model, hour) per flush and writer::

    predictions/model=<name>/date=<YYYY-MM-DD>/hour=<HH>/<YYYYmmddTHHMMSS>-<writer>-<seq>.parquet

Columns of a file (one row per predicted row):

=====================  ==================================================================
``request_id``         the request's id (string)
``row``                the 0-based row within the request (int32)
``ts``                 when the request arrived (timestamp[us, UTC])
``model``, ``version`` which model version answered (string, int32)
``role``               ``primary``, ``canary`` or ``shadow`` (a shadow's answer was not returned)
``latency_ms``         the request's latency up to its prediction (float64)
``input.<column>``     one column per input of the model's signature
``output.prediction``  the prediction (label or value)
``output.proba.<c>``   for classifiers, the probability of class ``c``
=====================  ==================================================================

Reading (:func:`read_predictions`) lists the partitions of a time range and concatenates
the files (files of different model versions may have different input columns; missing
ones are null). The database index of request ids (``ll_prediction_index``, written
after each file by :class:`PredictionIndex`) lets feedback be matched to predictions
without reading Parquet.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from loopline.store.db.types import to_utc

if TYPE_CHECKING:
    from loopline.store.db.engine import Database
    from loopline.store.objects.base import ObjectStore

log = logging.getLogger("loopline.monitor.predictions")

PREFIX = "predictions"
INPUT_PREFIX = "input."
OUTPUT_PREFIX = "output."
PREDICTION_COLUMN = "output.prediction"
PROBA_PREFIX = "output.proba."
META_COLUMNS = ("request_id", "row", "ts", "model", "version", "role", "latency_ms")
ROLES = ("primary", "canary", "shadow")

#: Arrays are typed loosely: numpy is imported only where they are built.
Array = Any


@dataclass
class PredictionBatch:
    """Rows predicted together by one model version, ready to be logged.

    Per-request arrays (``request_ids``, ``row_counts``, ``arrived``, ``latency_ms``) have
    one entry per request, its rows being the next ``row_counts[i]`` of the per-row
    ``inputs`` and ``outputs`` (column names without the ``input.``/``output.``
    prefixes, e.g. ``"prediction"``, ``"proba.1"``). The log's per-row columns are built
    from them in Arrow when the batch is written, not as Python objects per row.
    """

    model: str
    version: int
    role: str
    request_ids: Array
    row_counts: Array
    arrived: Array
    latency_ms: Array
    inputs: Mapping[str, Array]
    outputs: Mapping[str, Array]
    #: When the batch was logged (seconds since the epoch): it decides the hour partition.
    logged_at: float = field(default_factory=time.time)
    n_rows: int = -1

    def __post_init__(self) -> None:
        if self.n_rows < 0:
            self.n_rows = int(self.row_counts.sum())

    @classmethod
    def from_requests(
        cls,
        *,
        model: str,
        version: int,
        role: str,
        request_ids: Sequence[str],
        row_counts: Sequence[int],
        arrived: Sequence[float],
        latency_ms: Sequence[float],
        inputs: Mapping[str, Array],
        outputs: Mapping[str, Array],
    ) -> PredictionBatch:
        """A batch from per-request values and per-row inputs and outputs."""
        import numpy as np

        ids = np.empty(len(request_ids), dtype=object)
        ids[:] = list(request_ids)
        return cls(
            model=model,
            version=version,
            role=role,
            request_ids=ids,
            row_counts=np.asarray(row_counts, dtype=np.int64),
            arrived=np.asarray(arrived, dtype=np.float64),
            latency_ms=np.asarray(latency_ms, dtype=np.float64),
            inputs=inputs,
            outputs=outputs,
        )

    def to_arrow(self) -> Any:
        """The batch as a pyarrow Table in the log's column layout."""
        import numpy as np
        import pyarrow as pa

        n, counts = self.n_rows, self.row_counts
        which = pa.array(np.repeat(np.arange(len(counts), dtype=np.int32), counts))
        starts = np.repeat((np.cumsum(counts) - counts).astype(np.int32), counts)
        micros = (self.arrived * 1e6).astype(np.int64)
        data: dict[str, Any] = {
            "request_id": pa.array(self.request_ids, type=pa.string()).take(which),
            "row": pa.array(np.arange(n, dtype=np.int32) - starts),
            "ts": pa.array(micros, type=pa.timestamp("us", tz="UTC")).take(which),
            "model": pa.repeat(pa.scalar(self.model, type=pa.string()), n),
            "version": pa.repeat(pa.scalar(int(self.version), type=pa.int32()), n),
            "role": pa.repeat(pa.scalar(self.role, type=pa.string()), n),
            "latency_ms": pa.array(self.latency_ms).take(which),
        }
        for name, values in self.inputs.items():
            data[INPUT_PREFIX + name] = arrow_column(pa, values)
        for name, values in self.outputs.items():
            data[OUTPUT_PREFIX + name] = arrow_column(pa, values)
        return pa.table(data)


def arrow_column(pa: Any, values: Any) -> Any:
    """``values`` (a numpy array of one log column) as an Arrow array: as it is when Arrow
    takes it, else (mixed Python values in an ``object`` column) as text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # Mixed Python values (an ``object`` column): keep them as text.
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


@dataclass(frozen=True)
class IndexEntry:
    """One request in one log file (what ``ll_prediction_index`` holds)."""

    request_id: str
    model: str
    version: int
    role: str
    rows: int
    at: datetime
    object_key: str


@dataclass
class LogStats:
    """Counters of a writer, for metrics and status pages."""

    appended_rows: int = 0
    written_rows: int = 0
    dropped_rows: int = 0
    files: int = 0
    flushes: int = 0
    flush_errors: int = 0
    index_errors: int = 0
    buffered_rows: int = 0
    last_flush_at: float | None = None
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Partitioned(Protocol):
    model: str
    logged_at: float


Item = TypeVar("Item", bound=_Partitioned)


def partitions(items: Iterable[Item]) -> dict[tuple[str, str, str], list[Item]]:
    """``items`` by the log's partitions: (model, date, hour) of when each was logged."""
    groups: dict[tuple[str, str, str], list[Item]] = {}
    for item in items:
        moment = datetime.fromtimestamp(item.logged_at, UTC)
        groups.setdefault(
            (item.model, moment.strftime("%Y-%m-%d"), moment.strftime("%H")), []
        ).append(item)
    return groups


class LogFiles:
    """What every writer of the log shares (the server's :class:`PredictionLogWriter`, a
    batch job's :class:`loopline.trigger.batchlog.BatchLogWriter`): the files' names, a
    flush's files stored all or none, and the counters.

    ``index`` (e.g. :meth:`PredictionIndex.add`) is called with the entries of each flush
    written; its failures are logged and counted, never raised: the Parquet file is the
    record. ``writer_id`` names the writer in file names, so several processes can log
    to one store.
    """

    def __init__(
        self,
        objects: ObjectStore,
        *,
        prefix: str,
        writer_id: str,
        index: Callable[[Sequence[IndexEntry]], None] | None,
    ) -> None:
        self.objects = objects
        self.prefix = prefix.strip("/")
        self.writer_id = writer_id
        self.index = index
        self.stats = LogStats()
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    def _commit(
        self,
        items: list[Item],
        rows: int,
        write: Callable[[list[Item]], list[IndexEntry]],
        requeue: Callable[[list[Item]], None],
    ) -> int:
        """Write ``items`` (``rows`` rows) with ``write`` and index them; the rows written.
        On failure ``requeue`` gets them back (under the lock) for the next flush, and
        the error is counted and logged: 0."""
        try:
            entries = write(items)
        except Exception as exc:
            with self._lock:
                requeue(items)
                self.stats.flush_errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning("could not write the prediction log (%s); will retry", exc)
            return 0
        with self._lock:
            self.stats.buffered_rows -= rows
            self.stats.written_rows += rows
            self.stats.flushes += 1
            self.stats.last_flush_at = time.time()
        if self.index is not None and entries:
            try:
                self.index(entries)
            except Exception as exc:
                with self._lock:
                    self.stats.index_errors += 1
                    self.stats.last_error = f"index: {type(exc).__name__}: {exc}"[:500]
                log.warning("could not index the prediction log (%s)", exc)
        return rows

    def _store(self, files: Iterable[tuple[str, memoryview, list[IndexEntry]]]) -> list[IndexEntry]:
        """Store each (key, Parquet bytes, index entries) of ``files``, all or none: when
        one fails, the files this attempt stored are removed (a retry writes them all
        again, so no row is logged twice)."""
        entries: list[IndexEntry] = []
        written: list[str] = []
        try:
            for key, data, file_entries in files:
                self.objects.put(key, data)
                written.append(key)
                with self._lock:
                    self.stats.files += 1
                entries.extend(file_entries)
        except Exception:
            for done in written:
                try:
                    self.objects.delete(done)
                except Exception:
                    log.warning("could not remove partial prediction log file %s", done)
            raise
        return entries

    def _key(self, model: str, day: str, hour: str, newest: float) -> str:
        # Named after a moment no earlier than any row it holds (readers skip the files
        # written before a window starts): now, or a row logged "in the future" (a clock
        # ahead, a replay of simulated time).
        stamp = datetime.fromtimestamp(max(time.time(), newest), UTC).strftime("%Y%m%dT%H%M%S")
        return (
            f"{self.prefix}/model={model}/date={day}/hour={hour}/"
            f"{stamp}-{self.writer_id}-{next(self._seq):06d}.parquet"
        )


class PredictionLogWriter(LogFiles):
    """Buffers a server's prediction batches and writes them as Parquet to an object
    store, every ``flush_interval_s`` or ``flush_rows`` rows, in a thread of its own
    (``writer_id`` defaults to pid + random)."""

    def __init__(
        self,
        objects: ObjectStore,
        *,
        flush_interval_s: float = 10.0,
        flush_rows: int = 50_000,
        max_buffer_rows: int = 500_000,
        prefix: str = PREFIX,
        writer_id: str | None = None,
        index: Callable[[Sequence[IndexEntry]], None] | None = None,
    ) -> None:
        if flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be > 0")
        super().__init__(
            objects,
            prefix=prefix,
            writer_id=writer_id or f"{os.getpid()}{secrets.token_hex(3)}",
            index=index,
        )
        self.flush_interval_s = float(flush_interval_s)
        self.flush_rows = max(1, int(flush_rows))
        self.max_buffer_rows = max(1, int(max_buffer_rows))
        self._buffer: list[PredictionBatch] = []
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the caller's side ----------------------------------------------------------------

    def append(self, batch: PredictionBatch) -> bool:
        """Buffer ``batch``; False (and counted as dropped) when the buffer is full."""
        n = batch.n_rows
        with self._lock:
            if self.stats.buffered_rows + n > self.max_buffer_rows:
                self.stats.dropped_rows += n
                return False
            self._buffer.append(batch)
            self.stats.buffered_rows += n
            self.stats.appended_rows += n
            full = self.stats.buffered_rows >= self.flush_rows
        if full:
            self._wake.set()
        return True

    def has_request(self, request_id: str) -> bool:
        """Whether ``request_id`` is buffered here and not yet written."""
        with self._lock:
            batches = list(self._buffer)
        return any(request_id in b.request_ids.tolist() for b in batches)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> PredictionLogWriter:
        """Start the background flusher (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="loopline-prediction-log", daemon=True
            )
            self._thread.start()
        return self

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop the flusher and write everything buffered (a graceful stop loses nothing)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.flush()

    def __enter__(self) -> PredictionLogWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
            except Exception:  # never let the flusher die; flush() counts its errors
                log.exception("prediction log flush failed")

    # -- writing --------------------------------------------------------------------------

    def flush(self) -> int:
        """Write the buffer now; returns the rows written (0 when empty or on failure).

        On failure the batches go back to the front of the buffer (still bounded by
        ``max_buffer_rows``) and are retried at the next flush.
        """
        with self._flush_lock:
            with self._lock:
                batches, self._buffer = self._buffer, []
            if not batches:
                return 0
            return self._commit(batches, sum(b.n_rows for b in batches), self._write, self._requeue)

    def _requeue(self, batches: list[PredictionBatch]) -> None:
        self._buffer[:0] = batches

    def _write(self, batches: list[PredictionBatch]) -> list[IndexEntry]:
        import pyarrow as pa

        def files() -> Iterator[tuple[str, memoryview, list[IndexEntry]]]:
            for (model, day, hour), group in partitions(batches).items():
                merged = _merge(group)
                tables = [b.to_arrow() for b in merged]
                table = (
                    tables[0]
                    if len(tables) == 1
                    else pa.concat_tables(tables, promote_options="permissive")
                )
                key = self._key(model, day, hour, _newest(group))
                yield key, log_file_bytes(table), _entries(merged, key)

        return self._store(files())


def _merge(batches: list[PredictionBatch]) -> list[PredictionBatch]:
    """Batches of the same version, role and columns as one (one conversion to Arrow
    instead of one per micro-batch: thousands per flush under load)."""
    import numpy as np

    same: dict[tuple[Any, ...], list[PredictionBatch]] = {}
    for b in batches:
        shape = (b.version, b.role, tuple(b.inputs), tuple(b.outputs))
        same.setdefault(shape, []).append(b)
    out: list[PredictionBatch] = []
    for group in same.values():
        if len(group) == 1:
            out.append(group[0])
            continue

        def cat(arrays: list[Any]) -> Any:
            kinds = {a.dtype.kind for a in arrays}
            if len(kinds) > 1 and "O" in kinds:
                arrays = [a.astype(object) for a in arrays]
            return np.concatenate(arrays)

        first = group[0]
        out.append(
            PredictionBatch(
                model=first.model,
                version=first.version,
                role=first.role,
                request_ids=cat([b.request_ids for b in group]),
                row_counts=cat([b.row_counts for b in group]),
                arrived=cat([b.arrived for b in group]),
                latency_ms=cat([b.latency_ms for b in group]),
                inputs={k: cat([b.inputs[k] for b in group]) for k in first.inputs},
                outputs={k: cat([b.outputs[k] for b in group]) for k in first.outputs},
                logged_at=first.logged_at,
            )
        )
    return out


def _entries(group: Iterable[PredictionBatch], key: str) -> list[IndexEntry]:
    """One index entry per request of ``group`` (a request id met twice is one entry, with
    its rows summed and its first arrival)."""
    out: dict[tuple[str, str], IndexEntry] = {}
    for batch in group:
        version = int(batch.version)
        for rid, count, at in zip(
            batch.request_ids.tolist(),
            batch.row_counts.tolist(),
            batch.arrived.tolist(),
            strict=True,
        ):
            seen = out.get((rid, batch.role))
            if seen is not None:
                out[(rid, batch.role)] = replace(seen, rows=seen.rows + int(count))
                continue
            out[(rid, batch.role)] = IndexEntry(
                request_id=str(rid),
                model=batch.model,
                version=version,
                role=batch.role,
                rows=int(count),
                at=datetime.fromtimestamp(at, UTC),
                object_key=key,
            )
    return list(out.values())


#: The codec of the log's files: LZ4 is the cheapest that still makes a log of float
#: inputs smaller than a Parquet file of them (about 0.7 of zstd -1's CPU for 4% more bytes).
COMPRESSION = "lz4"


def log_file_bytes(table: Any) -> memoryview:
    """``table`` as the bytes of one log file (every writer of the log encodes alike): a
    view of the encoder's own buffer, handed to the store as it is (a batch job's file
    is tens of megabytes: a copy into ``bytes`` would cost as much as writing it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    # Dictionary encoding only for text (ids, model, role, categories): trying it on every
    # float column costs five times the CPU of the whole write, for nothing. Floats are
    # split into byte streams: their exponent bytes then compress.
    text = [f.name for f in table.schema if pa.types.is_string(f.type)]
    floats = [f.name for f in table.schema if pa.types.is_floating(f.type)]
    pq.write_table(
        table,
        sink,
        compression=COMPRESSION,
        use_dictionary=text or False,
        use_byte_stream_split=floats or False,
    )
    return memoryview(sink.getvalue())


# -- reading ------------------------------------------------------------------------------


def prediction_files(
    objects: ObjectStore,
    *,
    model: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    prefix: str = PREFIX,
) -> list[str]:
    """Keys of the log files of ``model`` (all models when None) that may hold rows of
    [``start``, ``end``), sorted by partition then name.

    A file's hour partition is its rows' hour, and its name starts with the second it
    was written (``20261202T100536-...``), after every row it holds: a file written
    before ``start`` holds none of the window's rows and is not opened. So a window of a
    few seconds reads the few files written since it began, not its whole hour."""
    base = f"{prefix.strip('/')}/" + (f"model={model}/" if model else "")
    lo = _hour_floor(start) if start is not None else None
    # Names keep whole seconds (a row at .7 s is in a file named after that second).
    written_after = (
        (to_utc(start) - timedelta(seconds=2)).strftime("%Y%m%dT%H%M%S")
        if start is not None
        else None
    )
    out: list[str] = []
    for key in _listed(objects, base, lo, end, written_after if model else None):
        if not key.endswith(".parquet"):
            continue
        hour = _partition_hour(key)
        if hour is None:
            continue
        if lo is not None and hour < lo:
            continue
        if end is not None and hour >= to_utc(end):
            continue
        if written_after is not None:
            stamp = _written_at(key)
            if stamp is not None and stamp < written_after:
                continue
        out.append(key)
    return out


#: A window spanning more hours than this lists the model's whole log once instead.
_MAX_HOUR_LISTINGS = 240


def _listed(
    objects: ObjectStore,
    base: str,
    lo: datetime | None,
    end: datetime | None,
    written_after: str | None,
) -> Iterator[str]:
    """The keys under ``base`` that may be in [``lo``, ``end``): one listing per hour
    partition, each starting after the files written before the window (on S3 the
    skipping is done by the server), or one listing of everything."""
    if lo is None or end is None or written_after is None:
        yield from objects.list(base)
        return
    hour, last = lo, to_utc(end)
    if (last - hour).total_seconds() > _MAX_HOUR_LISTINGS * 3600:
        yield from objects.list(base)
        return
    while hour < last:
        folder = f"{base}date={hour:%Y-%m-%d}/hour={hour:%H}/"
        yield from objects.list(folder, start_after=folder + written_after)
        hour += timedelta(hours=1)


def _newest(batches: Sequence[PredictionBatch]) -> float:
    """The latest moment of any row of ``batches`` (arrival or logging, seconds)."""
    import numpy as np

    return max(
        max(b.logged_at, float(np.max(b.arrived)) if len(b.arrived) else b.logged_at)
        for b in batches
    )


def _written_at(key: str) -> str | None:
    """The ``YYYYmmddTHHMMSS`` a log file's name starts with (None for another name)."""
    name = key.rsplit("/", 1)[-1]
    stamp = name[:15]
    if len(stamp) == 15 and stamp[8] == "T" and (stamp[:8] + stamp[9:]).isdigit():
        return stamp
    return None


def read_predictions(
    objects: ObjectStore,
    *,
    model: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    columns: Sequence[str] | None = None,
    prefix: str = PREFIX,
) -> Any:
    """The logged rows of ``model`` with ``start <= ts < end``, as one pyarrow Table.

    Files written by different model versions are concatenated with their columns
    unified (a column a file lacks is null there). An empty Table when nothing matches.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tables = []
    for key in prediction_files(objects, model=model, start=start, end=end, prefix=prefix):
        table = pq.read_table(pa.BufferReader(objects.get(key)))
        if columns is not None:
            keep = [c for c in columns if c in table.column_names]
            table = table.select(keep)
        tables.append(table)
    if not tables:
        return pa.table({name: pa.array([], type=_meta_types(pa)[name]) for name in META_COLUMNS})
    table = pa.concat_tables(tables, promote_options="permissive")
    if (start is not None or end is not None) and "ts" in table.column_names:
        mask = None
        if start is not None:
            mask = pc.greater_equal(
                table["ts"], pa.scalar(to_utc(start), pa.timestamp("us", "UTC"))
            )
        if end is not None:
            below = pc.less(table["ts"], pa.scalar(to_utc(end), pa.timestamp("us", "UTC")))
            mask = below if mask is None else pc.and_(mask, below)
        table = table.filter(mask)
    return table


def input_columns(table: Any) -> list[str]:
    """The input column names of a log table, without the ``input.`` prefix."""
    return [c[len(INPUT_PREFIX) :] for c in table.column_names if c.startswith(INPUT_PREFIX)]


def inputs_frame(table: Any) -> Any:
    """The inputs of a log table as a pandas DataFrame with the signature's column names."""
    names = [c for c in table.column_names if c.startswith(INPUT_PREFIX)]
    frame = table.select(names).to_pandas()
    frame.columns = [c[len(INPUT_PREFIX) :] for c in names]
    return frame


def _meta_types(pa: Any) -> dict[str, Any]:
    return {
        "request_id": pa.string(),
        "row": pa.int32(),
        "ts": pa.timestamp("us", tz="UTC"),
        "model": pa.string(),
        "version": pa.int32(),
        "role": pa.string(),
        "latency_ms": pa.float64(),
    }


def _partition_hour(key: str) -> datetime | None:
    day = hour = None
    for part in key.split("/"):
        if part.startswith("date="):
            day = part[5:]
        elif part.startswith("hour="):
            hour = part[5:]
    if day is None or hour is None:
        return None
    try:
        return datetime.strptime(f"{day} {hour}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    except ValueError:
        return None


def _hour_floor(moment: datetime) -> datetime:
    return to_utc(moment).replace(minute=0, second=0, microsecond=0)


# -- the index ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedRequest:
    """What the index knows about one request id (its primary or canary answer)."""

    request_id: str
    model: str
    version: int
    role: str
    rows: int
    at: datetime
    object_key: str


class PredictionIndex:
    """Request ids of the prediction log in the metadata database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, entries: Sequence[IndexEntry]) -> None:
        """Insert the entries in one transaction, through the driver's ``executemany``
        (tens of thousands of rows per flush under load: SQLAlchemy's per-row processing
        would cost more than the rest of the log)."""
        if not entries:
            return
        import sqlalchemy as sa

        from loopline.monitor.tables import prediction_index as t

        names = ("request_id", "model", "version", "role", "rows", "at", "object_key")

        def insert(conn: sa.Connection) -> None:
            at = t.c.at.type.bind_processor(conn.dialect)
            rows = [
                (
                    e.request_id[:64],
                    e.model,
                    e.version,
                    e.role,
                    e.rows,
                    at(e.at) if at is not None else e.at,
                    e.object_key,
                )
                for e in entries
            ]
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            sql = (
                f"INSERT INTO {t.name} ({', '.join(names)}) "
                f"VALUES ({', '.join([mark] * len(names))})"
            )
            conn.exec_driver_sql(sql, rows)

        self.db.run_write(insert)

    def lookup(self, request_ids: Iterable[str]) -> dict[str, LoggedRequest]:
        """The answering (non-shadow) log entry of each known request id."""
        import sqlalchemy as sa

        from loopline.monitor.tables import prediction_index as t

        wanted = sorted(set(request_ids))
        out: dict[str, LoggedRequest] = {}
        with self.db.read() as conn:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                query = (
                    sa.select(t)
                    .where(t.c.request_id.in_(chunk), t.c.role != "shadow")
                    .order_by(t.c.id)
                )
                for row in conn.execute(query):
                    at = row.at  # a UTCDateTime column: aware UTC already
                    out.setdefault(
                        row.request_id,
                        LoggedRequest(
                            row.request_id,
                            row.model,
                            int(row.version),
                            row.role,
                            int(row.rows),
                            at,
                            row.object_key,
                        ),
                    )
        return out

    def count(self, model: str | None = None, since: timedelta | None = None) -> int:
        import sqlalchemy as sa

        from loopline.monitor.tables import prediction_index as t

        query = sa.select(sa.func.count()).select_from(t)
        if model is not None:
            query = query.where(t.c.model == model)
        if since is not None:
            query = query.where(t.c.at >= datetime.now(UTC) - since)
        with self.db.read() as conn:
            return int(conn.execute(query).scalar() or 0)

    def traffic(self, model: str, since: timedelta) -> list[dict[str, Any]]:
        """Per (version, role) of ``model`` over the last ``since``: logged requests, rows
        and the newest request's time, by version then role."""
        import sqlalchemy as sa

        from loopline.monitor.tables import prediction_index as t

        query = (
            sa.select(
                t.c.version,
                t.c.role,
                sa.func.count().label("requests"),
                sa.func.sum(t.c.rows).label("rows"),
                sa.func.max(t.c.at).label("last_at"),
            )
            .where(t.c.model == model, t.c.at >= datetime.now(UTC) - since)
            .group_by(t.c.version, t.c.role)
            .order_by(t.c.version, t.c.role)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "version": int(r.version),
                "role": r.role,
                "requests": int(r.requests),
                "rows": int(r.rows or 0),
                "last_at": None if r.last_at is None else to_utc(r.last_at).isoformat(),
            }
            for r in rows
        ]


__all__ = [
    "INPUT_PREFIX",
    "META_COLUMNS",
    "OUTPUT_PREFIX",
    "PREDICTION_COLUMN",
    "PREFIX",
    "PROBA_PREFIX",
    "IndexEntry",
    "LogStats",
    "LoggedRequest",
    "PredictionBatch",
    "PredictionIndex",
    "PredictionLogWriter",
    "input_columns",
    "inputs_frame",
    "prediction_files",
    "read_predictions",
]
