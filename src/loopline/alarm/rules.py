"""Evaluating an alarm rule over the newest windows of the monitor's series.

States are those of the cloud monitors: ``ok``, ``alarm`` and ``insufficient_data``. An
alarm looks at the last ``periods`` windows of the version that holds its alias, in its
role: a window *breaches* when the condition holds on that window's metrics, and is
*missing* when a metric the condition reads has no value there (no rows, too few labels).

- It enters ``alarm`` when at least ``datapoints`` of those windows breach ("2 of the
  last 3"), missing windows counted as ``missing`` says: ``ignore`` drops them,
  ``breaching`` counts them as breaching, ``insufficient`` makes the alarm
  ``insufficient_data`` when fewer than ``datapoints`` windows have a value.
- Once in ``alarm`` it returns to ``ok`` only after ``recover`` windows in a row (default
  ``periods``) that hold a value and do not breach. That is what keeps a value hovering
  at the threshold from flapping: it alarms once, and stays in alarm until it is clearly
  back.
- With no window at all, the state is ``insufficient_data`` (a new alarm) or unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopline.alarm.settings import AlarmSettings

if TYPE_CHECKING:
    from loopline.store.stores import Stores

OK = "ok"
ALARM = "alarm"
INSUFFICIENT = "insufficient_data"
STATES = (OK, ALARM, INSUFFICIENT)


@dataclass(frozen=True)
class Datapoint:
    window_start: datetime
    window_end: datetime
    #: The left side of the condition on this window (what it compares), or None.
    value: float | None
    #: True/False, or None when the window has no value for the condition.
    breaching: bool | None
    rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "value": self.value,
            "breaching": self.breaching,
            "rows": self.rows,
        }


@dataclass
class Evaluation:
    """What an alarm's rule says now."""

    alarm: str
    model: str
    version: int | None
    state: str
    previous: str | None
    reason: str
    datapoints: list[Datapoint] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.state != self.previous

    @property
    def value(self) -> float | None:
        for p in reversed(self.datapoints):
            if p.value is not None:
                return p.value
        return None

    @property
    def newest_window(self) -> datetime | None:
        return self.datapoints[-1].window_end if self.datapoints else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "alarm": self.alarm,
            "model": self.model,
            "version": self.version,
            "state": self.state,
            "previous": self.previous,
            "changed": self.changed,
            "value": self.value,
            "reason": self.reason,
            "datapoints": [p.to_dict() for p in self.datapoints],
        }


def decide(alarm: AlarmSettings, points: list[Datapoint], previous: str | None) -> tuple[str, str]:
    """(state, reason) from the newest windows, oldest first (pure: no store)."""
    window = points[-alarm.periods :]
    if not window:
        state = previous or INSUFFICIENT
        return state, "no monitored window yet" if previous is None else "no new window"
    present = [p for p in window if p.breaching is not None]
    missing = len(window) - len(present) + max(alarm.periods - len(window), 0)
    breaching = sum(1 for p in present if p.breaching)
    if alarm.missing == "breaching":
        breaching += missing
    rule = f"{alarm.when} in {breaching} of the last {alarm.periods} windows"
    need = f"(alarm at {alarm.datapoints})"
    if alarm.missing == "insufficient" and len(present) < alarm.datapoints:
        return INSUFFICIENT, f"only {len(present)} of the last {alarm.periods} windows have a value"
    if breaching >= alarm.datapoints:
        return ALARM, f"{rule} {need}"
    if previous == ALARM:
        recent = points[-alarm.recover_windows :]
        clean = len(recent) >= alarm.recover_windows and all(p.breaching is False for p in recent)
        if not clean:
            return ALARM, (
                f"{rule}; staying in alarm until {alarm.recover_windows} windows in a row are clear"
            )
        return OK, f"clear for {alarm.recover_windows} windows in a row"
    if not present:
        return (previous if previous in (OK, ALARM) else INSUFFICIENT), "no window with a value"
    return OK, f"{rule} {need}"


def datapoints(stores: Stores, alarm: AlarmSettings, version: int, limit: int) -> list[Datapoint]:
    """The newest ``limit`` windows of ``version`` (in the alarm's role), oldest first,
    each judged by the alarm's condition."""
    import sqlalchemy as sa

    from loopline.evaluate.gates import Gate
    from loopline.monitor.tables import series
    from loopline.registry.refs import parse_ref

    gate = Gate.parse(alarm.when)
    names = [n for n in gate.metric_names]
    model = parse_ref(alarm.model).name
    ends = (
        sa.select(series.c.window_end)
        .where(
            series.c.model == model,
            series.c.version == version,
            series.c.role == alarm.role,
        )
        .distinct()
        .order_by(series.c.window_end.desc())
        .limit(limit)
        .subquery()
    )
    query = sa.select(
        series.c.window_start,
        series.c.window_end,
        series.c.metric,
        series.c.value,
        series.c.rows,
        series.c.feature,
    ).where(
        series.c.model == model,
        series.c.version == version,
        series.c.role == alarm.role,
        series.c.metric.in_(names),
        series.c.feature == alarm.feature,
        series.c.window_end.in_(sa.select(ends.c.window_end)),
    )
    with stores.db.read() as conn:
        rows = conn.execute(query).all()
        window_rows = conn.execute(
            sa.select(series.c.window_start, series.c.window_end)
            .where(
                series.c.model == model,
                series.c.version == version,
                series.c.role == alarm.role,
                series.c.window_end.in_(sa.select(ends.c.window_end)),
            )
            .distinct()
        ).all()
    by_window: dict[datetime, dict[str, float | None]] = {}
    sizes: dict[datetime, int] = {}
    for r in rows:
        by_window.setdefault(r.window_end, {})[r.metric] = r.value
        sizes[r.window_end] = max(sizes.get(r.window_end, 0), int(r.rows))
    starts = {r.window_end: r.window_start for r in window_rows}
    out: list[Datapoint] = []
    for end in sorted(starts):
        metrics = by_window.get(end, {})
        value: float | None = None
        breaching: bool | None = None
        if all(metrics.get(n) is not None for n in names):
            result = gate.check(metrics)
            value, breaching = result.left_value, bool(result.passed)
        out.append(Datapoint(starts[end], end, value, breaching, sizes.get(end, 0)))
    return out
