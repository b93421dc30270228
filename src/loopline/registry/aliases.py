"""Alias moves and their append-only history, as functions over one open transaction.

``ll_model_aliases`` holds the current holder of each alias; ``ll_model_alias_history``
every move ever made (set, promote, rollback), which answers "which version held the
alias at time T" with one query, and which rollback replays: ordinary moves push the new
holder on a stack and rollbacks pop it, so rolling back twice goes back two holders.

The order of moves is the database's: the history's row id (a sequence), never a client's
clock, and each move is stamped with the database's time (the server's clock on
PostgreSQL), so clients with skewed clocks cannot reorder the history or misdirect a
rollback.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from loopline.registry.errors import ConflictError
from loopline.registry.records import AliasMove
from loopline.registry.tables import alias_history, model_aliases, models
from loopline.store.db import dialects
from loopline.store.db.events import record_event
from loopline.store.db.types import to_utc
from loopline.types import UNSET, Unset

ACTIONS = ("set", "promote", "rollback")


def current_holder(conn: sa.Connection, name: str, alias: str, *, lock: bool = False) -> int | None:
    query = sa.select(model_aliases.c.version).where(
        model_aliases.c.model == name, model_aliases.c.alias == alias
    )
    if lock:
        query = query.with_for_update()
    value = conn.execute(query).scalar()
    return None if value is None else int(value)


def aliases_of(conn: sa.Connection, name: str) -> dict[str, int]:
    rows = conn.execute(
        sa.select(model_aliases.c.alias, model_aliases.c.version)
        .where(model_aliases.c.model == name)
        .order_by(model_aliases.c.alias)
    )
    return {str(alias): int(version) for alias, version in rows}


def move_alias(
    conn: sa.Connection,
    name: str,
    alias: str,
    to_version: int,
    *,
    action: str,
    actor: str,
    reason: str | None = None,
    forced: bool = False,
    detail: Mapping[str, Any] | None = None,
    expect: int | Unset | None = UNSET,
) -> AliasMove | None:
    """Point ``alias`` at ``to_version`` and append the move; None if it held it already.

    The alias row is locked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's write
    transaction holds the database lock), so ``from_version`` is the true previous holder.
    Two first-time setters race on the primary key: the loser's transaction fails with an
    IntegrityError and is retried by the caller.

    ``expect`` (a version, or None for "no holder") makes the move a compare-and-set: when
    the alias is held by another version, ConflictError is raised and nothing changes.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown alias action {action!r}; expected one of {ACTIONS}")
    from_version = current_holder(conn, name, alias, lock=True)
    if not isinstance(expect, Unset) and expect != from_version:
        raise ConflictError(f"Alias {alias!r} of model {name!r}", expect, from_version)
    if from_version == to_version:
        return None
    now = dialects.current_time(conn)
    if from_version is None:
        conn.execute(
            model_aliases.insert().values(
                model=name, alias=alias, version=to_version, updated_at=now, updated_by=actor
            )
        )
    else:
        conn.execute(
            model_aliases.update()
            .where(model_aliases.c.model == name, model_aliases.c.alias == alias)
            .values(version=to_version, updated_at=now, updated_by=actor)
        )
    result = conn.execute(
        alias_history.insert().values(
            model=name,
            alias=alias,
            action=action,
            from_version=from_version,
            to_version=to_version,
            actor=actor,
            reason=reason,
            at=now,
            forced=forced,
            detail=None if detail is None else dict(detail),
        )
    )
    conn.execute(models.update().where(models.c.name == name).values(updated_at=now))
    move = AliasMove(
        id=int(result.inserted_primary_key[0]) if result.inserted_primary_key else 0,
        name=name,
        alias=alias,
        action=action,
        from_version=from_version,
        to_version=to_version,
        actor=actor,
        at=now,
        reason=reason,
        forced=forced,
        detail=None if detail is None else dict(detail),
    )
    event = {k: v for k, v in move.to_dict().items() if k not in ("id", "at", "actor", "name")}
    record_event(conn, f"model.{action}", f"{name}@{alias}", event, actor=actor)
    return move


def history(conn: sa.Connection, name: str, alias: str | None = None) -> list[AliasMove]:
    """Moves of ``name``'s aliases (or of one alias), oldest first."""
    query = sa.select(alias_history).where(alias_history.c.model == name)
    if alias is not None:
        query = query.where(alias_history.c.alias == alias)
    query = query.order_by(alias_history.c.id)
    return [_move(row) for row in conn.execute(query)]


def last_move_to(conn: sa.Connection, name: str, alias: str, version: int) -> AliasMove | None:
    row = conn.execute(
        sa.select(alias_history)
        .where(
            alias_history.c.model == name,
            alias_history.c.alias == alias,
            alias_history.c.to_version == version,
        )
        .order_by(alias_history.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _move(row)


def alias_at(conn: sa.Connection, name: str, alias: str, when: datetime) -> int | None:
    """The version that held ``alias`` at ``when`` (naive datetimes are local time)."""
    at = when.astimezone(UTC)
    value = conn.execute(
        sa.select(alias_history.c.to_version)
        .where(
            alias_history.c.model == name,
            alias_history.c.alias == alias,
            alias_history.c.at <= at,
        )
        .order_by(alias_history.c.id.desc())
        .limit(1)
    ).scalar()
    return None if value is None else int(value)


def holders(moves: list[AliasMove]) -> list[int]:
    """The stack of holders the history leaves: the last is the current one."""
    stack: list[int] = []
    for move in moves:
        if move.action == "rollback" and stack:
            stack.pop()
        if not stack or stack[-1] != move.to_version:
            stack.append(move.to_version)
    return stack


def _move(row: Any) -> AliasMove:
    return AliasMove(
        id=int(row.id),
        name=row.model,
        alias=row.alias,
        action=row.action,
        from_version=row.from_version,
        to_version=int(row.to_version),
        actor=row.actor,
        at=to_utc(row.at),
        reason=row.reason,
        forced=bool(row.forced),
        detail=row.detail,
    )
