"""Feedback: ground-truth labels for earlier predictions, by request id (and row).

Labels arrive late (minutes to weeks after the prediction), sometimes twice, sometimes for
ids no server logged. Each is stored once per (request id, row), and every item gets a
status in the :class:`FeedbackReport`:

==============  =========================================================================
``stored``      a new label for a request the prediction index knows
``unknown``     a new label for a request id not (yet) in the index; it is kept and joins
                the prediction once a server flushes it (the prediction may still be in a
                server's buffer), or never, if the id was wrong
``duplicate``   the same label again: nothing changes
``updated``     a different label for a (request, row) that had one: the new one replaces
                it and ``revisions`` counts the changes
``invalid``     not stored: no request id, a row outside the request, no label...
==============  =========================================================================

``late`` is set on items whose prediction is older than :data:`LATE_AFTER`; late labels
are stored like any other (performance monitoring decides what to do with them).

Items come from JSON (:func:`parse_feedback`: one object, a list, or ``{"feedback": [...]}``)
or from a file (:func:`read_feedback_file`: CSV, Parquet, JSON lines with columns
``request_id``, optional ``row``, ``label``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.echo import echo_text
from loopline.monitor.errors import FeedbackError
from loopline.store.db.types import to_utc

if TYPE_CHECKING:
    import sqlalchemy as sa

    from loopline.monitor.predictions import LoggedRequest
    from loopline.store.db.engine import Database

#: A label for a prediction older than this is reported as late.
LATE_AFTER = timedelta(days=7)
MAX_REQUEST_ID = 64
#: Rows are stored as 64-bit integers.
MAX_ROW = 2**63 - 1
STATUSES = ("stored", "unknown", "duplicate", "updated", "invalid")
#: Columns :meth:`FeedbackStore.labelled_inputs` adds beside the inputs.
LABEL = "__label"
PREDICTED_AT = "__predicted_at"
RECEIVED_AT = "__received_at"
REQUEST_ID = "__request_id"
ROW = "__row"


@dataclass(frozen=True)
class FeedbackItem:
    """One label for row ``row`` of request ``request_id``."""

    request_id: str
    row: int
    label: Any


@dataclass(frozen=True)
class ItemResult:
    request_id: str | None
    row: int | None
    status: str
    late: bool = False
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "request_id": self.request_id,
            "row": self.row,
            "status": self.status,
        }
        if self.late:
            out["late"] = True
        if self.message:
            out["message"] = self.message
        return out


@dataclass
class FeedbackReport:
    """What happened to each item, and the counts by status."""

    items: list[ItemResult] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for item in self.items:
            out[item.status] += 1
        out["late"] = sum(1 for i in self.items if i.late)
        return out

    @property
    def accepted(self) -> int:
        return sum(1 for i in self.items if i.status != "invalid")

    def to_dict(self, *, items: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"received": len(self.items), **self.counts}
        if items:
            out["items"] = [i.to_dict() for i in self.items]
        return out


@dataclass(frozen=True)
class FeedbackRecord:
    """A stored label."""

    request_id: str
    row: int
    label: Any
    model: str | None
    version: int | None
    predicted_at: datetime | None
    received_at: datetime
    updated_at: datetime
    revisions: int
    known: bool
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "row": self.row,
            "label": self.label,
            "model": self.model,
            "version": self.version,
            "predicted_at": None if self.predicted_at is None else self.predicted_at.isoformat(),
            "received_at": self.received_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "revisions": self.revisions,
            "known": self.known,
            "source": self.source,
        }


# -- parsing ------------------------------------------------------------------------------


def parse_feedback(payload: Any) -> tuple[list[FeedbackItem], list[ItemResult]]:
    """Items from JSON, and an ``invalid`` result for each entry that is not usable.

    Accepted shapes: ``{"request_id": ..., "label": ...}`` (row 0, or ``"row": n``),
    ``{"request_id": ..., "labels": [...]}`` (rows 0..n-1), a list of those, or
    ``{"feedback": [...]}``.
    """
    if isinstance(payload, Mapping) and "feedback" in payload and "request_id" not in payload:
        payload = payload["feedback"]
    entries = payload if isinstance(payload, list) else [payload]
    if not entries:
        raise FeedbackError("No feedback items: the list is empty")
    items: list[FeedbackItem] = []
    invalid: list[ItemResult] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            invalid.append(
                ItemResult(None, None, "invalid", message=f"not an object: {_short(entry)}")
            )
            continue
        rid = entry.get("request_id")
        if not isinstance(rid, str) or not rid.strip() or len(rid) > MAX_REQUEST_ID:
            invalid.append(
                ItemResult(
                    None,
                    None,
                    "invalid",
                    message=f"request_id must be a non-empty string of at most "
                    f"{MAX_REQUEST_ID} characters, not {_short(rid)}",
                )
            )
            continue
        if "labels" in entry:
            labels = entry["labels"]
            if not isinstance(labels, list) or not labels:
                invalid.append(
                    ItemResult(rid, None, "invalid", message="labels must be a non-empty list")
                )
                continue
            for row, label in enumerate(labels):
                _add(items, invalid, rid, row, label)
            continue
        if "label" not in entry:
            invalid.append(
                ItemResult(rid, None, "invalid", message="no label (send label or labels)")
            )
            continue
        row = entry.get("row", 0)
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row <= MAX_ROW:
            invalid.append(
                ItemResult(
                    rid,
                    None,
                    "invalid",
                    message=f"row must be an integer from 0 to {MAX_ROW}, not {_short(row)}",
                )
            )
            continue
        _add(items, invalid, rid, row, entry["label"])
    return items, invalid


def _add(
    items: list[FeedbackItem], invalid: list[ItemResult], rid: str, row: int, label: Any
) -> None:
    clean = _label(label)
    if clean is _BAD:
        invalid.append(
            ItemResult(
                rid,
                row,
                "invalid",
                message=f"label must be a string, number or boolean, not {_short(label)}",
            )
        )
        return
    items.append(FeedbackItem(rid, row, clean))


_BAD = object()


def _label(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, str | bytes):
        try:
            value = item()
        except (TypeError, ValueError):
            return _BAD
    if isinstance(value, float) and not math.isfinite(value):
        return _BAD
    if isinstance(value, bool | int | float | str):
        return value
    return _BAD


def _short(value: Any) -> str:
    return echo_text(value)


def read_feedback_file(path: str | Path) -> tuple[list[FeedbackItem], list[ItemResult]]:
    """Items from a CSV, Parquet or JSON-lines file with ``request_id``, ``label`` (and
    optionally ``row``) columns."""
    import pyarrow as pa

    file = Path(path)
    if not file.is_file():
        raise FeedbackError(f"No feedback file at {file}")
    suffix = file.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(file)
        elif suffix in (".jsonl", ".ndjson", ".json"):
            import pyarrow.json as pj

            table = pj.read_json(file)
        else:
            import pyarrow.csv as pcsv

            from loopline.data.csvscan import refuse_unclosed_quotes

            refuse_unclosed_quotes(lambda: file.open("rb"), source=str(file))
            table = pcsv.read_csv(
                file,
                convert_options=pcsv.ConvertOptions(
                    column_types={"request_id": pa.string()}, strings_can_be_null=True
                ),
            )
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise FeedbackError(
            f"Cannot read feedback file {file}: {exc}",
            hint="Expected CSV, Parquet or JSON lines with columns request_id, label (and row)",
        ) from exc
    missing = [c for c in ("request_id", "label") if c not in table.column_names]
    if missing:
        raise FeedbackError(
            f"Feedback file {file} lacks column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}; it has {', '.join(table.column_names)}",
            hint="Name the columns request_id, label (and optionally row)",
        )
    rows = table.to_pylist()
    payload = [{k: v for k, v in r.items() if k in ("request_id", "row", "label")} for r in rows]
    for entry in payload:
        if entry.get("row") is None:
            entry.pop("row", None)
    return parse_feedback(payload) if payload else ([], [])


# -- storing ------------------------------------------------------------------------------


class FeedbackStore:
    """Labels in ``ll_feedback``, matched against the prediction index on arrival.

    ``pending`` (optional) tells whether a request id is still in this process's log
    buffer: such ids are known even before their index entry is written.
    """

    def __init__(self, db: Database, *, pending: Callable[[str], bool] | None = None) -> None:
        self.db = db
        self.pending = pending

    def record(
        self,
        items: Sequence[FeedbackItem],
        *,
        source: str = "api",
        invalid: Sequence[ItemResult] = (),
        now: datetime | None = None,
    ) -> FeedbackReport:
        """Store ``items`` and report what happened to each (and to ``invalid`` ones)."""
        from loopline.monitor.predictions import PredictionIndex

        report = FeedbackReport(items=list(invalid))
        if not items:
            return report
        known = PredictionIndex(self.db).lookup(i.request_id for i in items)
        checked: list[FeedbackItem] = []
        for item in items:
            logged = known.get(item.request_id)
            if logged is not None and item.row >= logged.rows:
                report.items.append(
                    ItemResult(
                        item.request_id,
                        item.row,
                        "invalid",
                        message=f"request {item.request_id} has {logged.rows} row"
                        f"{'s' if logged.rows != 1 else ''}; there is no row {item.row}",
                    )
                )
            else:
                checked.append(item)
        when = now or datetime.now(UTC)
        results = self._write(checked, known, source, when)
        report.items.extend(results)
        return report

    def _write(
        self,
        items: Sequence[FeedbackItem],
        known: Mapping[str, LoggedRequest],
        source: str,
        now: datetime,
    ) -> list[ItemResult]:

        if not items:
            return []
        # Last label wins within one call, like later calls.
        latest: dict[tuple[str, int], FeedbackItem] = {}
        for item in items:
            latest[(item.request_id, item.row)] = item

        def fn(conn: sa.Connection) -> list[ItemResult]:
            return self._apply(conn, list(latest.values()), known, source, now)

        # Another server may store one of these ids at the same moment: redo then.
        results = self.db.run_write(fn, conflicts=20)
        # Duplicates inside this call count as duplicates of the kept label.
        repeated = len(items) - len(latest)
        extra = [ItemResult(i.request_id, i.row, "duplicate") for i in _repeats(items)][:repeated]
        return results + extra

    def _apply(
        self,
        conn: sa.Connection,
        items: list[FeedbackItem],
        known: Mapping[str, LoggedRequest],
        source: str,
        now: datetime,
    ) -> list[ItemResult]:
        import sqlalchemy as sa

        from loopline.monitor.tables import feedback as t

        existing: dict[tuple[str, int], Any] = {}
        ids = sorted({i.request_id for i in items})
        for k in range(0, len(ids), 500):
            query = sa.select(t.c.request_id, t.c.row_index, t.c.label, t.c.revisions).where(
                t.c.request_id.in_(ids[k : k + 500])
            )
            for row in conn.execute(query):
                existing[(row.request_id, int(row.row_index))] = row
        inserts: list[dict[str, Any]] = []
        results: list[ItemResult] = []
        for item in items:
            logged = known.get(item.request_id)
            is_known = logged is not None or bool(self.pending and self.pending(item.request_id))
            late = bool(logged is not None and now - logged.at > LATE_AFTER)
            old = existing.get((item.request_id, item.row))
            if old is None:
                inserts.append(
                    {
                        "request_id": item.request_id,
                        "row_index": item.row,
                        "label": item.label,
                        "model": None if logged is None else logged.model,
                        "version": None if logged is None else logged.version,
                        "predicted_at": None if logged is None else logged.at,
                        "received_at": now,
                        "updated_at": now,
                        "revisions": 0,
                        "known": is_known,
                        "source": source[:255],
                    }
                )
                status = "stored" if is_known else "unknown"
                results.append(ItemResult(item.request_id, item.row, status, late))
            elif _same(old.label, item.label):
                results.append(ItemResult(item.request_id, item.row, "duplicate", late))
            else:
                conn.execute(
                    t.update()
                    .where(t.c.request_id == item.request_id, t.c.row_index == item.row)
                    .values(
                        label=item.label,
                        updated_at=now,
                        revisions=int(old.revisions) + 1,
                        source=source[:255],
                    )
                )
                results.append(
                    ItemResult(
                        item.request_id,
                        item.row,
                        "updated",
                        late,
                        message=f"label changed from {old.label!r} to {item.label!r}",
                    )
                )
        if inserts:
            conn.execute(t.insert(), inserts)
        return results

    def labels(
        self,
        *,
        request_ids: Iterable[str] | None = None,
        model: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[FeedbackRecord]:
        """Stored labels, oldest first, filtered by request ids, model or receipt time."""
        import sqlalchemy as sa

        from loopline.monitor.tables import feedback as t

        query = sa.select(t).order_by(t.c.received_at, t.c.request_id, t.c.row_index)
        if request_ids is not None:
            query = query.where(t.c.request_id.in_(sorted(set(request_ids))))
        if model is not None:
            query = query.where(t.c.model == model)
        if since is not None:
            query = query.where(t.c.received_at >= since)
        if limit is not None:
            query = query.limit(limit)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [
            FeedbackRecord(
                request_id=r.request_id,
                row=int(r.row_index),
                label=r.label,
                model=r.model,
                version=r.version,
                predicted_at=None if r.predicted_at is None else to_utc(r.predicted_at),
                received_at=to_utc(r.received_at),
                updated_at=to_utc(r.updated_at),
                revisions=int(r.revisions),
                known=bool(r.known),
                source=r.source,
            )
            for r in rows
        ]

    def joined(self, objects: Any, model: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """The newest ``limit`` labels of ``model``, each with the prediction it is for
        (read from the log files the prediction index names; only those files)."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        import sqlalchemy as sa

        from loopline.monitor.predictions import OUTPUT_PREFIX, PredictionIndex
        from loopline.monitor.tables import feedback as t

        query = (
            sa.select(t)
            .where(t.c.model == model)
            .order_by(t.c.received_at.desc(), t.c.request_id, t.c.row_index)
            .limit(limit)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        logged = PredictionIndex(self.db).lookup(r.request_id for r in rows)
        predictions: dict[tuple[str, int], Any] = {}
        for key in sorted({entry.object_key for entry in logged.values()}):
            try:
                table = pq.read_table(
                    pa.BufferReader(objects.get(key)),
                    columns=["request_id", "row", OUTPUT_PREFIX + "prediction"],
                )
            except Exception:  # a log file gone or unreadable: the label is still listed
                continue
            for rid, row, pred in zip(
                table.column("request_id").to_pylist(),
                table.column("row").to_pylist(),
                table.column(OUTPUT_PREFIX + "prediction").to_pylist(),
                strict=True,
            ):
                predictions[(rid, int(row))] = pred
        out = []
        for r in rows:
            pred = predictions.get((r.request_id, int(r.row_index)))
            out.append(
                {
                    "request_id": r.request_id,
                    "row": int(r.row_index),
                    "label": r.label,
                    "version": r.version,
                    "prediction": pred,
                    "correct": None if pred is None else str(pred) == str(r.label),
                    "received_at": to_utc(r.received_at).isoformat(),
                    "source": r.source,
                }
            )
        return out

    def labelled_inputs(
        self, objects: Any, model: str, *, since: datetime | None = None
    ) -> tuple[Any, int]:
        """The labels of ``model`` received since ``since``, each joined to the inputs
        the model was asked about (read from the log files the index names, only those).

        Returns (a pandas DataFrame of the input columns plus ``LABEL``,
        ``PREDICTED_AT``, ``RECEIVED_AT``, ``REQUEST_ID`` and ``ROW``, oldest prediction
        first; how many labels had no logged inputs to join, such as a log file deleted
        by retention). Shadow answers are never joined: a label is for what the caller got.
        """
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq
        import sqlalchemy as sa

        from loopline.monitor.predictions import INPUT_PREFIX, PredictionIndex
        from loopline.monitor.tables import feedback as t

        query = sa.select(t.c.request_id, t.c.row_index, t.c.label, t.c.received_at).where(
            t.c.model == model
        )
        if since is not None:
            query = query.where(t.c.received_at >= since)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return pd.DataFrame(), 0
        logged = PredictionIndex(self.db).lookup(r.request_id for r in rows)
        wanted: dict[str, set[tuple[str, int]]] = {}
        for r in rows:
            entry = logged.get(r.request_id)
            if entry is not None:
                wanted.setdefault(entry.object_key, set()).add((r.request_id, int(r.row_index)))
        inputs: dict[tuple[str, int], dict[str, Any]] = {}
        for key in sorted(wanted):
            try:
                table = pq.read_table(pa.BufferReader(objects.get(key)))
            except Exception:  # gone or unreadable: those labels are counted as unjoined
                continue
            names = [c for c in table.column_names if c.startswith(INPUT_PREFIX)]
            ids = table.column("request_id").to_pylist()
            positions = table.column("row").to_pylist()
            ts = table.column("ts").to_pylist()
            keep = [
                i
                for i, (rid, row) in enumerate(zip(ids, positions, strict=True))
                if (rid, int(row)) in wanted[key]
            ]
            if not keep:
                continue
            part = table.take(pa.array(keep, pa.int64()))
            columns = {c[len(INPUT_PREFIX) :]: part.column(c).to_pylist() for c in names}
            for j, i in enumerate(keep):
                record = {name: values[j] for name, values in columns.items()}
                record[PREDICTED_AT] = ts[i]
                inputs[(ids[i], int(positions[i]))] = record
        records = []
        for r in rows:
            found = inputs.get((r.request_id, int(r.row_index)))
            if found is None:
                continue
            records.append(
                {
                    **found,
                    LABEL: r.label,
                    RECEIVED_AT: to_utc(r.received_at),
                    REQUEST_ID: r.request_id,
                    ROW: int(r.row_index),
                }
            )
        unjoined = len(rows) - len(records)
        frame = pd.DataFrame.from_records(records)
        if len(frame):
            frame = frame.sort_values([PREDICTED_AT, REQUEST_ID, ROW], kind="stable")
            frame = frame.reset_index(drop=True)
        return frame, unjoined


def _repeats(items: Sequence[FeedbackItem]) -> Iterable[FeedbackItem]:
    seen: set[tuple[str, int]] = set()
    for item in items:
        key = (item.request_id, item.row)
        if key in seen:
            yield item
        seen.add(key)


def _same(a: Any, b: Any) -> bool:
    if type(a) is type(b):
        return bool(a == b)
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return isinstance(a, numbers) and isinstance(b, numbers) and a == b


__all__ = [
    "LATE_AFTER",
    "FeedbackError",
    "FeedbackItem",
    "FeedbackRecord",
    "FeedbackReport",
    "FeedbackStore",
    "ItemResult",
    "parse_feedback",
    "read_feedback_file",
]
