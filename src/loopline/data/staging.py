"""A canonical table written to a Parquet file as it streams in, read back a column at a time.

Adding a large file must not hold the whole table in memory. The readers give canonical
record batches (:class:`BatchSource`: CSV in :mod:`loopline.data.csvfile`, Parquet in
:mod:`loopline.data.ingest`); :func:`stage` writes them with :class:`TableWriter` as the
row groups of a Parquet file in a temporary folder; :class:`StagedTable` reads that file
back one column at a time for the digest, the profile and the validation, which need whole
columns but never a whole table. The file is then the blob the dataset version stores
(:meth:`~loopline.store.objects.cas.ContentStore.put_file`), so it is written once.

A source may find out late how a column must be read (see
:class:`~loopline.data.content.RestartStream`); staging then starts again from the
beginning, with what the source learned.

Row groups hold a number of rows that depends on the schema alone (about
:data:`ROW_GROUP_BYTES` of Arrow data, at most 1,048,576 rows), and each is written from
contiguous arrays, so the same canonical table gives the same Parquet bytes whatever its
source and however it was chunked.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from loopline.data.content import RestartStream
from loopline.data.errors import IngestError

#: Arrow bytes a row group is sized for.
ROW_GROUP_BYTES = 64 * 1024 * 1024
#: Bytes per text or binary value assumed when sizing row groups (offset + data).
TEXT_VALUE_BYTES = 32
#: Fewest rows in a row group (very wide tables).
MIN_ROW_GROUP_ROWS = 16_384
#: Pending bytes that flush a row group early (values far longer than assumed).
MAX_PENDING_BYTES = 2 * ROW_GROUP_BYTES
#: How many times a source may ask to be read again.
MAX_PASSES = 8
#: Uncompressed Parquet bytes of the columns a staged table lets threads hold at once
#: (one column at a time once columns are larger than half of it).
COLUMN_BYTES_IN_FLIGHT = 64 * 1024 * 1024


class BatchSource(Protocol):
    """A source read as canonical record batches, possibly more than once."""

    #: What was read, for lineage (see :class:`~loopline.data.ingest.Ingested`).
    source: str
    format: str
    #: Conversions worth telling; complete once a pass has ended.
    notes: list[str]

    def batches(self) -> Iterator[Any]:
        """Canonical ``pyarrow.RecordBatch`` es from the start; may raise RestartStream
        (then call again) or, at the end, an IngestError about the whole source."""
        ...


def release_memory() -> None:
    """Give memory Arrow has freed back to the system (its allocator keeps freed pages for
    reuse), so that one phase of an add does not stack on what the last one left."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def row_group_rows(schema: Any) -> int:
    """Rows per row group for a canonical schema (see the module docstring)."""
    import pyarrow as pa

    from loopline.store.objects.tables import ROW_GROUP_SIZE

    width = 0.0
    for field in schema:
        t = field.type
        if pa.types.is_boolean(t):
            width += 0.125
        elif pa.types.is_null(t):
            continue
        elif pa.types.is_large_string(t) or pa.types.is_large_binary(t):
            width += TEXT_VALUE_BYTES
        else:
            width += t.bit_width / 8
    rows = int(ROW_GROUP_BYTES // max(width, 1.0))
    return max(MIN_ROW_GROUP_ROWS, min(ROW_GROUP_SIZE, rows))


class TableWriter:
    """Writes canonical batches to a Parquet file with the store's writer options.

    Row groups are encoded in a background thread (Parquet's encoders release the GIL),
    one at a time, while the next one is gathered.
    """

    def __init__(self, path: Path, schema: Any) -> None:
        import pyarrow.parquet as pq

        from loopline.store.objects.tables import COMPRESSION, COMPRESSION_LEVEL

        self.path = path
        self.schema = schema
        self.rows = 0
        self._group = row_group_rows(schema)
        self._pending: list[Any] = []
        self._pending_rows = 0
        self._pending_bytes = 0
        self._writer = pq.ParquetWriter(
            str(path),
            schema,
            compression=COMPRESSION,
            compression_level=COMPRESSION_LEVEL,
            write_statistics=True,
            use_dictionary=True,
        )
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loopline-parquet")
        self._writing: Future[None] | None = None

    def write(self, batch: Any) -> None:
        if not batch.num_rows:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        self.rows += batch.num_rows
        while self._pending_rows >= self._group:
            self._flush(self._group)
        if self._pending_bytes > MAX_PENDING_BYTES:
            self._flush(self._pending_rows)

    def close(self) -> None:
        if self._pending_rows:
            self._flush(self._pending_rows)
        self._wait()
        self._thread.shutdown()
        self._writer.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._wait()
        self._thread.shutdown()
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _flush(self, rows: int) -> None:
        import pyarrow as pa

        # The last group is written first: then memory holds two groups (the one being
        # written, and the next one gathering), never three.
        self._wait()
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        group = table.slice(0, rows).combine_chunks()
        rest = table.slice(rows)
        self._pending = rest.to_batches()
        self._pending_rows = rest.num_rows
        self._pending_bytes = rest.nbytes
        del table
        self._writing = self._thread.submit(self._writer.write_table, group, row_group_size=rows)

    def _wait(self) -> None:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            writing.result()


class StagedTable:
    """A canonical table in a Parquet file, read a column (or a row group) at a time.

    It offers the part of ``pyarrow.Table`` that hashing, profiling and validation use:
    ``column_names``, ``schema``, ``num_rows``, ``num_columns`` and ``column(i)``.
    """

    def __init__(self, path: Path, schema: Any, num_rows: int) -> None:
        self.path = path
        self.schema = schema
        self.num_rows = num_rows

    @property
    def column_names(self) -> list[str]:
        return list(self.schema.names)

    @property
    def num_columns(self) -> int:
        return len(self.schema)

    @functools.cached_property
    def column_workers(self) -> int:
        """How many columns may be read at once (by threads) without holding more than
        :data:`COLUMN_BYTES_IN_FLIGHT`: at least one, fewer when columns are large."""
        with self._open() as f:
            meta = f.metadata
            sizes = [
                sum(
                    meta.row_group(g).column(c).total_uncompressed_size
                    for g in range(meta.num_row_groups)
                )
                for c in range(meta.num_columns)
            ]
        return max(1, COLUMN_BYTES_IN_FLIGHT // max(max(sizes, default=1), 1))

    def column(self, i: int | str) -> Any:
        """One whole column (a ``pyarrow.ChunkedArray``, a chunk per row group)."""
        import pyarrow as pa

        name = self.schema.names[i] if isinstance(i, int) else i
        if name not in self.schema.names:
            raise KeyError(f"no column {i!r}; columns: {', '.join(self.column_names)}")
        chunks: list[Any] = []
        with self._open() as f:
            # A row group at a time: decoding buffers for one, not for all at once.
            for g in range(f.num_row_groups):
                part = f.read_row_group(g, columns=[name], use_threads=False).column(0)
                chunks.extend(part.chunks)
        return pa.chunked_array(chunks, type=self.schema.field(name).type)

    def iter_tables(self) -> Iterator[Any]:
        """The rows, one row group (a ``pyarrow.Table``) at a time."""
        with self._open() as f:
            for g in range(f.num_row_groups):
                yield f.read_row_group(g)

    def to_table(self) -> Any:
        with self._open() as f:
            return f.read()

    @contextlib.contextmanager
    def _open(self) -> Iterator[Any]:
        import pyarrow.parquet as pq

        f = pq.ParquetFile(str(self.path), memory_map=False)
        try:
            yield f
        finally:
            f.close()


def stage(source: BatchSource, directory: Path) -> StagedTable:
    """Write ``source`` to a Parquet file in ``directory``; return it as a StagedTable."""
    for attempt in range(MAX_PASSES):
        path = directory / f"staged-{attempt}.parquet"
        writer: TableWriter | None = None
        try:
            for batch in source.batches():
                if writer is None:
                    writer = TableWriter(path, batch.schema)
                writer.write(batch)
        except RestartStream:
            if writer is not None:
                writer.abort()
            continue
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        if writer is None:  # pragma: no cover - sources raise EmptySourceError first
            raise IngestError("has no rows", source=source.source)
        writer.close()
        release_memory()
        return StagedTable(path, writer.schema, writer.rows)
    raise _too_many_passes(source)


def collect(source: BatchSource) -> Any:
    """All of ``source`` as one in-memory ``pyarrow.Table``."""
    import pyarrow as pa

    for _attempt in range(MAX_PASSES):
        batches: list[Any] = []
        try:
            batches.extend(source.batches())
        except RestartStream:
            continue
        return pa.Table.from_batches(batches)
    raise _too_many_passes(source)


def _too_many_passes(source: BatchSource) -> IngestError:  # pragma: no cover - a safeguard
    return IngestError(
        f"could not settle the column types after {MAX_PASSES} passes", source=source.source
    )


def write_parquet(table: Any, path: Path) -> None:
    """Write an in-memory canonical table as :func:`stage` would (the same bytes)."""
    writer = TableWriter(path, table.schema)
    try:
        for batch in table.to_batches():
            writer.write(batch)
    except BaseException:
        writer.abort()
        raise
    writer.close()
