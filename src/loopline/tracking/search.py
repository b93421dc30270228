"""Run filters and sort keys: parsed from text, turned into SQL over the run tables.

A filter is ``<field> <op> <value>``; several filters all have to match::

    metrics.f1 >= 0.8            latest value of the metric (runs without it never match)
    params.model = rf            params and tags are text; an unquoted number compares as a
    params.C < 1                 number ("0.10" = 0.1), a quoted value as text
    tags.team like 'ml-%'        SQL LIKE: % any text, _ one character
    status != failed             attributes: id, experiment, name, status, parent_id, user,
    attributes.start_time >= 2025-01-01    source, git_commit, git_dirty, start_time, end_time

Operators: ``=`` (or ``==``), ``!=`` (or ``<>``), ``<``, ``<=``, ``>``, ``>=``, ``like``.
A key with spaces or operator characters is quoted: ``params."max depth" = 3``.

A sort key is a field, optionally followed by ``asc``/``desc`` or prefixed by ``-`` for
descending. Runs missing the sorted value come last either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from loopline.store.db import dialects
from loopline.store.db.types import to_utc
from loopline.tracking.errors import InvalidRunFilterError
from loopline.tracking.tables import RUN_STATUSES, latest_metrics, params, runs, tags

Kind = Literal["params", "metrics", "tags", "attributes"]

_KINDS: dict[str, Kind] = {
    "params": "params",
    "param": "params",
    "metrics": "metrics",
    "metric": "metrics",
    "tags": "tags",
    "tag": "tags",
    "attributes": "attributes",
    "attribute": "attributes",
    "attr": "attributes",
    "run": "attributes",
}
TEXT_ATTRIBUTES = ("id", "experiment", "name", "status", "parent_id", "user", "source")
TIME_ATTRIBUTES = ("start_time", "end_time")
ATTRIBUTES = (*TEXT_ATTRIBUTES, "git_commit", "git_dirty", *TIME_ATTRIBUTES)
_OPERATORS = ("==", "!=", "<>", ">=", "<=", "=", ">", "<")
_ORDERING = ("<", "<=", ">", ">=")
_QUOTES = "\"'`"


@dataclass(frozen=True)
class Field:
    kind: Kind
    key: str

    def __str__(self) -> str:
        key = self.key if _plain(self.key) else f'"{self.key}"'
        return f"{self.kind}.{key}"


@dataclass(frozen=True)
class Filter:
    field: Field
    op: str  # one of = != < <= > >= like
    value: str
    quoted: bool
    text: str

    @property
    def number(self) -> float | None:
        if self.quoted:
            return None
        return dialects.parse_number(self.value)


@dataclass(frozen=True)
class SortKey:
    field: Field
    descending: bool


def parse_field(text: str, expression: str | None = None) -> tuple[Field, str]:
    """The field at the start of ``text``, and the rest of the text."""
    expr = text if expression is None else expression
    s = text.lstrip()
    head = re.match(r"([A-Za-z_]+)\.", s)
    if head and head.group(1).lower() in _KINDS:
        kind = _KINDS[head.group(1).lower()]
        rest = s[head.end() :]
    else:
        kind, rest = "attributes", s
    if rest[:1] in _QUOTES and rest:
        quote = rest[0]
        end = rest.find(quote, 1)
        if end < 0:
            raise InvalidRunFilterError(expr, f"the key quoted with {quote} is not closed")
        key, rest = rest[1:end], rest[end + 1 :]
    else:
        m = re.match(r"[^\s=!<>]+", rest)
        if not m:
            raise InvalidRunFilterError(expr, "expected a field such as metrics.f1 or params.C")
        key, rest = m.group(0), rest[m.end() :]
    if not key:
        raise InvalidRunFilterError(expr, "the key is empty")
    if kind == "attributes":
        key = key.lower()
        if key not in ATTRIBUTES:
            hint = ""
            if "." in key:
                hint = "; fields start with params., metrics., tags. or attributes."
            raise InvalidRunFilterError(
                expr,
                f"unknown attribute {key!r}; expected one of {', '.join(ATTRIBUTES)}{hint}",
            )
    return Field(kind, key), rest


def parse_filter(expression: str) -> Filter:
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidRunFilterError(str(expression), "it is empty")
    field, rest = parse_field(expression)
    rest = rest.lstrip()
    op = next((o for o in _OPERATORS if rest.startswith(o)), None)
    if op is None:
        m = re.match(r"like\b", rest, re.IGNORECASE)
        if not m:
            raise InvalidRunFilterError(
                expression, "expected an operator: =, !=, <, <=, >, >= or like"
            )
        op, rest = "like", rest[m.end() :]
    else:
        rest = rest[len(op) :]
        op = {"==": "=", "<>": "!="}.get(op, op)
    raw = rest.strip()
    quoted = len(raw) >= 2 and raw[0] in _QUOTES and raw[-1] == raw[0]
    value = raw[1:-1] if quoted else raw
    if not value and not quoted:
        raise InvalidRunFilterError(expression, "expected a value after the operator")
    flt = Filter(field, op, value, quoted, expression)
    _check_value(flt)
    return flt


def _check_value(flt: Filter) -> None:
    kind, key = flt.field.kind, flt.field.key
    if kind == "metrics":
        if flt.op == "like":
            raise InvalidRunFilterError(flt.text, "like compares text; metrics are numbers")
        if flt.number is None and flt.value.lower() not in ("inf", "-inf", "+inf"):
            raise InvalidRunFilterError(
                flt.text, f"metrics compare with numbers, and {flt.value!r} is not one"
            )
    elif kind == "attributes":
        if key in TIME_ATTRIBUTES:
            if flt.op == "like":
                raise InvalidRunFilterError(flt.text, f"{key} compares with a date, not like")
            _parse_time(flt)
        elif key == "git_dirty":
            if flt.op not in ("=", "!=") or flt.value.lower() not in ("true", "false"):
                raise InvalidRunFilterError(flt.text, "git_dirty compares = or != true/false")
        elif key == "status" and flt.op in ("=", "!=") and flt.value not in RUN_STATUSES:
            raise InvalidRunFilterError(
                flt.text, f"unknown status {flt.value!r}; one of {', '.join(RUN_STATUSES)}"
            )
    elif flt.op in _ORDERING and flt.number is None:
        raise InvalidRunFilterError(
            flt.text, f"{flt.op} on {kind} compares numbers, and {flt.value!r} is not one"
        )


def _parse_time(flt: Filter) -> datetime:
    try:
        when = datetime.fromisoformat(flt.value)
    except ValueError:
        raise InvalidRunFilterError(
            flt.text, f"{flt.value!r} is not a date or time (expected ISO 8601, 2025-01-31)"
        ) from None
    return to_utc(when)


def parse_sort(expression: str) -> SortKey:
    text = expression.strip()
    descending = False
    if text.startswith("-"):
        descending, text = True, text[1:]
    elif text.startswith("+"):
        text = text[1:]
    m = re.search(r"\s+(asc|desc)$", text, re.IGNORECASE)
    if m:
        descending = m.group(1).lower() == "desc"
        text = text[: m.start()]
    if not text:
        raise InvalidRunFilterError(expression, "expected a field to sort by")
    field, rest = parse_field(text, expression)
    if rest.strip():
        raise InvalidRunFilterError(
            expression, f"unexpected {rest.strip()!r} after the sort field (asc or desc?)"
        )
    return SortKey(field, descending)


def _plain(key: str) -> bool:
    return re.fullmatch(r"[^\s=!<>\"'`]+", key) is not None


# -- SQL ----------------------------------------------------------------------------------


def _text_value(kind: Kind, key: str) -> Any:
    table = params if kind == "params" else tags
    alias = table.alias()
    return (
        sa.select(alias.c.value)
        .where(alias.c.run_id == runs.c.id, alias.c.key == key)
        .scalar_subquery()
    )


def _metric_value(key: str) -> Any:
    alias = latest_metrics.alias()
    return (
        sa.select(alias.c.value)
        .where(alias.c.run_id == runs.c.id, alias.c.key == key)
        .scalar_subquery()
    )


def _compare(column: Any, op: str, value: Any) -> Any:
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    return column.like(value)


def filter_clause(conn: sa.Connection, flt: Filter) -> Any:
    """The WHERE clause of one filter. A param, tag or metric filter is a semi-join
    (``id IN (SELECT run_id ... WHERE key = ? AND value ...)``): one pass over that key's
    rows, not a lookup per run; a run without the key never matches, as before."""
    kind, key = flt.field.kind, flt.field.key
    if kind == "metrics":
        table = latest_metrics
        condition = _compare(table.c.value, flt.op, float(flt.value))
    elif kind in ("params", "tags"):
        table = params if kind == "params" else tags
        number = flt.number
        if number is not None and flt.op != "like":
            condition = _compare(dialects.numeric(conn, table.c.value), flt.op, number)
        else:
            condition = _compare(table.c.value, flt.op, flt.value)
    else:
        column = runs.c[key]
        if key in TIME_ATTRIBUTES:
            return _compare(column, flt.op, _parse_time(flt))
        if key == "git_dirty":
            return _compare(column, flt.op, flt.value.lower() == "true")
        return _compare(column, flt.op, flt.value)
    return runs.c.id.in_(sa.select(table.c.run_id).where(table.c.key == key, condition))


def order_columns(conn: sa.Connection, key: SortKey) -> list[Any]:
    """The values a sort key orders by, most significant first: a metric's latest value;
    a param's or tag's number (text that is not one last), then its text; an attribute."""
    kind, name = key.field.kind, key.field.key
    if kind == "metrics":
        return [_metric_value(name)]
    if kind in ("params", "tags"):
        text = _text_value(kind, name)
        return [dialects.numeric(conn, text), text]
    return [runs.c[name]]


def ordered(column: Any, descending: bool) -> Any:
    """``column`` in the direction of a sort key, runs missing the value last."""
    return (column.desc() if descending else column.asc()).nulls_last()


def order_clauses(conn: sa.Connection, key: SortKey) -> list[Any]:
    return [ordered(c, key.descending) for c in order_columns(conn, key)]
