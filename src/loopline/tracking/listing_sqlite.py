"""A plain listing read straight from the SQLite file with the ``sqlite3`` module.

``loopline runs ls`` without filters, sort keys or a parent, on the embedded store, spends
most of its process importing SQLAlchemy otherwise. This reader needs none of it: it runs
the statement of :mod:`loopline.tracking.listing_query` written out for SQLite (the same
aggregation, the same order: newest first, then by id) in one read transaction.

It reads only a store in its everyday state and otherwise answers ``None``, so that the
caller takes the regular path, which then does what that state calls for (reaping, or the
error that names the problem and its fix):

- the metadata URL is an SQLite file that exists and opens;
- its schema is at this loopline's revision (:data:`loopline.store.revision.HEAD`);
- it is bound to this artifact store, or not bound yet;
- no run is waiting to be reaped: no ``running`` run whose heartbeat is older than
  :data:`~loopline.tracking.listing.DEAD_AFTER_S`, no running pipeline run whose
  tracked run has ended.

It never writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from loopline.store.revision import HEAD
from loopline.tracking.listing import (
    DEAD_AFTER_S,
    HAS_ARTIFACTS,
    HAS_INPUTS,
    RUN_COLUMNS,
    SQLITE_METRICS,
    SQLITE_STEPS,
    STEPS_WORTH_LISTING,
    ListedRun,
    listed_run,
)

_CHUNK = 500
#: How SQLAlchemy writes a UTC time into SQLite (the ``UTCDateTime`` columns).
_STORED_TIME = "%Y-%m-%d %H:%M:%S.%f"


def read_listing(
    path: Path,
    artifacts_url: str,
    *,
    busy_timeout: float,
    experiment: str | None,
    statuses: Sequence[str],
    limit: int | None,
) -> list[ListedRun] | None:
    """The newest ``limit`` runs (of ``experiment``, with one of ``statuses``) of the
    SQLite database at ``path``, or None when the regular path has to answer."""
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        conn.execute("BEGIN")
        if not _everyday(conn, HEAD, artifacts_url):
            return None
        return _read(conn, experiment, statuses, limit)
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _everyday(conn: sqlite3.Connection, revision: str, artifacts_url: str) -> bool:
    version = conn.execute("SELECT version_num FROM loopline_alembic_version").fetchall()
    if [str(v) for (v,) in version] != [revision]:
        return False
    bound = conn.execute("SELECT artifacts_url FROM ll_project WHERE key = 'project'").fetchone()
    if bound is not None and str(bound[0]).rstrip("/") != artifacts_url.rstrip("/"):
        return False
    cutoff = (datetime.now(UTC) - timedelta(seconds=DEAD_AFTER_S)).replace(tzinfo=None)
    stale = conn.execute(
        "SELECT 1 FROM ll_runs WHERE status = 'running' AND heartbeat_at < ? LIMIT 1",
        (cutoff.strftime(_STORED_TIME),),
    ).fetchone()
    if stale is not None:
        return False
    ended = conn.execute(
        "SELECT 1 FROM ll_pipeline_runs JOIN ll_runs ON ll_runs.id = ll_pipeline_runs.run_id "
        "WHERE ll_pipeline_runs.status = 'running' AND ll_runs.status != 'running' LIMIT 1"
    ).fetchone()
    return ended is None


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _read(
    conn: sqlite3.Connection,
    experiment: str | None,
    statuses: Sequence[str],
    limit: int | None,
) -> list[ListedRun]:
    where: list[str] = []
    args: list[object] = []
    if experiment is not None:
        where.append("experiment = ?")
        args.append(experiment)
    if statuses:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        args.extend(statuses)
    args.append(-1 if limit is None else limit)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    columns = ", ".join(f'p."{c}"' for c in RUN_COLUMNS)
    sql = (
        f"SELECT {columns}, "
        "(SELECT json_group_object(key, value) FROM ll_params WHERE run_id = p.id), "
        "(SELECT json_group_object(key, value) FROM ll_tags WHERE run_id = p.id), "
        f"(SELECT {SQLITE_METRICS} FROM ll_latest_metrics WHERE run_id = p.id), "
        f"(SELECT {SQLITE_STEPS} FROM ll_latest_metrics "
        f"WHERE run_id = p.id AND {STEPS_WORTH_LISTING}), "
        "EXISTS (SELECT 1 FROM ll_run_inputs WHERE run_id = p.id), "
        "EXISTS (SELECT 1 FROM ll_run_artifacts WHERE run_id = p.id) "
        f"FROM (SELECT * FROM ll_runs {clause}"
        "ORDER BY start_time DESC, id DESC LIMIT ?) AS p "
        "ORDER BY p.start_time DESC, p.id DESC"
    )
    loads = orjson.loads
    rows = conn.execute(sql, args).fetchall()
    out = [listed_run(row, _when, loads) for row in rows]
    by_id = {r["id"]: r for r in out}
    with_inputs = [row[0] for row in rows if row[HAS_INPUTS]]
    for start in range(0, len(with_inputs), _CHUNK):
        chunk = with_inputs[start : start + _CHUNK]
        for run_id, kind, name, version, digest, role in conn.execute(
            "SELECT run_id, kind, name, version, digest, role FROM ll_run_inputs "
            f"WHERE run_id IN ({', '.join('?' * len(chunk))}) ORDER BY kind, name, version",
            chunk,
        ).fetchall():
            by_id[run_id]["inputs"].append(
                {"kind": kind, "name": name, "version": version, "digest": digest, "role": role}
            )
    with_artifacts = [row[0] for row in rows if row[HAS_ARTIFACTS]]
    for start in range(0, len(with_artifacts), _CHUNK):
        chunk = with_artifacts[start : start + _CHUNK]
        for run_id, name, digest, size, created in conn.execute(
            "SELECT run_id, name, digest, size, created_at FROM ll_run_artifacts "
            f"WHERE run_id IN ({', '.join('?' * len(chunk))}) ORDER BY name",
            chunk,
        ).fetchall():
            by_id[run_id]["artifacts"].append(
                {"name": name, "digest": digest, "size": int(size), "created_at": _when(created)}
            )
    return out
