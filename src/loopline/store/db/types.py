"""Column types and small helpers every layer's tables share.

- :data:`ID`: a 64-bit integer key (SQLite's ``INTEGER PRIMARY KEY`` is its rowid, and
  only a column declared ``INTEGER`` gets it, hence the variant).
- :class:`UTCDateTime`: timezone-aware UTC in, timezone-aware UTC out, on both databases
  (SQLite stores no zone and gives naive values back; they were written as UTC).
- :func:`to_utc`: the same rule for values that do not come through a column.
- :func:`new_id`, :func:`unique_violation`: the primary key of an insert, and the error a
  lost insert race raises.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

import sqlalchemy as sa

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


@overload
def to_utc(value: datetime) -> datetime: ...


@overload
def to_utc(value: None) -> None: ...


def to_utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (None stays None); a naive one is taken to be
    UTC already, which is how loopline writes every timestamp."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that is always an aware UTC ``datetime`` in Python.

    Writing a naive datetime is refused: it is ambiguous (local time or UTC?), and the
    code that wrote one meant ``datetime.now(UTC)``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None or not isinstance(value, datetime):
            return value  # SQL expressions (now()) pass through untouched
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} written to a UTC column")
        utc = value.astimezone(UTC)
        # SQLite keeps the text as given: store UTC without an offset, read back as UTC.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return to_utc(moment)


def new_id(result: Any) -> int:
    """The primary key an ``INSERT`` produced."""
    key = result.inserted_primary_key
    if not key or key[0] is None:
        raise RuntimeError("the insert returned no primary key")
    return int(key[0])


def unique_violation() -> type[Exception]:
    """The exception a unique (or primary key) violation raises, on every dialect."""
    return sa.exc.IntegrityError
