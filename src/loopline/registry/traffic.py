"""Traffic splits between a served alias and a candidate, read by servers while they run.

One row per (model, alias): the loop controller (or an operator) writes it; each server of
``name@alias`` reads it periodically and routes accordingly, so a canary widens or a
shadow starts without restarting anything. No row means all traffic to the alias.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from loopline.registry.errors import ConflictError, RegistryArgumentError
from loopline.registry.records import TRAFFIC_MODES, TrafficSplit
from loopline.registry.tables import model_traffic, models
from loopline.store.db.events import record_event
from loopline.store.db.types import to_utc
from loopline.types import Unset


def get_split(conn: sa.Connection, name: str, alias: str) -> TrafficSplit | None:
    row = conn.execute(
        sa.select(model_traffic).where(
            model_traffic.c.model == name, model_traffic.c.alias == alias
        )
    ).first()
    return None if row is None else _split(row)


def splits(conn: sa.Connection, name: str) -> list[TrafficSplit]:
    rows = conn.execute(
        sa.select(model_traffic)
        .where(model_traffic.c.model == name)
        .order_by(model_traffic.c.alias)
    )
    return [_split(row) for row in rows]


def check_expected(
    conn: sa.Connection, name: str, alias: str, expect: TrafficSplit | Unset | None
) -> None:
    """Compare-and-set: raise ConflictError unless the split of ``name@alias`` is (still)
    the one ``expect`` describes (candidate, percent, mode), or absent for None."""
    if isinstance(expect, Unset):
        return
    query = sa.select(model_traffic).where(
        model_traffic.c.model == name, model_traffic.c.alias == alias
    )
    row = conn.execute(query.with_for_update()).first()
    current = None if row is None else _split(row)

    def key(split: TrafficSplit | None) -> tuple[str, float, str] | None:
        return None if split is None else (split.candidate, split.percent, split.mode)

    if key(current) != key(expect):
        raise ConflictError(
            f"The traffic split of {name}@{alias}", _describe(expect), _describe(current)
        )


def _describe(split: TrafficSplit | None) -> str | None:
    if split is None:
        return None
    return f"{split.percent:g}% {split.mode} to {split.candidate}"


def check_split(percent: float, mode: str) -> float:
    if mode not in TRAFFIC_MODES:
        raise RegistryArgumentError(
            f"Invalid traffic mode {mode!r}; expected one of {', '.join(TRAFFIC_MODES)}",
            argument="mode",
            value=mode,
        )
    value = float(percent)
    if not math.isfinite(value) or not 0.0 <= value <= 100.0:
        raise RegistryArgumentError(
            f"Invalid traffic percent {percent!r}; expected 0 to 100",
            argument="percent",
            value=percent,
        )
    return value


def put_split(
    conn: sa.Connection,
    name: str,
    alias: str,
    *,
    candidate: str,
    percent: float,
    mode: str,
    sticky_key: str | None,
    actor: str,
    reason: str | None,
) -> TrafficSplit:
    """Insert or replace the split of ``name@alias``."""
    now = datetime.now(UTC)
    values = {
        "candidate": candidate,
        "percent": percent,
        "mode": mode,
        "sticky_key": sticky_key,
        "updated_at": now,
        "updated_by": actor,
    }
    changed = conn.execute(
        model_traffic.update()
        .where(model_traffic.c.model == name, model_traffic.c.alias == alias)
        .values(**values)
    ).rowcount
    if not changed:
        conn.execute(model_traffic.insert().values(model=name, alias=alias, **values))
    conn.execute(models.update().where(models.c.name == name).values(updated_at=now))
    split = TrafficSplit(name, alias, candidate, percent, mode, sticky_key, now, actor)
    detail = {k: v for k, v in split.to_dict().items() if k not in ("updated_at", "updated_by")}
    detail["reason"] = reason
    record_event(conn, "model.traffic", f"{name}@{alias}", detail, actor=actor)
    return split


def delete_split(
    conn: sa.Connection, name: str, alias: str, *, actor: str, reason: str | None
) -> bool:
    deleted = conn.execute(
        model_traffic.delete().where(model_traffic.c.model == name, model_traffic.c.alias == alias)
    ).rowcount
    if deleted:
        record_event(
            conn,
            "model.traffic",
            f"{name}@{alias}",
            {"alias": alias, "candidate": None, "percent": 0.0, "reason": reason},
            actor=actor,
        )
    return bool(deleted)


def _split(row: Any) -> TrafficSplit:
    return TrafficSplit(
        name=row.model,
        alias=row.alias,
        candidate=row.candidate,
        percent=float(row.percent),
        mode=row.mode,
        sticky_key=row.sticky_key,
        updated_at=to_utc(row.updated_at),
        updated_by=row.updated_by,
    )
