"""The few places where SQL differs between SQLite and PostgreSQL, for every layer.

- Upserts: both dialects spell ``INSERT ... ON CONFLICT``, through their own constructs.
- The clock: heartbeats and alias moves on PostgreSQL use the server's clock, so clients on
  machines with skewed clocks are judged by one clock; on SQLite (one machine) Python's.
- Bulk inserts of metric points go to the driver's ``executemany`` as plain tuples,
  skipping SQLAlchemy's per-row parameter processing (two thirds of the cost otherwise).
- Numbers held as text (params, tags): the same parse on both (a regular expression on
  PostgreSQL, the same expression as a SQL function registered on the SQLite connection),
  so ``params.C > 0.5`` means the same thing everywhere. Text that is not a number is NULL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from loopline.store.db.types import to_utc

NUMBER_PATTERN = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"
_NUMBER_RE = re.compile(NUMBER_PATTERN)
_SQLITE_NUMBER_FN = "ll_number"


def is_postgres(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql"


def insert(conn: sa.Connection, table: sa.Table) -> Any:
    """The dialect's INSERT construct, which has ``on_conflict_do_update/nothing``."""
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def insert_many(
    conn: sa.Connection, table: sa.Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """INSERT ``rows`` (tuples in the order of ``columns``) with the driver's executemany."""
    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle in ("qmark", "numeric") else "%s"
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    conn.exec_driver_sql(sql, rows)


def now(conn: sa.Connection) -> Any:
    """The current time as a value to write (Python's on SQLite, the server's on PostgreSQL)."""
    if is_postgres(conn):
        return sa.func.now()
    return datetime.now(UTC)


def current_time(conn: sa.Connection) -> datetime:
    """The current time as a value, read from the same clock as :func:`now` (the server's
    on PostgreSQL: one extra round trip), for rows whose time is also returned to Python."""
    if is_postgres(conn):
        value: datetime = conn.execute(sa.select(sa.func.clock_timestamp())).scalar_one()
        return to_utc(value)
    return datetime.now(UTC)


def before_now(conn: sa.Connection, seconds: float) -> Any:
    """``now - seconds`` on the same clock as :func:`now`."""
    delta = timedelta(seconds=seconds)
    if is_postgres(conn):
        return sa.func.now() - sa.literal(delta, sa.Interval())
    return datetime.now(UTC) - delta


def parse_number(text: str | None) -> float | None:
    if text is None or not _NUMBER_RE.match(text):
        return None
    return float(text)


def prepare(conn: sa.Connection) -> None:
    """Make :func:`numeric` usable on this connection (registers the SQLite function)."""
    if conn.dialect.name != "sqlite":
        return
    raw = conn.connection.driver_connection
    if raw is not None:
        raw.create_function(_SQLITE_NUMBER_FN, 1, parse_number, deterministic=True)


def numeric(conn: sa.Connection, column: Any) -> Any:
    """``column`` (text) as a double precision number, NULL when it is not a number."""
    if is_postgres(conn):
        return sa.case(
            (column.regexp_match(NUMBER_PATTERN), sa.cast(column, sa.Double())),
            else_=sa.null(),
        )
    return getattr(sa.func, _SQLITE_NUMBER_FN)(column, type_=sa.Double())
