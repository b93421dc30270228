"""What happened in the loop, in order: monitor windows, alarm changes, rollout steps.

:class:`Timeline` reads the rows added since it last looked (by id), so the daemon and
the demo print each event once, as it happens, whichever process recorded it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from loopline.store.stores import Stores


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # "monitor", "alarm", "rollout"
    subject: str
    event: str
    reason: str
    numbers: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "subject": self.subject,
            "event": self.event,
            "reason": self.reason,
            "numbers": self.numbers,
        }


class Timeline:
    """New monitor runs, alarm changes and rollout transitions since the last read."""

    def __init__(self, stores: Stores, *, since_now: bool = True) -> None:
        self.stores = stores
        self._alarm = 0
        self._rollout = 0
        self._monitor: datetime | None = None
        #: Windows seen already: a second run of one is for its late labels.
        self._windows: set[tuple[str, datetime | None]] = set()
        if since_now:
            self.read()

    def read(self) -> list[Entry]:
        from loopline.alarm.tables import alarm_history
        from loopline.loop.tables import rollout_events, rollouts
        from loopline.monitor.tables import monitor_runs

        out: list[Entry] = []
        with self.stores.db.read() as conn:
            query = sa.select(monitor_runs).order_by(monitor_runs.c.ended_at)
            if self._monitor is not None:
                query = query.where(monitor_runs.c.ended_at > self._monitor)
            for r in conn.execute(query).all():
                self._monitor = r.ended_at
                summary = r.summary or {}
                groups = summary.get("groups") or []
                again = (r.model, r.window_end) in self._windows
                self._windows.add((r.model, r.window_end))
                out.append(
                    Entry(
                        r.ended_at,
                        "monitor",
                        r.model,
                        r.status,
                        "; ".join((summary.get("alerts") or [])[:2]),
                        {
                            "rows": r.rows,
                            "window_end": None
                            if r.window_end is None
                            else r.window_end.isoformat(),
                            "window_start": None
                            if r.window_start is None
                            else r.window_start.timestamp(),
                            "window_end_ts": None
                            if r.window_end is None
                            else r.window_end.timestamp(),
                            "groups": [
                                f"v{g['version']} {g['role']}: {g['rows']} rows" for g in groups
                            ],
                            "again": again,
                        },
                    )
                )
            for r in conn.execute(
                sa.select(alarm_history)
                .where(alarm_history.c.id > self._alarm)
                .order_by(alarm_history.c.id)
            ).all():
                self._alarm = r.id
                values = [p.get("value") for p in (r.datapoints or []) if isinstance(p, dict)]
                out.append(
                    Entry(
                        r.at,
                        "alarm",
                        r.alarm,
                        f"{r.from_state or '-'} -> {r.to_state}",
                        r.reason,
                        {"version": r.version, "values": values[-3:]},
                    )
                )
            for r in conn.execute(
                sa.select(rollout_events, rollouts.c.model)
                .join(rollouts, rollouts.c.id == rollout_events.c.rollout_id)
                .where(rollout_events.c.id > self._rollout)
                .order_by(rollout_events.c.id)
            ).all():
                self._rollout = r.id
                out.append(
                    Entry(
                        r.at,
                        "rollout",
                        f"{r.model} {r.rollout_id[:8]}",
                        r.to_state,
                        r.reason or "",
                        {},
                    )
                )
        out.sort(key=lambda e: e.at)
        return out
