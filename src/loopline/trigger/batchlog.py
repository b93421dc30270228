"""The prediction log of a batch job: the chunks it scored, as files of the log's layout.

A batch job logs each chunk as one request (role ``batch``, request id
``batch-<run>-<chunk>``). :class:`BatchLogWriter` writes them in the layout and column
types of :mod:`loopline.monitor.predictions` (its readers, the monitor among them, read
these files like any other), with the index entries of ``ll_prediction_index``, but
builds the files for the batch case:

- a chunk's per-row constants (request id, arrival, latency, model, version, role) are
  repeated in Arrow (``pa.repeat``), never as Python objects per row;
- the inputs and outputs go in as the arrays the chunk was scored from (no copy of the
  buffered chunks into one array);
- the file is encoded like every log file (:func:`~loopline.monitor.predictions.log_file_bytes`:
  floats split into byte streams under LZ4, text dictionary-encoded): random float64
  inputs take about 0.93 of their plain size, less than a snappy Parquet input.

A file holds ``flush_rows`` rows or more (the job's writing thread flushes as chunks
arrive in order, and :meth:`~BatchLogWriter.close` writes the rest). A failed write is
retried at the next flush (its partial files are removed first, so no row is logged
twice); rows still unwritten at the end are reported as dropped, like the server's writer.
"""

from __future__ import annotations

import collections
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline.monitor.predictions import (
    INPUT_PREFIX,
    OUTPUT_PREFIX,
    PREFIX,
    IndexEntry,
    LogFiles,
    arrow_column,
    log_file_bytes,
    partitions,
)

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from loopline.store.objects.base import ObjectStore

log = logging.getLogger("loopline.trigger.batchlog")

Array = Any
ROLE = "batch"


@dataclass
class LoggedChunk:
    """One scored chunk as one request of the log: per-row inputs and outputs (arrays of
    ``rows`` values, keyed without the ``input.``/``output.`` prefixes)."""

    model: str
    version: int
    request_id: str
    rows: int
    arrived: float
    latency_ms: float
    inputs: Mapping[str, Array]
    outputs: Mapping[str, Array]
    #: When the chunk was logged (seconds since the epoch): it decides the hour partition.
    logged_at: float = field(default_factory=time.time)


class BatchLogWriter(LogFiles):
    """Writes a batch job's chunks to the prediction log, flushed by the caller (in the
    caller's thread, or with ``flush(wait=False)`` in one thread of its own)."""

    def __init__(
        self,
        objects: ObjectStore,
        *,
        flush_rows: int = 200_000,
        max_buffer_rows: int = 1_000_000,
        max_inflight: int = 2,
        prefix: str = PREFIX,
        writer_id: str | None = None,
        index: Callable[[Sequence[IndexEntry]], None] | None = None,
    ) -> None:
        super().__init__(
            objects,
            prefix=prefix,
            writer_id=writer_id or f"batch{secrets.token_hex(4)}",
            index=index,
        )
        self.flush_rows = max(1, int(flush_rows))
        self.max_buffer_rows = max(self.flush_rows, int(max_buffer_rows))
        #: Background flushes that may wait their turn before ``flush(wait=False)`` blocks.
        self.max_inflight = max(1, int(max_inflight))
        self._pending: list[LoggedChunk] = []
        self._pending_rows = 0
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: collections.deque[Future[int]] = collections.deque()

    def append(self, chunk: LoggedChunk) -> bool:
        """Buffer ``chunk``; False (and counted as dropped) when the buffer is full (the
        store failed to take the earlier ones)."""
        with self._lock:
            if self.stats.buffered_rows + chunk.rows > self.max_buffer_rows:
                self.stats.dropped_rows += chunk.rows
                return False
            self._pending.append(chunk)
            self._pending_rows += chunk.rows
            self.stats.buffered_rows += chunk.rows
            self.stats.appended_rows += chunk.rows
            return True

    @property
    def pending_rows(self) -> int:
        """Rows appended and not yet handed to a flush."""
        with self._lock:
            return self._pending_rows

    def flush(self, *, wait: bool = True) -> int:
        """Write the buffered chunks; the rows written.

        With ``wait=False`` the file is encoded and stored in the writer's thread while
        the caller goes on (at most ``max_inflight`` such flushes wait their turn; one
        more waits for the oldest), and 0 is returned. A failed write leaves its chunks
        buffered for the next flush.
        """
        self._wait_inflight(0 if wait else self.max_inflight - 1)
        with self._lock:
            chunks, self._pending = self._pending, []
            self._pending_rows = 0
        if not chunks:
            return 0
        if wait:
            return self._flush_chunks(chunks)
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="loopline-batch-log")
        self._inflight.append(self._pool.submit(self._flush_chunks, chunks))
        return 0

    def close(self) -> None:
        """Write what is buffered (what still fails stays in ``stats.buffered_rows``)."""
        try:
            self.flush()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None

    def _wait_inflight(self, keep: int) -> None:
        """Wait until at most ``keep`` background flushes are left."""
        while len(self._inflight) > keep:
            self._inflight.popleft().result()  # _flush_chunks never raises: failures count

    def _flush_chunks(self, chunks: list[LoggedChunk]) -> int:
        return self._commit(chunks, sum(c.rows for c in chunks), self._write, self._requeue)

    def _requeue(self, chunks: list[LoggedChunk]) -> None:
        self._pending[:0] = chunks
        self._pending_rows += sum(c.rows for c in chunks)

    # -- files ----------------------------------------------------------------------------

    def _write(self, chunks: list[LoggedChunk]) -> list[IndexEntry]:
        def files() -> Iterator[tuple[str, memoryview, list[IndexEntry]]]:
            for (model, day, hour), group in partitions(chunks).items():
                newest = max(max(c.logged_at, c.arrived) for c in group)
                key = self._key(model, day, hour, newest)
                yield key, self._encode(group), [_entry(c, key) for c in group]

        return self._store(files())

    def _encode(self, group: Sequence[LoggedChunk]) -> memoryview:
        return log_file_bytes(log_table(group))


