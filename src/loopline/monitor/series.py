"""The monitor's time series in the metadata database: written per run, read by windows.

A run's points replace whatever an earlier run stored for the same (model, version, role,
window): one delete and one bulk insert in a transaction, so a window computed twice (or
again after labels arrived) has one row per metric and feature, never two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopline.monitor.tables import monitor_runs, series
from loopline.store.db import dialects
from loopline.store.db.types import to_utc

if TYPE_CHECKING:
    from loopline.monitor.runner import MonitorReport
    from loopline.store.stores import Stores

_COLUMNS = (
    "model",
    "version",
    "role",
    "window_start",
    "window_end",
    "metric",
    "feature",
    "value",
    "threshold",
    "status",
    "rows",
    "run_id",
    "computed_at",
)


@dataclass(frozen=True)
class Point:
    """One stored value of the series."""

    model: str
    version: int
    role: str
    window_start: datetime
    window_end: datetime
    metric: str
    feature: str
    value: float | None
    threshold: float | None
    status: str
    rows: int
    run_id: str
    computed_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "role": self.role,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "metric": self.metric,
            "feature": self.feature,
            "value": self.value,
            "threshold": self.threshold,
            "status": self.status,
            "rows": self.rows,
            "run_id": self.run_id,
            "computed_at": self.computed_at.isoformat(),
        }


def store_report(stores: Stores, report: MonitorReport, started_at: datetime) -> None:
    """Write the run and its points (replacing an earlier run's points of the same windows)."""
    window = report.window
    start = window.start or started_at
    end = window.end or datetime.now(UTC)
    now = datetime.now(UTC)
    storage = "%Y-%m-%d %H:%M:%S.%f"

    def stamp(moment: datetime, conn: sa.Connection) -> Any:
        # Bulk inserts bypass column types: give the driver what UTCDateTime would.
        if conn.dialect.name == "sqlite":
            return moment.astimezone(UTC).strftime(storage)
        return moment.astimezone(UTC)

    def fn(conn: sa.Connection) -> None:
        for group in report.groups:
            conn.execute(
                series.delete().where(
                    series.c.model == report.model,
                    series.c.version == group.version,
                    series.c.role == group.role,
                    series.c.window_start == start,
                    series.c.window_end == end,
                )
            )
        rows = [
            (
                report.model,
                p.version,
                p.role,
                stamp(start, conn),
                stamp(end, conn),
                p.metric,
                p.feature,
                p.value,
                p.threshold,
                p.status,
                p.rows,
                report.run_id,
                stamp(now, conn),
            )
            for group in report.groups
            for p in group.points
        ]
        if rows:
            dialects.insert_many(conn, series, _COLUMNS, rows)
        conn.execute(
            monitor_runs.insert().values(
                id=report.run_id,
                model=report.model,
                ref=report.target,
                window_start=start,
                window_end=end,
                started_at=started_at,
                ended_at=now,
                status=report.status,
                rows=report.rows,
                summary={
                    "alerts": report.alerts,
                    "files": report.files,
                    "seconds": round(report.seconds, 3),
                    "groups": [
                        {
                            "version": g.version,
                            "role": g.role,
                            "status": g.status,
                            "rows": g.rows,
                            "drift_share": g.drift_share,
                            "anomalies": None if g.anomaly is None else g.anomaly["top"],
                        }
                        for g in report.groups
                    ],
                },
            )
        )

    stores.db.run_write(fn, conflicts=5)


def read_series(
    stores: Stores,
    model: str,
    *,
    metric: str | None = None,
    feature: str | None = None,
    version: int | None = None,
    role: str | None = None,
    since: datetime | None = None,
    last: int | None = None,
) -> list[Point]:
    """Stored points of ``model``, oldest window first. ``metric`` may end with ``*``
    (a prefix: ``feature_drift.*``); ``last`` keeps the newest N windows."""
    query = sa.select(series).where(series.c.model == model)
    if metric:
        if metric.endswith("*"):
            query = query.where(series.c.metric.startswith(metric[:-1], autoescape=True))
        else:
            query = query.where(series.c.metric == metric)
    if feature is not None:
        query = query.where(series.c.feature == feature)
    if version is not None:
        query = query.where(series.c.version == version)
    if role is not None:
        query = query.where(series.c.role == role)
    if since is not None:
        query = query.where(series.c.window_end > since)
    with stores.db.read() as conn:
        if last is not None:
            ends = (
                sa.select(series.c.window_end)
                .where(series.c.model == model)
                .distinct()
                .order_by(series.c.window_end.desc())
                .limit(last)
                .subquery()
            )
            query = query.where(series.c.window_end.in_(sa.select(ends.c.window_end)))
        rows = conn.execute(
            query.order_by(series.c.window_end, series.c.version, series.c.metric, series.c.feature)
        ).all()
    return [_point(r) for r in rows]


def latest_values(stores: Stores, model: str, metrics: Sequence[str] | None = None) -> list[Point]:
    """The newest point of each (version, role, metric, feature) of ``model``."""
    latest = (
        sa.select(
            series.c.version,
            series.c.role,
            series.c.metric,
            series.c.feature,
            sa.func.max(series.c.window_end).label("window_end"),
        )
        .where(series.c.model == model)
        .group_by(series.c.version, series.c.role, series.c.metric, series.c.feature)
        .subquery()
    )
    query = (
        sa.select(series)
        .join(
            latest,
            sa.and_(
                series.c.version == latest.c.version,
                series.c.role == latest.c.role,
                series.c.metric == latest.c.metric,
                series.c.feature == latest.c.feature,
                series.c.window_end == latest.c.window_end,
            ),
        )
        .where(series.c.model == model)
    )
    if metrics:
        query = query.where(series.c.metric.in_(list(metrics)))
    with stores.db.read() as conn:
        return [_point(r) for r in conn.execute(query)]


def runs(stores: Stores, model: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest monitoring runs (of ``model``), newest first."""
    query = sa.select(monitor_runs).order_by(monitor_runs.c.started_at.desc()).limit(limit)
    if model is not None:
        query = query.where(monitor_runs.c.model == model)
    with stores.db.read() as conn:
        rows = conn.execute(query).all()
    return [
        {
            "id": r.id,
            "model": r.model,
            "ref": r.ref,
            "window_start": None if r.window_start is None else r.window_start.isoformat(),
            "window_end": None if r.window_end is None else r.window_end.isoformat(),
            "started_at": r.started_at.isoformat(),
            "status": r.status,
            "rows": r.rows,
            "summary": r.summary,
        }
        for r in rows
    ]


def monitored_models(stores: Stores) -> list[dict[str, Any]]:
    """Every model with stored windows: its name, how many windows, the newest one's end
    and status (the newest monitoring run's), by name."""
    newest = (
        sa.select(monitor_runs.c.model, sa.func.max(monitor_runs.c.started_at).label("at"))
        .group_by(monitor_runs.c.model)
        .subquery()
    )
    counts = (
        sa.select(
            series.c.model,
            sa.func.count(sa.distinct(series.c.window_end)).label("windows"),
            sa.func.max(series.c.window_end).label("last_end"),
        )
        .group_by(series.c.model)
        .subquery()
    )
    query = (
        sa.select(counts.c.model, counts.c.windows, counts.c.last_end, monitor_runs.c.status)
        .select_from(
            counts.outerjoin(newest, newest.c.model == counts.c.model).outerjoin(
                monitor_runs,
                sa.and_(
                    monitor_runs.c.model == newest.c.model,
                    monitor_runs.c.started_at == newest.c.at,
                ),
            )
        )
        .order_by(counts.c.model)
    )
    with stores.db.read() as conn:
        rows = conn.execute(query).all()
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out.setdefault(
            r.model,
            {
                "model": r.model,
                "windows": int(r.windows),
                "last_window_end": None if r.last_end is None else to_utc(r.last_end).isoformat(),
                "status": r.status,
            },
        )
    return list(out.values())


def _point(r: Any) -> Point:
    return Point(
        r.model,
        int(r.version),
        r.role,
        r.window_start,
        r.window_end,
        r.metric,
        r.feature,
        r.value,
        r.threshold,
        r.status,
        int(r.rows),
        r.run_id,
        r.computed_at,
    )
