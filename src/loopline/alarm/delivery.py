"""Events delivered to webhooks: the project's audit log, sent to each ``[events]``
subscriber, every event once per subscriber.

The events are the rows of the audit log (``ll_events``: a version registered, an alias
moved, a gate failed, an alarm changed state, a rollout stepped ...), each written in the
transaction of the change it records, so an event exists exactly when its change does.
Delivering one takes two steps, each recorded before the next:

1. **Queue.** Per subscriber, the events after its watermark that match ``kinds`` get a
   ``pending`` row in ``ll_event_deliveries``, unique per event and subscriber (queued
   twice is queued once). Ids are handed out before transactions commit, so an event
   can become visible after one with a higher id; the watermark therefore moves only
   over events older than :data:`SETTLE`, and newer ones are looked at again on every
   pass until they are that old. None is passed over.
2. **Send.** A due delivery is claimed (a compare-and-set on its status and attempt
   count, so two deliverers, the controller and a cron job, never send it at the same
   time), POSTed once, signed, and its outcome recorded: ``delivered`` with the response
   code; ``pending`` again after a backoff (timeouts, connection errors, 408, 429, 5xx);
   ``failed`` for any other 4xx, or when it still fails ``retry_for`` after it was
   queued. A subscriber whose receiver fails is left alone for the rest of the pass.

A deliverer killed after a claim leaves the row ``sending``; once the claim is older
than the stale limit, another deliverer sends it again. If the kill came after the
receiver had answered, that is a second POST of the same event: every POST carries the
event's id (``id`` in the body, ``X-Loopline-Delivery``), the same on every attempt, so
the receiver drops the duplicate. Nothing is lost, and to a receiver that drops ids it
has seen, nothing arrives twice.

A subscriber that a deliverer sees in ``[events]`` for the first time gets the events of
the last ``backfill`` (an hour by default) and everything after, not the whole history.

The delivery lives in the alarm layer, beside the webhook action it sends with: below
the loop, whose controller runs a pass on every tick, and above the store, whose audit
log it reads. Any process can run a pass (``loopline events deliver``, from cron or CI),
with or without a controller.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopline.alarm.tables import event_deliveries, event_subscribers
from loopline.alarm.webhook import Response, WebhookAction, backoff_delay
from loopline.store.db import dialects
from loopline.store.db.schema import events

if TYPE_CHECKING:
    from loopline.alarm.settings import ActionSettings, EventsSettings
    from loopline.config import Settings
    from loopline.store.stores import Stores

log = logging.getLogger("loopline.alarm")

PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
FAILED = "failed"
STATUSES = (PENDING, SENDING, DELIVERED, FAILED)

#: An event younger than this may still have, below its id, an event whose transaction
#: has not committed yet: the watermark waits until it is this old.
SETTLE = timedelta(minutes=5)
#: Events read per query while queueing, and queries per subscriber in one pass.
SCAN = 500
_MAX_SCANS = 20
#: Which attempt a POST is (1 for the first): a header, so the body stays the same.
ATTEMPT_HEADER = "X-Loopline-Attempt"


def delivery_id(project: str | None, event_id: int) -> str:
    """The idempotency key of an event: the same on every attempt and every subscriber,
    and distinct across projects posting to one receiver."""
    return f"{project}:{event_id}" if project else f"event:{event_id}"


def event_document(row: Any, project: str | None) -> dict[str, Any]:
    """The JSON body of an event's delivery."""
    return {
        "id": delivery_id(project, int(row.id)),
        "event_id": int(row.id),
        "project": project,
        "kind": row.kind,
        "subject": row.subject,
        "at": row.at.isoformat(),
        "actor": row.actor,
        "detail": dict(row.detail or {}),
    }


@dataclass
class DeliveryPass:
    """What one pass did: events queued, deliveries attempted and how they went."""

    queued: int = 0
    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    #: Claims another deliverer took over (ours had gone stale) before we recorded.
    superseded: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: DeliveryPass) -> None:
        self.queued += other.queued
        self.attempted += other.attempted
        self.delivered += other.delivered
        self.retrying += other.retrying
        self.failed += other.failed
        self.superseded += other.superseded
        self.errors.extend(other.errors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "attempted": self.attempted,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "failed": self.failed,
            "superseded": self.superseded,
            "errors": list(self.errors),
        }


