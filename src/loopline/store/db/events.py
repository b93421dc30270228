"""The project's audit log: an append-only record of who did what, and when."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from loopline.store.db.schema import events


@dataclass(frozen=True)
class Event:
    id: int
    at: datetime
    kind: str
    subject: str
    actor: str
    detail: Mapping[str, Any]


def current_actor() -> str:
    """``user@host`` of this process, for the audit log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"[:128]


def record_event(
    conn: sa.Connection,
    kind: str,
    subject: str,
    detail: Mapping[str, Any] | None = None,
    *,
    actor: str | None = None,
) -> int:
    """Append one event; returns its id."""
    result = conn.execute(
        events.insert().values(
            at=datetime.now(UTC),
            kind=kind,
            subject=subject,
            actor=actor or current_actor(),
            detail=dict(detail or {}),
        )
    )
    pk = result.inserted_primary_key
    return int(pk[0]) if pk else 0


def list_events(
    conn: sa.Connection, *, kind: str | None = None, subject: str | None = None, limit: int = 100
) -> list[Event]:
    """Newest first."""
    query = sa.select(events).order_by(events.c.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(events.c.kind == kind)
    if subject is not None:
        query = query.where(events.c.subject == subject)
    out = []
    for row in conn.execute(query):
        out.append(Event(row.id, row.at, row.kind, row.subject, row.actor, row.detail))
    return out
