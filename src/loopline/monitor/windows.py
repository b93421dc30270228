"""Windows of the prediction log: a time range or the last N rows, streamed in batches.

The log is Parquet under ``predictions/model=<m>/date=<d>/hour=<h>/`` (hive partitions).
A window lists only the hours it overlaps, then scans those files with
``pyarrow.dataset`` over the store's filesystem (a local folder, or S3 through the same
s3fs client the store uses): the schema is unified over the files (versions may have
different inputs: a column a file lacks is null there), only the columns asked for are
read, row groups outside the time range are skipped by their statistics, and record
batches stream, so memory follows the batch size, not the window.

Times are UTC. ``--window 1h`` is the hour up to now; ``--since``/``--until`` take ISO 8601
times or offsets from now (``-2h``, ``-30m``); ``--last N`` the newest N rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from loopline.monitor.errors import MonitorArgumentError
from loopline.monitor.predictions import PREFIX, prediction_files
from loopline.store.db.types import to_utc

if TYPE_CHECKING:
    from loopline.store.objects.base import ObjectStore

BATCH_ROWS = 65_536
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.I)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, argument: str = "window") -> timedelta:
    """``90s``, ``15m``, ``1h``, ``2d``, ``1w`` as a timedelta."""
    match = _DURATION.match(str(text))
    if not match:
        raise MonitorArgumentError(
            f"{argument} {text!r} is not a duration; expected a number and a unit, like "
            "90s, 15m, 1h, 2d or 1w",
            argument=argument,
            value=text,
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds <= 0:
        raise MonitorArgumentError(f"{argument} must be longer than 0 s", argument=argument)
    return timedelta(seconds=seconds)


def parse_time(text: str, *, now: datetime, argument: str) -> datetime:
    """An ISO 8601 time (UTC unless it says), ``now``, or an offset from now (``-2h``)."""
    value = str(text).strip()
    if value.lower() == "now":
        return now
    if value.startswith("-"):
        return now - parse_duration(value[1:], argument=argument)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MonitorArgumentError(
            f"{argument} {text!r} is not a time; expected ISO 8601 (2026-12-01T10:00), "
            "'now' or an offset like -2h",
            argument=argument,
            value=text,
        ) from None
    return to_utc(moment)


@dataclass(frozen=True)
class Window:
    """What part of the log to read: [start, end) and/or the last ``rows`` rows."""

    start: datetime | None = None
    end: datetime | None = None
    rows: int | None = None

    @property
    def label(self) -> str:
        if self.rows is not None and self.start is None:
            return f"last {self.rows:,} rows"
        lo = "..." if self.start is None else self.start.strftime("%Y-%m-%d %H:%M:%S")
        hi = "now" if self.end is None else self.end.strftime("%Y-%m-%d %H:%M:%S")
        return f"{lo} to {hi} UTC"

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": None if self.start is None else self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "rows": self.rows,
        }


def make_window(
    *,
    window: str | None = None,
    since: str | None = None,
    until: str | None = None,
    last: int | None = None,
    now: datetime | None = None,
    align: bool = False,
) -> Window:
    """A window from command-line style options. ``align`` ends a ``window`` on a
    multiple of its length (the last complete one), as scheduled runs do, so running the
    same window twice gives the same bounds."""
    moment = to_utc(now) if now is not None else datetime.now(UTC)
    if last is not None and (isinstance(last, bool) or last < 1):
        raise MonitorArgumentError(f"--last must be >= 1 row, not {last}", argument="last")
    if window is not None and (since is not None or until is not None):
        raise MonitorArgumentError(
            "give --window, or --since/--until, not both", argument="window", value=window
        )
    end = parse_time(until, now=moment, argument="until") if until is not None else None
    start = parse_time(since, now=moment, argument="since") if since is not None else None
    if window is not None:
        length = parse_duration(window)
        end = moment
        if align:
            seconds = length.total_seconds()
            end = datetime.fromtimestamp(moment.timestamp() // seconds * seconds, UTC)
        start = end - length
    if start is not None and end is not None and start >= end:
        raise MonitorArgumentError(
            f"the window starts at {start.isoformat()}, after it ends ({end.isoformat()})",
            argument="since",
        )
    if start is None and end is None and last is None:
        start, end = moment - timedelta(hours=1), moment
    return Window(start, end, last)


class LogScan:
    """The logged rows of one model in a window, as record batches.

    ``columns`` are the log's columns to read (``request_id``, ``input.age`` ...); the
    partition and metadata columns ``version``, ``role`` and ``ts`` are always read.
    """

    def __init__(
        self,
        objects: ObjectStore,
        model: str,
        window: Window,
        columns: Sequence[str] | None = None,
        *,
        batch_rows: int = BATCH_ROWS,
        prefix: str = PREFIX,
        keys: Sequence[str] | None = None,
    ) -> None:
        self.objects = objects
        self.model = model
        self.window = window
        self.columns = list(columns) if columns is not None else None
        self.batch_rows = batch_rows
        self.prefix = prefix.strip("/")
        #: The log files read, in order (given: a shard of a window's files).
        self.keys = (
            list(keys)
            if keys is not None
            else prediction_files(
                objects, model=model, start=window.start, end=window.end, prefix=self.prefix
            )
        )
        self._dataset: Any = None

    @property
    def files(self) -> int:
        return len(self.keys)

    def schema(self) -> Any:
        """The unified schema of the window's files (None when it has no file)."""
        dataset = self._open()
        return None if dataset is None else dataset.schema

    def _open(self) -> Any:
        if self._dataset is not None or not self.keys:
            return self._dataset
        import pyarrow.dataset as ds

        located = getattr(self.objects, "arrow_filesystem", None)
        fmt = ds.ParquetFileFormat()
        if located is not None:
            fs, root = located()
            paths = [f"{root}/{k}" for k in self.keys]
            factory = ds.FileSystemDatasetFactory(
                fs,
                paths,
                fmt,
                ds.FileSystemFactoryOptions(
                    partition_base_dir=f"{root}/{self.prefix}",
                    partitioning=ds.HivePartitioning.discover(infer_dictionary=False),
                ),
            )
            schema = factory.inspect(promote_options="permissive")
            self._dataset = factory.finish(schema)
        else:
            # A store with no filesystem (the in-memory one): the same scan over buffers.
            import pyarrow as pa
            import pyarrow.parquet as pq

            tables = [pq.read_table(pa.BufferReader(self.objects.get(k))) for k in self.keys]
            self._dataset = ds.dataset(pa.concat_tables(tables, promote_options="permissive"))
        return self._dataset

    def _filter(self) -> Any:
        import pyarrow as pa
        import pyarrow.dataset as ds

        expr = None
        ts = ds.field("ts")
        unit = pa.timestamp("us", "UTC")
        if self.window.start is not None:
            expr = ts >= pa.scalar(self.window.start, unit)
        if self.window.end is not None:
            upper = ts < pa.scalar(self.window.end, unit)
            expr = upper if expr is None else expr & upper
        return expr

    def _wanted(self, schema: Any) -> list[str]:
        names = set(schema.names)
        base = [c for c in ("request_id", "row", "ts", "version", "role") if c in names]
        extra = [c for c in (self.columns or schema.names) if c in names and c not in base]
        return [*base, *[c for c in extra if c not in ("model", "date", "hour")]]

    def batches(self) -> Iterator[Any]:
        """Record batches of the window (for ``rows``, only the newest rows)."""
        dataset = self._open()
        if dataset is None:
            return
        columns = self._wanted(dataset.schema)
        if self.window.rows is None:
            yield from dataset.to_batches(
                columns=columns, filter=self._filter(), batch_size=self.batch_rows
            )
            return
        yield from self._last_rows(dataset, columns, self.window.rows)

    def _last_rows(self, dataset: Any, columns: list[str], rows: int) -> Iterator[Any]:
        """The newest ``rows`` rows: files are read newest first until enough are held,
        then the kept ones stream oldest first (a window of N rows holds N rows)."""
        import pyarrow.compute as pc

        fragments = sorted(dataset.get_fragments(filter=self._filter()), key=lambda f: f.path)
        kept: list[Any] = []
        held = 0
        for fragment in reversed(fragments):
            table = fragment.to_table(columns=columns, filter=self._filter(), schema=dataset.schema)
            if not table.num_rows:
                continue
            table = table.take(pc.sort_indices(table["ts"]))
            kept.append(table)
            held += table.num_rows
            if held >= rows:
                break
        surplus = held - rows
        for table in reversed(kept):
            if surplus > 0:
                cut = min(surplus, table.num_rows)
                table = table.slice(cut)
                surplus -= cut
            yield from table.to_batches(max_chunksize=self.batch_rows)
