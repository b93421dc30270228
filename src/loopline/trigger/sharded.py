"""Batch transform over an executor that runs work in other processes (Ray).

The input's chunks (the same ``chunk_rows`` boundaries as a local run) are split into
contiguous shards, about two per worker; each shard is one unit of work that opens the
stores from the settings, loads the model version the driver resolved (once per worker
process), reads its rows of the Parquet input itself, scores them chunk by chunk exactly
as a local run does (same chunk numbers, so the same request ids and row numbers), logs
them to the prediction log with a writer of its own, and puts its scored rows in the
artifact store as one Parquet part (``tmp/batch/<run>/part-<n>.parquet``). The driver
then copies the parts, in shard order, into the output (written whole or not at all, as
a local run) and deletes them: the output holds the same rows, in the same order, with
the same values as a local run's.

The input must be Parquet (a CSV file's pass-through column types are settled by its
first chunk, which one shard alone sees) and reachable from every worker: a path on a
cluster of this machine only, else an ``s3://`` URL. A cluster spanning other machines
also needs shared stores (PostgreSQL and S3), as :func:`~loopline.execute.open_executor`
requires.
"""

from __future__ import annotations

import itertools
import math
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopline.trigger.batch import (
    INVALID_SUFFIX,
    BatchResult,
    ChunkScorer,
    ProblemSink,
    Progress,
    Source,
    TableSink,
    Target,
    _check_names,
    open_log_writer,
    output_format,
)
from loopline.trigger.errors import BatchInputError

if TYPE_CHECKING:
    from loopline.config import Settings
    from loopline.execute import Executor
    from loopline.registry import LoadedModel
    from loopline.store.stores import Stores

#: Where shards put their scored rows in the artifact store until the driver copies them.
PARTS_PREFIX = "tmp/batch"
#: Shards per unit of parallelism: enough to even out uneven shards, few enough that each
#: one's start (opening the stores, loading the model) stays a small share.
SHARDS_PER_WORKER = 2


@dataclass(frozen=True)
class Shard:
    """Rows ``[first_row, first_row + rows)`` of the input: chunks ``first_chunk``..."""

    settings: Settings
    model_ref: str
    native: bool
    source: str
    first_chunk: int
    first_row: int
    rows: int
    chunk_rows: int
    run_id: str
    log: bool
    part_key: str


@dataclass
class ShardResult:
    """What a shard did (its scored rows are in the artifact store under ``part_key``)."""

    part_key: str | None
    rows: int
    scored: int
    chunks: int
    problems: list[Any] = field(default_factory=list)
    logged_rows: int = 0
    log_dropped_rows: int = 0
    #: The process that scored it (a Ray worker's, not the driver's).
    pid: int = 0
    path: str = "native"
    #: Seconds the shard took in its worker (opening the stores and the model included).
    seconds: float = 0.0


