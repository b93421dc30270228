"""Run listings: a page of runs with their params, latest metrics and tags, in one query.

:meth:`Tracker.search_runs <loopline.tracking.tracker.Tracker.search_runs>` builds a full
:class:`~loopline.tracking.records.RunRecord` per run from five queries and their rows.
A listing (``loopline runs ls``, the UI's runs table and ``/api/runs``) needs less and
needs it fast, so it takes this path instead:

- One statement. The inner query is the search's own (same filters, same sort
  expressions, same limit and offset) and also selects the sort values; the outer one
  adds, per run of the page only, its params, tags and metrics aggregated into JSON text
  by the database (``json_group_object``/``group_concat`` on SQLite,
  ``json_object_agg`` on PostgreSQL), and orders the page again by the selected sort
  values. So the aggregation runs for the rows returned, never for every match.
- Metric values travel as JSON numbers that read back as the same doubles (18 digits on
  SQLite, see :data:`SQLITE_METRICS`; float8's shortest exact form on PostgreSQL), NaN
  and infinities as strings.
- Inputs and artifacts, which few runs have, come from two more small queries over the
  ids of the runs that have some (the statement says which).
- No record objects: each run is a plain dict (:class:`ListedRun`), turned into the
  compact JSON of ``runs ls --json`` by :func:`compact` or into a row of the UI.

:mod:`loopline.tracking.listing_query` holds the statement (SQLAlchemy, both dialects);
:mod:`loopline.tracking.listing_sqlite` the same for a plain listing on SQLite read with
the ``sqlite3`` module alone, which ``loopline runs ls`` uses so that it never imports
SQLAlchemy. This module imports neither.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypedDict

import orjson

from loopline.tracking.records import json_number

#: How old a running run's heartbeat must be for its process to be taken for dead (the
#: default ``dead_after`` of :class:`~loopline.tracking.tracker.Tracker`).
DEAD_AFTER_S = 60.0
#: The columns of ``ll_runs`` a listing reads (all of them), in the order it reads them.
RUN_COLUMNS = (
    "id",
    "experiment",
    "name",
    "status",
    "parent_id",
    "start_time",
    "end_time",
    "heartbeat_at",
    "user",
    "source",
    "git_commit",
    "git_dirty",
    "error",
)
#: Where a row of a listing statement says whether the run has inputs, and artifacts
#: (after the run columns and the JSON of params, tags, metric values and steps).
HAS_INPUTS = len(RUN_COLUMNS) + 4
HAS_ARTIFACTS = HAS_INPUTS + 1


class ListedRun(TypedDict):
    """One run of a listing: its attributes, params, tags, latest metric values, the
    (latest step, number of points) of each metric logged more than once or at a step
    other than 0 (a metric logged once at step 0 has no entry), inputs and artifacts."""

    id: str
    experiment: str
    name: str | None
    status: str
    parent_id: str | None
    start_time: datetime
    end_time: datetime | None
    heartbeat_at: datetime | None
    user: str | None
    source: str | None
    git_commit: str | None
    git_dirty: bool | None
    error: str | None
    params: dict[str, str]
    metrics: dict[str, float]
    steps: dict[str, tuple[int, int]]
    tags: dict[str, str]
    inputs: list[dict[str, str]]
    artifacts: list[dict[str, Any]]


#: SQLite: the latest metric values of a run (from ``ll_latest_metrics``) as one JSON
#: object of numbers written with 18 significant digits, which read back as the same
#: doubles (SQLite formats numbers itself: its 17th digit is sometimes off for large
#: exponents, and its JSON functions write 15 digits and a bare ``Inf``). A NULL value
#: (NaN) and infinities are written as the strings "NaN", "Infinity", "-Infinity".
SQLITE_METRICS = (
    "'{' || group_concat(json_quote(key) || ':' || CASE "
    "WHEN value IS NULL THEN '\"NaN\"' "
    "WHEN value > 1.7976931348623157e308 THEN '\"Infinity\"' "
    "WHEN value < -1.7976931348623157e308 THEN '\"-Infinity\"' "
    "ELSE printf('%!.18g', value) END, ',') || '}'"
)
#: SQLite: ``{key: [step, points]}`` of a run's metrics with more than one point or
#: logged at a step other than 0 (with ``WHERE`` :data:`STEPS_WORTH_LISTING`).
SQLITE_STEPS = "json_group_object(key, json_array(step, points))"
STEPS_WORTH_LISTING = "(step <> 0 OR points <> 1)"


def listed_run(
    row: Sequence[Any], when: Callable[[Any], datetime | None], loads: Callable[[Any], Any]
) -> ListedRun:
    """A run from a row of a listing statement: the :data:`RUN_COLUMNS`, then the JSON
    text of its params, tags, metric values and metric steps, each NULL when it has none
    (then whether it has inputs and artifacts, read by the caller, which adds them).
    ``when`` reads a stored time as an aware UTC datetime."""
    metrics: dict[str, Any] = loads(row[15]) if row[15] else {}
    if not all(v.__class__ is float for v in metrics.values()):
        # "NaN", "Infinity", "-Infinity"; on PostgreSQL also whole numbers (1.0 is 1)
        # and zeros (as text, for the sign).
        for key, value in metrics.items():
            if value.__class__ is not float:
                metrics[key] = float(value)
    start = when(row[5])
    if start is None:
        raise ValueError(f"run {row[0]} has no start time")
    return {
        "id": row[0],
        "experiment": row[1],
        "name": row[2],
        "status": row[3],
        "parent_id": row[4],
        "start_time": start,
        "end_time": when(row[6]),
        "heartbeat_at": when(row[7]),
        "user": row[8],
        "source": row[9],
        "git_commit": row[10],
        "git_dirty": None if row[11] is None else bool(row[11]),
        "error": row[12],
        "params": _sorted(loads(row[13])) if row[13] else {},
        "tags": _sorted(loads(row[14])) if row[14] else {},
        "metrics": _sorted(metrics),
        "steps": {k: (int(s), int(n)) for k, (s, n) in loads(row[16]).items()} if row[16] else {},
        "inputs": [],
        "artifacts": [],
    }


def _sorted(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with its keys in order (they usually come in order already)."""
    keys = list(values)
    if keys == sorted(keys):
        return values
    return {k: values[k] for k in sorted(keys)}


