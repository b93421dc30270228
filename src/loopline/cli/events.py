"""``loopline events ls|show|deliver|retry``: the project's events and their delivery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from loopline.cli.output import console, err_console, json_option, print_json, table

if TYPE_CHECKING:
    from loopline.alarm.delivery import Delivery, EventRecord
    from loopline.store.stores import Stores

_STATUSES = ("pending", "sending", "delivered", "failed")
_STYLE = {"delivered": "green", "pending": "yellow", "sending": "cyan", "failed": "bold red"}


@click.group("events", no_args_is_help=True)
def events_group() -> None:
    """The project's events (versions registered, aliases moved, gates failed, alarm
    changes, rollout steps ...) and their delivery to the [events] webhooks.

    The loop controller delivers on every tick; loopline events deliver does one round
    from cron or CI.
    """


@contextmanager
def _stores() -> Iterator[Stores]:
    from loopline.config import load_settings
    from loopline.store.stores import Stores

    with Stores.open(load_settings()) as stores:
        yield stores


def _time(value: Any) -> str:
    return "" if value is None else str(value.strftime("%Y-%m-%d %H:%M:%S"))


def _status(status: str) -> str:
    style = _STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def _deliveries(deliveries: tuple[Delivery, ...]) -> str:
    if not deliveries:
        return "-"
    return ", ".join(f"{d.subscriber}: {_status(d.status)} ({d.attempts})" for d in deliveries)


@events_group.command("ls")
@click.option("--kind", metavar="KIND", help="Only this kind, or a pattern: 'model.*'.")
@click.option("--subject", metavar="SUBJECT", help="Only events about this subject.")
@click.option(
    "--status",
    type=click.Choice(_STATUSES),
    help="Only events with a delivery in this status.",
)
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@json_option
def ls_command(
    kind: str | None, subject: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """The newest events, newest first, with how their delivery goes (subscriber: status
    (attempts))."""
    from loopline.alarm.delivery import read_events

    with _stores() as stores:
        found = read_events(stores, kind=kind, subject=subject, status=status, limit=limit)
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    if not found:
        filtered = kind or subject or status
        console.print("No events match." if filtered else "No events yet.")
        return
    console.print(
        table(
            None,
            ["id", "at (UTC)", "kind", "subject", "actor", "deliveries"],
            [
                (e.id, _time(e.at), e.kind, e.subject, e.actor, _deliveries(e.deliveries))
                for e in found
            ],
        )
    )


@events_group.command("show")
@click.argument("event_id", metavar="ID", type=int)
@json_option
def show_command(event_id: int, as_json: bool) -> None:
    """Event ID: its detail, and each delivery with its attempts, response and error."""
    from loopline.alarm.delivery import event_document, read_event
    from loopline.store.db.project import read_binding

    with _stores() as stores:
        event = read_event(stores, event_id)
        with stores.db.read() as conn:
            binding = read_binding(conn)
    document = event_document(event, None if binding is None else binding.project_id)
    if as_json:
        print_json(event.to_dict() | {"delivery_id": document["id"]})
        return
    _print_event(event, str(document["id"]))


def _print_event(event: EventRecord, key: str) -> None:
    console.print(
        f"[bold]event {event.id}[/bold]  {event.kind}  {event.subject}  "
        f"{_time(event.at)} UTC by {event.actor}",
        highlight=False,
    )
    console.print(f"delivery id: {key}", highlight=False)
    console.print(
        json.dumps(dict(event.detail), indent=2, sort_keys=True, default=str),
        markup=False,
        highlight=False,
    )
    if not event.deliveries:
        console.print("Not delivered to any webhook (none subscribed to it).")
        return
    console.print(
        table(
            "deliveries",
            ["subscriber", "status", "attempts", "response", "last attempt", "next", "error"],
            [
                (
                    d.subscriber,
                    _status(d.status),
                    d.attempts,
                    d.response_code if d.response_code is not None else "-",
                    _time(d.last_attempt_at) or "-",
                    _time(d.next_attempt_at) if d.status == "pending" else "-",
                    d.last_error or "",
                )
                for d in event.deliveries
            ],
        )
    )


@events_group.command("deliver")
@json_option
def deliver_command(as_json: bool) -> None:
    """Deliver what is due now: queue the new events for each [events] webhook and send
    them, once each (for cron or a CI step; the controller does this on every tick).

    Exits 0 when every attempt was made, whatever the receivers answered: a failed
    delivery is retried by the next round (loopline events ls --status pending).
    """
    from loopline.alarm.delivery import EventDelivery
    from loopline.config import load_settings
    from loopline.store.stores import Stores

    settings = load_settings()
    with Stores.open(settings) as stores:
        delivery = EventDelivery.from_settings(stores, settings)
        if not delivery.enabled:
            if as_json:
                print_json({"webhooks": [], "queued": 0, "attempted": 0})
            else:
                console.print(
                    'No [events] webhooks configured: add [events] webhooks = ["NAME"] '
                    "naming [actions.NAME] webhooks (docs/events.md)",
                    markup=False,
                )
            return
        result = delivery.drain()
    if as_json:
        print_json({"webhooks": list(delivery.hooks)} | result.to_dict())
        return
    console.print(
        f"{', '.join(delivery.hooks)}: queued {result.queued}, delivered {result.delivered}, "
        f"retrying {result.retrying}, failed {result.failed}",
        highlight=False,
    )
    for error in result.errors:
        err_console.print(f"warning: {error}", highlight=False, markup=False, soft_wrap=True)


@events_group.command("retry")
@click.argument("event_id", metavar="ID", type=int)
@click.option("--subscriber", metavar="NAME", help="Only this webhook's delivery.")
@json_option
def retry_command(event_id: int, subscriber: str | None, as_json: bool) -> None:
    """Queue the failed deliveries of event ID again (their retries start over); the next
    round (loopline events deliver, or the controller) sends them."""
    from loopline.alarm.delivery import retry_failed

    with _stores() as stores:
        count = retry_failed(stores, event_id, subscriber)
    if as_json:
        print_json({"event": event_id, "queued": count})
        return
    if count:
        console.print(
            f"{count} deliver{'y' if count == 1 else 'ies'} of event {event_id} queued again; "
            "the next round sends it (loopline events deliver, or the controller)"
        )
    else:
        console.print(
            f"event {event_id} has no failed delivery{' to ' + subscriber if subscriber else ''}"
        )