def _entry(chunk: LoggedChunk, key: str) -> IndexEntry:
    return IndexEntry(
        request_id=chunk.request_id,
        model=chunk.model,
        version=chunk.version,
        role=ROLE,
        rows=chunk.rows,
        at=datetime.fromtimestamp(chunk.arrived, UTC),
        object_key=key,
    )


def log_table(group: Sequence[LoggedChunk]) -> Any:
    """The chunks as one Arrow table in the log's columns and types (those of
    :meth:`loopline.monitor.predictions.PredictionBatch.to_arrow`)."""
    import numpy as np
    import pyarrow as pa

    n = sum(c.rows for c in group)
    ts_type = pa.timestamp("us", tz="UTC")

    def per_chunk(make: Callable[[LoggedChunk], Any], kind: Any) -> Any:
        return pa.chunked_array([make(c) for c in group], type=kind)

    def repeat(value: Any, kind: Any, size: int) -> Any:
        return pa.repeat(pa.scalar(value, type=kind), size)

    data: dict[str, Any] = {
        "request_id": per_chunk(lambda c: repeat(c.request_id, pa.string(), c.rows), pa.string()),
        "row": per_chunk(lambda c: pa.array(np.arange(c.rows, dtype=np.int32)), pa.int32()),
        "ts": per_chunk(
            lambda c: repeat(int(np.float64(c.arrived) * 1e6), pa.int64(), c.rows).cast(ts_type),
            ts_type,
        ),
        "model": per_chunk(lambda c: repeat(c.model, pa.string(), c.rows), pa.string()),
        "version": per_chunk(lambda c: repeat(int(c.version), pa.int32(), c.rows), pa.int32()),
        "role": repeat(ROLE, pa.string(), n),
        "latency_ms": per_chunk(
            lambda c: repeat(float(c.latency_ms), pa.float64(), c.rows), pa.float64()
        ),
    }
    for name in group[0].inputs:
        data[INPUT_PREFIX + name] = _unified(pa, [arrow_column(pa, c.inputs[name]) for c in group])
    for name in group[0].outputs:
        data[OUTPUT_PREFIX + name] = _unified(
            pa, [arrow_column(pa, c.outputs[name]) for c in group]
        )
    return pa.table(data)


def _unified(pa: Any, arrays: list[Any]) -> Any:
    """The chunks' arrays of one column as one column: as they are when their types agree,
    else promoted to a common type (a chunk of nulls only, ints beside floats), else text."""
    if len({a.type for a in arrays}) == 1:
        return pa.chunked_array(arrays)
    tables = [pa.table({"c": a}) for a in arrays]
    try:
        return pa.concat_tables(tables, promote_options="permissive")["c"]
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pa.chunked_array([_as_text(pa, a) for a in arrays], type=pa.string())


def _as_text(pa: Any, array: Any) -> Any:
    try:
        return array.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else str(v) for v in array.to_pylist()], pa.string())