def predict_sharded(
    stores: Stores,
    executor: Executor,
    model_ref: str,
    source: Source,
    target: Target,
    *,
    chunk_rows: int,
    progress: Progress | None,
    log: bool,
    native: bool,
) -> BatchResult:
    """Score ``source`` into ``target`` in shards run on ``executor`` (see the module)."""
    import pyarrow as pa

    from loopline.registry import Registry

    location = _reachable(stores, executor, source)
    out_format = output_format(target)
    started = time.perf_counter()
    mv = Registry(stores).resolve(model_ref)
    total, schema = _parquet_shape(source)
    _check_names(schema.names, log, source)
    run_id = secrets.token_hex(6)
    n_chunks = math.ceil(total / chunk_rows)
    n_shards = max(1, min(n_chunks, executor.parallelism * SHARDS_PER_WORKER))
    bounds = [round(i * n_chunks / n_shards) for i in range(n_shards + 1)]
    shards = [
        Shard(
            settings=stores.settings,
            model_ref=mv.ref,
            native=native,
            source=location,
            first_chunk=a,
            first_row=a * chunk_rows,
            rows=min(b * chunk_rows, total) - a * chunk_rows,
            chunk_rows=chunk_rows,
            run_id=run_id,
            log=log,
            part_key=f"{PARTS_PREFIX}/{run_id}/part-{i:05d}.parquet",
        )
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
        if b > a
    ]
    if progress is not None:
        progress(0, total)
    sink = TableSink(target, out_format)
    side = ProblemSink(target.sibling(INVALID_SUFFIX))
    futures = [executor.submit(score_shard, shard) for shard in shards]
    results: list[ShardResult] = []
    written = _Rows(total, progress)
    merging = 0.0
    try:
        for future in futures:  # in shard order: the output keeps the input's order
            result = future.result()
            results.append(result)
            side.write(result.problems)
            if result.part_key is not None:
                t0 = time.perf_counter()
                _copy_part(stores, result.part_key, sink)
                merging += time.perf_counter() - t0
            written.add(result.rows)
        empty = pa.schema([*list(schema), pa.field("prediction", pa.string())])
        invalid_name = side.commit()
        sink.commit(empty)
    except BaseException:
        for future in futures:
            future.cancel()
        sink.abort()
        side.abort()
        raise
    finally:
        for shard in shards:
            try:
                stores.objects.delete(shard.part_key)
            except Exception:  # a part left behind is swept with tmp/ by store gc
                pass
    return BatchResult(
        model=mv.name,
        version=mv.version,
        input=source.name,
        output=target.name,
        rows_total=sum(r.rows for r in results),
        rows_scored=sum(r.scored for r in results),
        rows_invalid=len(side.rows),
        invalid_path=invalid_name,
        chunks=sum(r.chunks for r in results),
        seconds=time.perf_counter() - started,
        path=results[0].path if results else "native",
        logged_rows=sum(r.logged_rows for r in results),
        log_dropped_rows=sum(r.log_dropped_rows for r in results),
        workers=sorted({r.pid for r in results}),
        merge_seconds=merging,
        worker_seconds=sum(r.seconds for r in results),
    )


class _Rows:
    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self.progress = progress

    def add(self, rows: int) -> None:
        self.done += rows
        if self.progress is not None:
            self.progress(self.done, self.total)


def _reachable(stores: Stores, executor: Executor, source: Source) -> str:
    """Where workers read the input: refuses a CSV input, and local files or stores on a
    cluster that spans other machines."""
    if source.format != "parquet":
        raise BatchInputError(
            source.name,
            "only a Parquet input can be split over the executor's workers (a CSV file's "
            "column types are settled by its first chunk)",
            hint="Convert it to Parquet, or score it here with --executor local",
        )
    local = "://" not in source.name or source.name.startswith("file://")
    if getattr(executor, "single_machine", True):
        return os.path.abspath(source.name) if local else source.name
    settings = stores.settings
    problems = []
    if local:
        problems.append(f"the input {source.name}")
    if settings.metadata_url.startswith("sqlite"):
        problems.append(f"metadata_url ({settings.metadata_url})")
    if "://" not in settings.artifacts_url:
        problems.append(f"artifacts_url ({settings.artifacts_url})")
    if problems:
        raise BatchInputError(
            source.name,
            "the Ray cluster spans other machines, which cannot reach this machine's "
            + " and ".join(problems),
            hint="Put the input on S3, and point metadata_url at PostgreSQL and artifacts_url "
            "at S3 (docs/deploy.md)",
        )
    return source.name


