"""The listing statement of :mod:`loopline.tracking.listing` in SQLAlchemy, for SQLite and
PostgreSQL: the search's own filters and sort, the page's params, tags and metrics
aggregated into JSON text by the database, inputs and artifacts (of the runs that have
some, which the statement tells) in two small queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from loopline.store.db.types import to_utc
from loopline.tracking.listing import (
    HAS_ARTIFACTS,
    HAS_INPUTS,
    RUN_COLUMNS,
    SQLITE_METRICS,
    SQLITE_STEPS,
    ListedRun,
    listed_run,
)
from loopline.tracking.search import SortKey, order_columns, ordered
from loopline.tracking.tables import latest_metrics, params, run_artifacts, run_inputs, runs, tags

_CHUNK = 500


def page_query(
    conn: sa.Connection,
    matching: Any,
    sorting: Sequence[SortKey],
    limit: int | None,
    offset: int,
) -> Any:
    """The listing statement over ``matching`` (a ``select(ll_runs)`` with the search's
    WHERE clauses): the page, sorted as :meth:`Tracker.search_runs` sorts (the inner
    query, which also selects the sort values), then per run of the page its params, tags
    and metrics as JSON text, ordered again by those selected values."""
    keys: list[tuple[str, bool]] = []
    inner = matching
    for key in sorting:
        for column in order_columns(conn, key):
            label = f"ll_sort_{len(keys)}"
            inner = inner.add_columns(column.label(label))
            keys.append((label, key.descending))
            inner = inner.order_by(ordered(column, key.descending))
    inner = inner.order_by(runs.c.start_time.desc(), runs.c.id.desc())
    if limit is not None:
        inner = inner.limit(limit)
    if offset:
        inner = inner.offset(offset)
    page = inner.subquery("ll_page")
    lm = latest_metrics.c
    if conn.dialect.name == "postgresql":
        # float8 in JSON is its shortest exact form (PostgreSQL 12+), NaN and infinities
        # strings. Zeros go as text, as a JSON -0 reads back as the integer 0; NULL
        # stands for NaN.
        value = sa.case(
            (lm.value.is_(None), sa.func.to_json(sa.cast(sa.literal("NaN"), sa.Text()))),
            (lm.value == 0, sa.func.to_json(sa.cast(lm.value, sa.Text()))),
            else_=sa.func.to_json(lm.value),
        )
        metrics: Any = sa.func.json_object_agg(lm.key, value)
        steps: Any = sa.func.json_object_agg(lm.key, sa.func.json_build_array(lm.step, lm.points))
        text_object: Any = sa.func.json_object_agg
    else:
        metrics = sa.literal_column(SQLITE_METRICS)
        steps = sa.literal_column(SQLITE_STEPS)
        text_object = sa.func.json_group_object

    def gathered(table: sa.Table, aggregate: Any, name: str, *where: Any) -> Any:
        return (
            sa.select(sa.cast(aggregate, sa.Text()))
            .where(table.c.run_id == page.c.id, *where)
            .scalar_subquery()
            .label(name)
        )

    query = sa.select(
        *(page.c[c] for c in RUN_COLUMNS),
        gathered(params, text_object(params.c.key, params.c.value), "ll_params"),
        gathered(tags, text_object(tags.c.key, tags.c.value), "ll_tags"),
        gathered(latest_metrics, metrics, "ll_metrics"),
        gathered(latest_metrics, steps, "ll_steps", sa.or_(lm.step != 0, lm.points != 1)),
        sa.exists().where(run_inputs.c.run_id == page.c.id).label("ll_has_inputs"),
        sa.exists().where(run_artifacts.c.run_id == page.c.id).label("ll_has_artifacts"),
    )
    for label, descending in keys:
        query = query.order_by(ordered(page.c[label], descending))
    return query.order_by(page.c.start_time.desc(), page.c.id.desc())


def fetch_page(conn: sa.Connection, query: Any) -> list[ListedRun]:
    """Run :func:`page_query`'s statement; the runs in its order, with their inputs and
    artifacts."""
    loads = orjson.loads
    rows = conn.execute(query).all()
    out = [listed_run(row, to_utc, loads) for row in rows]
    by_id = {r["id"]: r for r in out}
    ri, ra = run_inputs.c, run_artifacts.c
    # Only the runs that have some (the statement says which): usually few or none.
    with_inputs = [row[0] for row in rows if row[HAS_INPUTS]]
    for start in range(0, len(with_inputs), _CHUNK):
        for run_id, kind, name, version, digest, role in conn.execute(
            sa.select(ri.run_id, ri.kind, ri.name, ri.version, ri.digest, ri.role)
            .where(ri.run_id.in_(with_inputs[start : start + _CHUNK]))
            .order_by(ri.kind, ri.name, ri.version)
        ).all():
            by_id[run_id]["inputs"].append(
                {"kind": kind, "name": name, "version": version, "digest": digest, "role": role}
            )
    with_artifacts = [row[0] for row in rows if row[HAS_ARTIFACTS]]
    for start in range(0, len(with_artifacts), _CHUNK):
        for run_id, name, digest, size, created in conn.execute(
            sa.select(ra.run_id, ra.name, ra.digest, ra.size, ra.created_at)
            .where(ra.run_id.in_(with_artifacts[start : start + _CHUNK]))
            .order_by(ra.name)
        ).all():
            by_id[run_id]["artifacts"].append(
                {"name": name, "digest": digest, "size": int(size), "created_at": to_utc(created)}
            )
    return out