def duration(run: ListedRun) -> float | None:
    """Seconds from start to end; None while the run has not ended."""
    end = run["end_time"]
    return None if end is None else (end - run["start_time"]).total_seconds()


def utc_text(moment: datetime) -> str:
    """A UTC time as ISO 8601 with a ``Z``: ``2026-01-31T09:30:00.250000Z``."""
    return moment.replace(tzinfo=None).isoformat() + "Z"


def compact(run: ListedRun) -> dict[str, Any]:
    """A run as ``loopline runs ls --json`` prints it (docs/tracking.md): the attributes
    that are set (no nulls), times in UTC with a ``Z``, params, metrics and tags always
    (``{}`` when none), ``metric_steps`` only for metrics logged more than once or at a
    step other than 0, ``heartbeat_at`` only while the run is running, and inputs and
    artifacts only when there are some."""
    out: dict[str, Any] = {
        "id": run["id"],
        "experiment": run["experiment"],
        "status": run["status"],
        "start_time": utc_text(run["start_time"]),
    }
    if run["name"] is not None:
        out["name"] = run["name"]
    if run["parent_id"] is not None:
        out["parent_id"] = run["parent_id"]
    end = run["end_time"]
    if end is not None:
        out["end_time"] = utc_text(end)
        out["duration_s"] = (end - run["start_time"]).total_seconds()
    heartbeat = run["heartbeat_at"]
    if run["status"] == "running" and heartbeat is not None:
        out["heartbeat_at"] = utc_text(heartbeat)
    for key, value in (
        ("user", run["user"]),
        ("source", run["source"]),
        ("git_commit", run["git_commit"]),
        ("git_dirty", run["git_dirty"]),
        ("error", run["error"]),
    ):
        if value is not None:
            out[key] = value
    out["params"] = run["params"]
    metrics = run["metrics"]
    if all(math.isfinite(v) for v in metrics.values()):
        out["metrics"] = metrics
    else:
        out["metrics"] = {k: json_number(v) for k, v in metrics.items()}
    out["tags"] = run["tags"]
    if run["steps"]:
        out["metric_steps"] = {k: list(s) for k, s in run["steps"].items()}
    if run["inputs"]:
        out["inputs"] = run["inputs"]
    if run["artifacts"]:
        out["artifacts"] = [
            {**a, "created_at": utc_text(a["created_at"])} for a in run["artifacts"]
        ]
    return out


def dumps_listing(listed: Sequence[ListedRun]) -> bytes:
    """The JSON array of ``runs ls --json``: one compact run per line."""
    if not listed:
        return b"[]\n"
    dumps = orjson.dumps
    return b"[\n" + b",\n".join(dumps(compact(r)) for r in listed) + b"\n]\n"