def webhook_for(
    settings: ActionSettings, environ: Mapping[str, str] | None = None
) -> WebhookAction:
    """The webhook of an ``[actions.NAME]`` table, for single attempts (the delivery keeps
    its own retry schedule)."""
    assert settings.url is not None
    return WebhookAction(
        settings.name,
        settings.url,
        secret=settings.secret_value(None if environ is None else dict(environ)),
        timeout_s=settings.timeout_s,
        retries=0,
        headers={str(k): str(v) for k, v in settings.headers.items()},
    )


class EventDelivery:
    """Queues and sends the project's events to the ``[events]`` webhooks (see the module's
    docstring). ``hooks`` are the subscribers by name, in the order of ``[events]``."""

    def __init__(
        self,
        stores: Stores,
        config: EventsSettings,
        hooks: Mapping[str, WebhookAction],
        *,
        holder: str | None = None,
        stale_s: float | None = None,
    ) -> None:
        self.stores = stores
        self.config = config
        self.hooks = dict(hooks)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        slowest = max((h.timeout_s for h in self.hooks.values()), default=5.0)
        #: A claim older than this is taken for a dead deliverer's.
        self.stale_s = stale_s if stale_s is not None else max(60.0, 4 * slowest)
        self._project: list[str | None] = []

    @classmethod
    def from_settings(
        cls,
        stores: Stores,
        settings: Settings | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> EventDelivery:
        """The delivery ``[events]`` configures (with no subscriber when it names none)."""
        from loopline.alarm.settings import action_configs, events_config

        settings = settings or stores.settings
        config = events_config(settings)
        actions = action_configs(settings)
        hooks = {name: webhook_for(actions[name], environ) for name in config.webhooks}
        return cls(stores, config, hooks, **kwargs)

    @property
    def enabled(self) -> bool:
        return bool(self.hooks)

    # -- a pass ---------------------------------------------------------------------------

    def run_once(self) -> DeliveryPass:
        """Queue the new events, then attempt the due deliveries (up to ``batch``)."""
        queued = self.queue()
        result = self.send_due()
        result.queued = queued
        return result

    def drain(self, *, max_passes: int = 100) -> DeliveryPass:
        """Passes until nothing more is due now (what ``loopline events deliver`` runs):
        another pass follows only a full batch that made progress, so a receiver that is
        down is tried once per subscriber, not in a loop."""
        total = DeliveryPass()
        for _ in range(max_passes):
            result = self.run_once()
            total.add(result)
            if result.attempted < self.config.batch or not result.delivered:
                break
        return total

    # -- queueing -------------------------------------------------------------------------

    def queue(self) -> int:
        """Queue the new events of every subscriber; returns how many deliveries."""
        return sum(self._queue(name) for name in self.hooks)

    def _queue(self, name: str) -> int:
        queued = 0
        after: int | None = None
        for _ in range(_MAX_SCANS):
            count, after, full = self.stores.db.run_write(
                functools.partial(self._queue_batch, name=name, after=after), conflicts=3
            )
            queued += count
            if not full:
                break
        return queued

    def _queue_batch(
        self, conn: sa.Connection, name: str, after: int | None
    ) -> tuple[int, int | None, bool]:
        """Queue the events after ``max(watermark, after)`` (one scan); returns how many
        were queued, the last id scanned and whether the scan was full."""
        now = dialects.current_time(conn)
        mark = self._watermark(conn, name, now)
        start = mark if after is None else max(mark, after)
        scanned = conn.execute(
            sa.select(events.c.id, events.c.kind, events.c.at)
            .where(events.c.id > start)
            .order_by(events.c.id)
            .limit(SCAN)
        ).all()
        if not scanned:
            return 0, start, False
        last = int(scanned[-1].id)
        have = set(
            conn.execute(
                sa.select(event_deliveries.c.event_id).where(
                    event_deliveries.c.subscriber == name,
                    event_deliveries.c.event_id > start,
                    event_deliveries.c.event_id <= last,
                )
            ).scalars()
        )
        new = [int(e.id) for e in scanned if int(e.id) not in have and self.config.wants(e.kind)]
        if new:
            conn.execute(
                dialects.insert(conn, event_deliveries)
                .values(
                    [
                        {
                            "event_id": event_id,
                            "subscriber": name,
                            "status": PENDING,
                            "attempts": 0,
                            "queued_at": now,
                            "next_attempt_at": now,
                        }
                        for event_id in new
                    ]
                )
                .on_conflict_do_nothing(index_elements=["event_id", "subscriber"])
            )
        if start == mark:
            # The watermark moves over the settled prefix of what was scanned: events old
            # enough that no transaction still open can hold a smaller id.
            settled_before = datetime.now(UTC) - SETTLE
            moved = mark
            for e in scanned:
                if e.at > settled_before:
                    break
                moved = int(e.id)
            if moved > mark:
                conn.execute(
                    event_subscribers.update()
                    .where(event_subscribers.c.name == name, event_subscribers.c.watermark == mark)
                    .values(watermark=moved, updated_at=now)
                )
        return len(new), last, len(scanned) == SCAN

    def _watermark(self, conn: sa.Connection, name: str, now: datetime) -> int:
        """The subscriber's watermark; a new subscriber starts before the events of the
        last ``backfill``."""
        query = sa.select(event_subscribers.c.watermark).where(event_subscribers.c.name == name)
        found = conn.execute(query).scalar()
        if found is not None:
            return int(found)
        backfill = self.config.backfill_s
        older = sa.select(sa.func.max(events.c.id))
        if backfill is not None:
            older = older.where(events.c.at < datetime.now(UTC) - timedelta(seconds=backfill))
        since = int(conn.execute(older).scalar() or 0)
        conn.execute(
            dialects.insert(conn, event_subscribers)
            .values(name=name, since_id=since, watermark=since, created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        return int(conn.execute(query).scalar_one())

    # -- sending --------------------------------------------------------------------------

    def due(self, limit: int | None = None) -> list[Any]:
        """The deliveries to attempt now, oldest first: pending ones whose time has come,
        and ones whose claim went stale (their deliverer died)."""
        names = list(self.hooks)
        if not names:
            return []
        with self.stores.db.read() as conn:
            now = dialects.current_time(conn)
            stale = now - timedelta(seconds=self.stale_s)
            c = event_deliveries.c
            return list(
                conn.execute(
                    sa.select(c.id, c.event_id, c.subscriber, c.status, c.attempts, c.queued_at)
                    .where(
                        c.subscriber.in_(names),
                        sa.or_(
                            sa.and_(c.status == PENDING, c.next_attempt_at <= now),
                            sa.and_(c.status == SENDING, c.claimed_at < stale),
                        ),
                    )
                    .order_by(c.id)
                    .limit(limit or self.config.batch)
                ).all()
            )

    def send_due(self, limit: int | None = None) -> DeliveryPass:
        """Attempt every due delivery once (see :meth:`due`), in order; after a failure
        that may pass, the rest of that subscriber's wait for the next pass."""
        result = DeliveryPass()
        blocked: set[str] = set()
        for row in self.due(limit):
            if row.subscriber in blocked:
                continue
            attempt = self._claim(row)
            if attempt is None:
                continue
            result.attempted += 1
            status, response = self._send(row, attempt)
            if status is None:
                result.superseded += 1
            elif status == DELIVERED:
                result.delivered += 1
            elif status == PENDING:
                result.retrying += 1
            else:
                result.failed += 1
            if response is not None and not response.ok:
                result.errors.append(f"{row.subscriber}: event {row.event_id}: {response.error}")
                if response.retryable:
                    blocked.add(row.subscriber)
        return result

    def _claim(self, row: Any) -> int | None:
        """Take the delivery for this attempt (compare-and-set); the attempt's number, or
        None when another deliverer took it first."""

        def fn(conn: sa.Connection) -> int | None:
            now = dialects.current_time(conn)
            done = conn.execute(
                event_deliveries.update()
                .where(
                    event_deliveries.c.id == row.id,
                    event_deliveries.c.status == row.status,
                    event_deliveries.c.attempts == row.attempts,
                )
                .values(
                    status=SENDING,
                    attempts=row.attempts + 1,
                    claimed_at=now,
                    claimed_by=self.holder,
                    last_attempt_at=now,
                )
            ).rowcount
            return int(row.attempts) + 1 if done else None

        return self.stores.db.run_write(fn, conflicts=3)

    def _send(self, row: Any, attempt: int) -> tuple[str | None, Response | None]:
        hook = self.hooks[row.subscriber]
        with self.stores.db.read() as conn:
            event = conn.execute(sa.select(events).where(events.c.id == row.event_id)).first()
        if event is None:
            response = Response(None, f"event {row.event_id} is no longer in the log")
            return self._finish(row, attempt, response, hook, final=True), response
        project = self.project()
        body = json.dumps(event_document(event, project), sort_keys=True, default=str).encode()
        try:
            response = hook.post(
                body,
                kind=event.kind,
                delivery=delivery_id(project, int(event.id)),
                headers={ATTEMPT_HEADER: str(attempt)},
            )
        except Exception as exc:  # a bug must not leave the claim to go stale
            log.exception("delivering event %s to %s", row.event_id, row.subscriber)
            response = Response(None, f"{type(exc).__name__}: {exc}")
        return self._finish(row, attempt, response, hook), response

    def _finish(
        self,
        row: Any,
        attempt: int,
        response: Response,
        hook: WebhookAction,
        *,
        final: bool = False,
    ) -> str | None:
        """Record the attempt's outcome; the new status, or None when our claim had gone
        stale and another deliverer took the delivery over meanwhile."""
        cfg = self.config

        def fn(conn: sa.Connection) -> str | None:
            now = dialects.current_time(conn)
            values: dict[str, Any] = {
                "claimed_at": None,
                "claimed_by": None,
                "url": hook.url,
                "response_code": response.status,
                "last_error": response.error,
            }
            if response.ok:
                values.update(status=DELIVERED, delivered_at=now)
            else:
                waited = (now - row.queued_at).total_seconds()
                if response.retryable and not final and waited < cfg.retry_for_s:
                    delay = backoff_delay(
                        attempt, cfg.backoff_s, cfg.max_backoff_s, response.retry_after
                    )
                    values.update(status=PENDING, next_attempt_at=now + timedelta(seconds=delay))
                else:
                    values.update(status=FAILED)
            done = conn.execute(
                event_deliveries.update()
                .where(
                    event_deliveries.c.id == row.id,
                    event_deliveries.c.status == SENDING,
                    event_deliveries.c.attempts == attempt,
                )
                .values(**values)
            ).rowcount
            return str(values["status"]) if done else None

        return self.stores.db.run_write(fn, conflicts=3)

    def project(self) -> str | None:
        """The project's id (from the database's binding), part of every delivery id."""
        if not self._project:
            from loopline.store.db.project import read_binding

            with self.stores.db.read() as conn:
                binding = read_binding(conn)
            self._project.append(None if binding is None else binding.project_id)
        return self._project[0]


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """How the delivery of one event to one subscriber goes."""

    subscriber: str
    status: str
    attempts: int
    queued_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    response_code: int | None
    last_error: str | None
    url: str | None

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "subscriber": self.subscriber,
            "status": self.status,
            "attempts": self.attempts,
            "queued_at": iso(self.queued_at),
            "next_attempt_at": iso(self.next_attempt_at if self.status == PENDING else None),
            "last_attempt_at": iso(self.last_attempt_at),
            "delivered_at": iso(self.delivered_at),
            "response_code": self.response_code,
            "last_error": self.last_error,
            "url": self.url,
        }


@dataclass(frozen=True)
class EventRecord:
    """An event of the audit log with its deliveries (none when no subscriber wanted it)."""

    id: int
    at: datetime
    kind: str
    subject: str
    actor: str
    detail: Mapping[str, Any]
    deliveries: tuple[Delivery, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "subject": self.subject,
            "actor": self.actor,
            "detail": dict(self.detail),
            "deliveries": [d.to_dict() for d in self.deliveries],
        }


def _kind_filter(kind: str) -> Any:
    """``kind`` as a condition: exact, or a pattern with ``*`` (``model.*``)."""
    if "*" not in kind:
        return events.c.kind == kind
    escaped = kind.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return events.c.kind.like(escaped.replace("*", "%"), escape="\\")


def read_events(
    stores: Stores,
    *,
    kind: str | None = None,
    subject: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[EventRecord]:
    """The newest events (of a kind or pattern, about a subject, with a delivery in
    ``status``), newest first, each with its deliveries."""
    query = sa.select(events).order_by(events.c.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(_kind_filter(kind))
    if subject is not None:
        query = query.where(events.c.subject == subject)
    if status is not None:
        query = query.where(
            events.c.id.in_(
                sa.select(event_deliveries.c.event_id).where(event_deliveries.c.status == status)
            )
        )
    with stores.db.read() as conn:
        rows = conn.execute(query).all()
        by_event = _deliveries(conn, [int(r.id) for r in rows])
    return [_record(r, by_event.get(int(r.id), ())) for r in rows]


def read_event(stores: Stores, event_id: int) -> EventRecord:
    """One event with its deliveries; EventNotFoundError when there is none."""
    from loopline.alarm.errors import EventNotFoundError

    with stores.db.read() as conn:
        row = conn.execute(sa.select(events).where(events.c.id == event_id)).first()
        if row is None:
            newest = conn.execute(sa.select(sa.func.max(events.c.id))).scalar()
            raise EventNotFoundError(event_id, None if newest is None else int(newest))
        by_event = _deliveries(conn, [event_id])
    return _record(row, by_event.get(event_id, ()))


def retry_failed(stores: Stores, event_id: int, subscriber: str | None = None) -> int:
    """Queue the failed deliveries of an event again (all, or one subscriber's), as if
    new: its retries start over. Returns how many."""
    read_event(stores, event_id)

    def fn(conn: sa.Connection) -> int:
        now = dialects.current_time(conn)
        c = event_deliveries.c
        query = event_deliveries.update().where(c.event_id == event_id, c.status == FAILED)
        if subscriber is not None:
            query = query.where(c.subscriber == subscriber)
        return int(
            conn.execute(query.values(status=PENDING, queued_at=now, next_attempt_at=now)).rowcount
        )

    return stores.db.run_write(fn)


def delivery_counts(stores: Stores) -> dict[tuple[str, str], int]:
    """Deliveries by (subscriber, status)."""
    c = event_deliveries.c
    with stores.db.read() as conn:
        rows = conn.execute(
            sa.select(c.subscriber, c.status, sa.func.count()).group_by(c.subscriber, c.status)
        ).all()
    return {(str(s), str(st)): int(n) for s, st, n in rows}


def subscribers(stores: Stores) -> dict[str, dict[str, Any]]:
    """Each subscriber a deliverer has seen: since which event, and its watermark."""
    with stores.db.read() as conn:
        rows = conn.execute(sa.select(event_subscribers)).all()
    return {
        r.name: {
            "since_event": int(r.since_id),
            "watermark": int(r.watermark),
            "created_at": r.created_at.isoformat(),
        }
        for r in rows
    }


def _deliveries(conn: sa.Connection, ids: list[int]) -> dict[int, tuple[Delivery, ...]]:
    if not ids:
        return {}
    c = event_deliveries.c
    rows = conn.execute(
        sa.select(event_deliveries).where(c.event_id.in_(ids)).order_by(c.event_id, c.subscriber)
    ).all()
    out: dict[int, list[Delivery]] = {}
    for r in rows:
        out.setdefault(int(r.event_id), []).append(
            Delivery(
                r.subscriber,
                r.status,
                int(r.attempts),
                r.queued_at,
                r.next_attempt_at,
                r.last_attempt_at,
                r.delivered_at,
                r.response_code,
                r.last_error,
                r.url,
            )
        )
    return {k: tuple(v) for k, v in out.items()}


def _record(row: Any, deliveries: tuple[Delivery, ...]) -> EventRecord:
    return EventRecord(
        int(row.id),
        row.at,
        row.kind,
        row.subject,
        row.actor,
        dict(row.detail or {}),
        deliveries,
    )


__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "SENDING",
    "STATUSES",
    "Delivery",
    "DeliveryPass",
    "EventDelivery",
    "EventRecord",
    "delivery_counts",
    "delivery_id",
    "event_document",
    "read_event",
    "read_events",
    "retry_failed",
    "subscribers",
    "webhook_for",
]
