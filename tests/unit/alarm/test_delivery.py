"""Events delivered to webhooks, on both databases, against a real HTTP receiver: signed,
retried until the receiver recovers, refused for good on a 4xx, filtered by kind, never
passed over when ids commit out of order, and, when a deliverer is killed at any point or
two run at once, every event reaches each subscriber with one id (at most one extra POST
of the same id, after a kill between the answer and its record)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from loopline.alarm.delivery import (
    DELIVERED,
    FAILED,
    PENDING,
    SENDING,
    EventDelivery,
    read_event,
    read_events,
    retry_failed,
)
from loopline.alarm.errors import EventNotFoundError
from loopline.alarm.settings import EventsSettings, events_config
from loopline.alarm.tables import event_deliveries, event_subscribers
from loopline.alarm.webhook import WebhookAction, verify_signature
from loopline.errors import ConfigError
from loopline.store.db.events import record_event
from loopline.store.db.project import bind_project
from loopline.store.db.schema import events
from loopline.store.stores import Stores

from .test_webhook import Receiver

SECRET = "hook-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


class Killed(BaseException):
    """The process dies here: nothing after this point runs (not even ``except
    Exception`` handlers), as with SIGKILL."""


def _delivery(
    stores: Stores, url: str, *, holder: str = "a", stale_s: float = 60.0, **config: Any
) -> EventDelivery:
    settings = EventsSettings(webhooks=("ops",), backoff_s=0.0, **config)
    hook = WebhookAction("ops", url, secret=SECRET, timeout_s=3.0, retries=0)
    return EventDelivery(stores, settings, {"ops": hook}, holder=holder, stale_s=stale_s)


def _record(stores: Stores, *kinds: str) -> list[int]:
    def fn(conn: sa.Connection) -> list[int]:
        return [record_event(conn, kind, f"subject-{i}", {"n": i}) for i, kind in enumerate(kinds)]

    return stores.db.run_write(fn)


def _received(receiver: Receiver) -> list[dict[str, Any]]:
    return [json.loads(body) for _, body in receiver.received]


def _rows(stores: Stores) -> list[Any]:
    with stores.db.read() as conn:
        return list(
            conn.execute(sa.select(event_deliveries).order_by(event_deliveries.c.event_id)).all()
        )


def test_a_receiver_that_fails_then_recovers_gets_every_event_signed_once(
    stores: Stores, receiver: Receiver
) -> None:
    bind_project(stores.db, stores.settings.artifacts_url, None)
    ids = _record(stores, "model.register", "model.promote", "rollout.promoted")
    receiver.script = [503]
    delivery = _delivery(stores, receiver.url)

    first = delivery.run_once()
    assert (first.queued, first.attempted, first.retrying, first.delivered) == (3, 1, 1, 0)
    assert "HTTP 503" in first.errors[0]  # and the others waited: the receiver is down
    assert [r.status for r in _rows(stores)] == [PENDING, PENDING, PENDING]

    second = delivery.run_once()
    assert (second.queued, second.delivered) == (0, 3)
    assert delivery.run_once().attempted == 0  # nothing is sent twice

    bodies = _received(receiver)
    assert [b["event_id"] for b in bodies] == [ids[0], ids[0], ids[1], ids[2]]
    assert bodies[0] == bodies[1]  # the same body on every attempt
    project = delivery.project()
    assert project
    for (headers, body), doc in zip(receiver.received, bodies, strict=True):
        assert verify_signature(SECRET, body, headers)
        assert headers["X-Loopline-Delivery"] == doc["id"] == f"{project}:{doc['event_id']}"
        assert headers["X-Loopline-Event"] == doc["kind"]
    assert [h["X-Loopline-Attempt"] for h, _ in receiver.received] == ["1", "2", "1", "1"]
    assert bodies[1]["kind"] == "model.register"
    assert bodies[1]["detail"] == {"n": 0}
    assert bodies[1]["subject"] == "subject-0"
    assert bodies[1]["actor"]

    rows = _rows(stores)
    assert [(r.status, r.attempts, r.response_code) for r in rows] == [
        (DELIVERED, 2, 200),
        (DELIVERED, 1, 200),
        (DELIVERED, 1, 200),
    ]
    assert rows[0].last_error is None
    assert rows[0].delivered_at is not None

    shown = read_event(stores, ids[0])
    assert [(d.subscriber, d.status, d.attempts) for d in shown.deliveries] == [
        ("ops", DELIVERED, 2)
    ]


def test_kinds_choose_what_is_delivered(stores: Stores, receiver: Receiver) -> None:
    _record(stores, "model.register", "dataset.add", "gate.failed", "rollout.promoted", "model.set")
    delivery = _delivery(stores, receiver.url, kinds=("model.*", "gate.failed"))
    result = delivery.run_once()
    assert result.delivered == 3
    assert [b["kind"] for b in _received(receiver)] == [
        "model.register",
        "gate.failed",
        "model.set",
    ]
    listed = read_events(stores, kind="model.*")
    assert [e.kind for e in listed] == ["model.set", "model.register"]
    assert all(e.deliveries[0].status == DELIVERED for e in listed)
    assert read_events(stores, kind="dataset.add")[0].deliveries == ()
    assert [e.kind for e in read_events(stores, status=DELIVERED)] == [
        "model.set",
        "gate.failed",
        "model.register",
    ]


def test_a_refusal_is_final_and_retry_starts_it_over(stores: Stores, receiver: Receiver) -> None:
    (event_id,) = _record(stores, "model.promote")
    receiver.script = [403]
    delivery = _delivery(stores, receiver.url)
    result = delivery.run_once()
    assert (result.failed, result.retrying) == (1, 0)
    (row,) = _rows(stores)
    assert (row.status, row.response_code) == (FAILED, 403)
    assert "HTTP 403" in row.last_error
    assert delivery.run_once().attempted == 0  # given up
    assert [e.id for e in read_events(stores, status=FAILED)] == [event_id]

    assert retry_failed(stores, event_id) == 1
    assert delivery.run_once().delivered == 1
    assert retry_failed(stores, event_id) == 0
    with pytest.raises(EventNotFoundError, match="loopline events ls"):
        retry_failed(stores, event_id + 100)


def test_a_delivery_failing_longer_than_retry_for_is_given_up(
    stores: Stores, receiver: Receiver
) -> None:
    _record(stores, "model.promote")
    receiver.script = [500, 500]
    delivery = _delivery(stores, receiver.url, retry_for="1h")
    assert delivery.run_once().retrying == 1
    with stores.db.write() as conn:  # queued two hours ago
        conn.execute(
            event_deliveries.update().values(queued_at=datetime.now(UTC) - timedelta(hours=2))
        )
    assert delivery.run_once().failed == 1
    (row,) = _rows(stores)
    assert (row.status, row.attempts, row.response_code) == (FAILED, 2, 500)


def test_the_backoff_waits_between_attempts(stores: Stores, receiver: Receiver) -> None:
    _record(stores, "model.promote")
    receiver.script = [503]
    delivery = _delivery(stores, receiver.url)
    delivery.config = replace(delivery.config, backoff_s=600.0, max_backoff_s=900.0)
    assert delivery.run_once().retrying == 1
    (row,) = _rows(stores)
    wait = (row.next_attempt_at - row.last_attempt_at).total_seconds()
    assert 300 <= wait <= 600  # 600 s with jitter (50-100%)
    assert delivery.run_once().attempted == 0  # not due yet
    assert len(receiver.received) == 1


def test_an_event_that_commits_after_a_newer_one_is_not_passed_over(
    stores: Stores, receiver: Receiver
) -> None:
    """Ids are handed out before commit: event 50 can become visible after event 100.
    The watermark only moves over settled events, so 50 is still found."""
    now = datetime.now(UTC)

    def insert(event_id: int, at: datetime) -> None:
        with stores.db.write() as conn:
            conn.execute(
                events.insert().values(
                    id=event_id,
                    at=at,
                    kind="model.set",
                    subject=f"m@{event_id}",
                    actor="t",
                    detail={},
                )
            )

    delivery = _delivery(stores, receiver.url)
    insert(100, now)
    assert delivery.run_once().delivered == 1
    insert(50, now - timedelta(seconds=1))  # its transaction was open until now
    assert delivery.run_once().delivered == 1
    assert sorted(b["event_id"] for b in _received(receiver)) == [50, 100]

    def watermark() -> int:
        with stores.db.read() as conn:
            return int(conn.execute(sa.select(event_subscribers.c.watermark)).scalar_one())

    assert watermark() == 0  # nothing has settled yet
    with stores.db.write() as conn:
        conn.execute(events.update().values(at=now - timedelta(minutes=10)))
    delivery.run_once()
    assert watermark() == 100
    assert len(receiver.received) == 2


def test_a_new_subscriber_gets_the_backfill_not_the_whole_log(
    stores: Stores, receiver: Receiver
) -> None:
    old, recent = _record(stores, "model.register", "model.promote")
    with stores.db.write() as conn:
        conn.execute(
            events.update()
            .where(events.c.id == old)
            .values(at=datetime.now(UTC) - timedelta(hours=3))
        )
    assert _delivery(stores, receiver.url).run_once().delivered == 1
    assert [b["event_id"] for b in _received(receiver)] == [recent]


def test_backfill_zero_starts_after_the_newest_event(stores: Stores, receiver: Receiver) -> None:
    _record(stores, "model.register")
    delivery = _delivery(stores, receiver.url, backfill="0")
    assert delivery.run_once().attempted == 0
    (later,) = _record(stores, "model.promote")
    assert delivery.run_once().delivered == 1
    assert [b["event_id"] for b in _received(receiver)] == [later]


@pytest.mark.parametrize("where", ["before-post", "after-post", "after-queue"])
def test_a_killed_deliverer_resumes_without_loss_or_duplicates(
    stores: Stores, receiver: Receiver, where: str
) -> None:
    ids = _record(stores, "model.register", "model.set", "model.promote")
    dead = _delivery(stores, receiver.url, holder="dead")
    real_post = dead.hooks["ops"].post

    def dying_post(body: bytes, **kwargs: Any) -> Any:
        if where == "after-post":
            real_post(body, **kwargs)
        raise Killed

    dead.hooks["ops"].post = dying_post  # type: ignore[method-assign]
    if where == "after-queue":
        assert dead.queue() == 3
    else:
        with pytest.raises(Killed):
            dead.run_once()
        assert [r.status for r in _rows(stores)] == [SENDING, PENDING, PENDING]

    # Another deliverer (or the same one restarted) takes over once the claim is stale.
    alive = _delivery(stores, receiver.url, holder="alive", stale_s=0.0)
    result = alive.run_once()
    assert result.delivered == 3
    assert alive.run_once().attempted == 0
    assert [r.status for r in _rows(stores)] == [DELIVERED] * 3

    bodies = _received(receiver)
    unique = {b["id"]: b for b in bodies}
    assert sorted(b["event_id"] for b in unique.values()) == ids  # nothing lost
    extra = len(bodies) - len(unique)
    # A kill between the receiver's answer and its record means one more POST of that
    # same event, with the same id, which the receiver drops; otherwise none.
    assert extra == (1 if where == "after-post" else 0)


def test_a_fresh_claim_is_left_alone(stores: Stores, receiver: Receiver) -> None:
    _record(stores, "model.register")
    dead = _delivery(stores, receiver.url, holder="busy")

    def stuck(body: bytes, **kwargs: Any) -> Any:
        raise Killed

    dead.hooks["ops"].post = stuck  # type: ignore[method-assign]
    with pytest.raises(Killed):
        dead.run_once()
    other = _delivery(stores, receiver.url, holder="other", stale_s=3600.0)
    assert other.run_once().attempted == 0  # another deliverer may still be sending it
    assert receiver.received == []


def test_two_deliverers_at_once_send_each_event_once(stores: Stores, receiver: Receiver) -> None:
    ids = _record(stores, *["model.set"] * 12)
    receiver.script = ["slow"] + [200] * 11
    a = _delivery(stores, receiver.url, holder="a")
    b = _delivery(stores, receiver.url, holder="b")
    errors: list[BaseException] = []

    def run(d: EventDelivery) -> None:
        try:
            for _ in range(3):
                d.run_once()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(d,)) for d in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    got = sorted(b["event_id"] for b in _received(receiver))
    assert got == ids  # every one, each once
    assert [r.status for r in _rows(stores)] == [DELIVERED] * 12


def test_events_settings_are_checked(sqlite_stores: Stores) -> None:
    def settings(tables: dict[str, Any]) -> Any:
        return sqlite_stores.settings.with_overrides(tables=tables)

    hook = {"ops": {"kind": "webhook", "url": "https://hooks.example.com/x"}}
    cfg = events_config(settings({"actions": hook, "events": {"webhooks": ["ops"]}}))
    assert cfg.webhooks == ("ops",)
    assert cfg.wants("anything.at_all")
    with pytest.raises(ConfigError, match=r"no \[actions.NAME\] table declares.*'ops'"):
        events_config(settings({"actions": hook, "events": {"webhooks": ["opz"]}}))
    retrain = {"retrain": {"kind": "retrain", "model": "m"}}
    with pytest.raises(ConfigError, match="a retrain action; events are delivered to webhooks"):
        events_config(settings({"actions": retrain, "events": {"webhooks": ["retrain"]}}))
    with pytest.raises(ConfigError, match="is not a duration"):
        events_config(settings({"events": {"retry_for": "soon"}}))
    with pytest.raises(ConfigError, match="not a pattern"):
        events_config(settings({"events": {"kinds": ["model *"]}}))
    with pytest.raises(ConfigError, match="webhok"):
        events_config(settings({"events": {"webhok": ["ops"]}}))
    narrow = EventsSettings(kinds=("model.*", "rollout.promoted"))
    assert narrow.wants("model.set")
    assert narrow.wants("rollout.promoted")
    assert not narrow.wants("rollout.baking")
    assert not narrow.wants("models.set")
    assert EventsSettings().backfill_s == 3600.0
    assert EventsSettings(backfill="all").backfill_s is None


def test_an_unknown_event_is_a_clear_error(stores: Stores) -> None:
    with pytest.raises(EventNotFoundError, match="it has no events yet"):
        read_event(stores, 7)
    (event_id,) = _record(stores, "model.set")
    with pytest.raises(EventNotFoundError, match=f"the newest is {event_id}"):
        read_event(stores, event_id + 1)