def _parquet_shape(source: Source) -> tuple[int, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with source.opener() as stream:
        try:
            reader = pq.ParquetFile(stream)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BatchInputError(source.name, f"not a readable Parquet file ({exc})") from exc
        return int(reader.metadata.num_rows), reader.schema_arrow


def _copy_part(stores: Stores, key: str, sink: TableSink) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with stores.objects.open(key) as stream:
        reader = pq.ParquetFile(stream, pre_buffer=False)
        for i in range(reader.metadata.num_row_groups):
            sink.write(pa.Table.from_batches(reader.read_row_group(i).to_batches()))


# -- in the worker --------------------------------------------------------------------------

#: Models loaded in this worker process, by (version ref, native): a worker scoring
#: several shards of one job loads the model once.
_MODELS: dict[tuple[str, bool], LoadedModel] = {}


def score_shard(shard: Shard) -> ShardResult:
    """Score one shard in this process (a unit of work of the executor)."""
    started = time.perf_counter()
    from loopline.store.stores import Stores
    from loopline.trigger.scoring import load_for_batch

    with Stores.open(shard.settings) as stores:
        key = (shard.model_ref, shard.native)
        loaded = _MODELS.get(key)
        if loaded is None:
            if len(_MODELS) >= 4:
                _MODELS.clear()
            loaded = _MODELS[key] = load_for_batch(stores, shard.model_ref, native=shard.native)
        writer = open_log_writer(stores, shard.chunk_rows) if shard.log else None
        scorer = ChunkScorer(
            loaded,
            chunk_rows=shard.chunk_rows,
            log_writer=writer,
            native=shard.native,
            run_id=shard.run_id,
        )
        source = Source.from_location(shard.source, stores.settings.s3)
        sink = TableSink(Target.in_store(stores.objects, shard.part_key), "parquet")
        problems: list[Any] = []
        chunks = rows = scored = 0
        try:
            for i, table in enumerate(_rows_of(source, shard)):
                result = scorer.score(
                    table,
                    first_row=shard.first_row + i * shard.chunk_rows,
                    text=False,
                    chunk=shard.first_chunk + i,
                )
                problems.extend(result.problems)
                if result.table is not None:
                    sink.write(result.table)
                scorer.log(result)
                chunks += 1
                rows += result.n_rows
                scored += result.n_scored
            has_rows = sink.schema is not None
            if has_rows:
                sink.commit(None)
            else:
                sink.abort()
        except BaseException:
            sink.abort()
            raise
        finally:
            if writer is not None:
                writer.close()
        return ShardResult(
            part_key=shard.part_key if has_rows else None,
            rows=rows,
            scored=scored,
            chunks=chunks,
            problems=problems,
            logged_rows=writer.stats.written_rows if writer is not None else 0,
            log_dropped_rows=(
                writer.stats.dropped_rows + writer.stats.buffered_rows if writer else 0
            ),
            pid=os.getpid(),
            path=scorer.path,
            seconds=time.perf_counter() - started,
        )


def _rows_of(source: Source, shard: Shard) -> Any:
    """The shard's rows of a Parquet input, as tables of ``chunk_rows`` rows (the local
    run's chunks: the shard starts on a chunk boundary)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from loopline.trigger.batch import _rechunk

    stream = source.opener()
    try:
        reader = pq.ParquetFile(stream, pre_buffer=False)
        meta = reader.metadata
        start, end = shard.first_row, shard.first_row + shard.rows
        groups: list[int] = []
        first_group_row = offset = 0
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if offset + n > start and offset < end:
                if not groups:
                    first_group_row = offset
                groups.append(g)
            offset += n
        skip = start - first_group_row
        left = shard.rows

        def batches() -> Any:
            nonlocal skip, left
            for batch in reader.iter_batches(batch_size=shard.chunk_rows, row_groups=groups):
                if skip >= batch.num_rows:
                    skip -= batch.num_rows
                    continue
                if skip:
                    batch = batch.slice(skip)
                    skip = 0
                if batch.num_rows > left:
                    batch = batch.slice(0, left)
                left -= batch.num_rows
                if batch.num_rows:
                    yield batch
                if left <= 0:
                    return

        try:
            yield from _rechunk(batches(), shard.chunk_rows)
        except (pa.ArrowInvalid, OSError) as exc:
            raise BatchInputError(source.name, f"unreadable Parquet data ({exc})") from exc
    finally:
        stream.close()
