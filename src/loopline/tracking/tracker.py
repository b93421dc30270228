"""The tracker: starts runs and reads them back (one run, a search, a metric's history).

A :class:`Tracker` wraps a project's :class:`~loopline.store.stores.Stores`; it holds no
global state, so several trackers (several projects) can live in one process.
"""

from __future__ import annotations

import getpass
import math
import os
import re
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopline.store.db import dialects
from loopline.store.db.types import to_utc
from loopline.tracking.errors import RunNotFoundError, TrackingArgumentError
from loopline.tracking.gitinfo import NO_GIT, git_info
from loopline.tracking.listing import DEAD_AFTER_S
from loopline.tracking.records import (
    MetricPoint,
    MetricSummary,
    RunArtifact,
    RunInput,
    RunRecord,
)
from loopline.tracking.run import Run
from loopline.tracking.tables import (
    RUN_STATUSES,
    latest_metrics,
    metrics,
    run_artifacts,
    run_inputs,
    runs,
)
from loopline.tracking.tables import params as params_table
from loopline.tracking.tables import tags as tags_table
from loopline.tracking.values import check_key, param_text

if TYPE_CHECKING:
    from loopline.store.stores import Stores
    from loopline.tracking.listing import ListedRun

_HEX = re.compile(r"[0-9a-f]{1,32}")
_CHUNK = 500


class Tracker:
    """Runs of one project.

    ``heartbeat_interval``: how often a live run proves it is alive (and writes what it
    buffered). ``dead_after``: how old a heartbeat must be for :meth:`reap_dead_runs` to
    declare its run killed; keep it several intervals long. ``batch_size``: buffered
    points that wake the writer early; ``max_buffer``: points at which a logging call
    writes them itself rather than let the buffer grow.
    """

    def __init__(
        self,
        stores: Stores,
        *,
        heartbeat_interval: float = 5.0,
        dead_after: float = DEAD_AFTER_S,
        batch_size: int = 1000,
        max_buffer: int = 50_000,
    ) -> None:
        if heartbeat_interval <= 0:
            raise TrackingArgumentError(
                f"heartbeat_interval must be > 0 seconds, not {heartbeat_interval}",
                argument="heartbeat_interval",
                value=heartbeat_interval,
            )
        if dead_after < 2 * heartbeat_interval:
            raise TrackingArgumentError(
                f"dead_after ({dead_after} s) must be at least twice heartbeat_interval "
                f"({heartbeat_interval} s), or live runs would be declared dead",
                argument="dead_after",
                value=dead_after,
            )
        if batch_size < 1 or max_buffer < batch_size:
            raise TrackingArgumentError(
                f"Need 1 <= batch_size <= max_buffer, not {batch_size} and {max_buffer}",
                argument="batch_size",
                value=batch_size,
            )
        self.stores = stores
        self.heartbeat_interval = heartbeat_interval
        self.dead_after = dead_after
        self.batch_size = batch_size
        self.max_buffer = max_buffer

    # -- starting --------------------------------------------------------------------------

    def start_run(
        self,
        experiment: str = "default",
        name: str | None = None,
        *,
        params: Mapping[str, object] | None = None,
        tags: Mapping[str, object] | None = None,
        parent: Run | str | None = None,
        code_dir: Path | None = None,
        capture_git: bool = True,
        source: str | None = None,
    ) -> Run:
        """Start a run and return its handle; use it as a context manager or call
        :meth:`Run.finish`.

        ``code_dir`` is where the user's code lives, for its git commit and dirty flag
        (default: the folder of the running script, else the working directory).
        ``source`` names the entry point (default: the running script's path).
        ``parent`` is a run handle, or the id (or unique id prefix) of a run.
        """
        experiment = _check_label("experiment", experiment, required=True)
        name = _check_label("run name", name, required=False)
        param_values = {check_key("param", k): param_text(v) for k, v in (params or {}).items()}
        tag_values = {check_key("tag", k): param_text(v) for k, v in (tags or {}).items()}
        if isinstance(parent, Run):
            parent_id: str | None = parent.id
        elif parent is None:
            parent_id = None
        else:
            parent_id = self.resolve_run_id(parent)
        script = _script_path()
        if source is None and script is not None:
            source = str(script)
        if capture_git:
            where = code_dir or (script.parent if script is not None else Path.cwd())
            git = git_info(Path(where))
        else:
            git = NO_GIT
        run_id = uuid.uuid4().hex
        started = datetime.now(UTC)
        user = _user()

        def write(conn: sa.Connection) -> None:
            self._reap(conn, self.dead_after)
            conn.execute(
                runs.insert().values(
                    id=run_id,
                    experiment=experiment,
                    name=name,
                    parent_id=parent_id,
                    status="running",
                    start_time=started,
                    heartbeat_at=dialects.now(conn),
                    git_commit=git.commit,
                    git_dirty=git.dirty,
                    source=source,
                    user=user,
                )
            )
            if param_values:
                conn.execute(
                    sa.insert(params_table),
                    [{"run_id": run_id, "key": k, "value": v} for k, v in param_values.items()],
                )
            if tag_values:
                conn.execute(
                    sa.insert(tags_table),
                    [{"run_id": run_id, "key": k, "value": v} for k, v in tag_values.items()],
                )

        self.stores.db.run_write(write)
        run = Run(
            self,
            run_id,
            experiment,
            name,
            parent_id,
            param_values,
            heartbeat_interval=self.heartbeat_interval,
            batch_size=self.batch_size,
            max_buffer=self.max_buffer,
        )
        run._start()
        return run

    # -- dead runs -------------------------------------------------------------------------

    def reap_dead_runs(self, timeout_s: float | None = None) -> list[str]:
        """Mark ``killed`` every running run whose heartbeat is older than ``timeout_s``
        (default ``dead_after``): its process is gone. Returns their ids."""
        timeout = self.dead_after if timeout_s is None else timeout_s
        if timeout <= 0:
            raise TrackingArgumentError(
                f"timeout_s must be > 0 seconds, not {timeout}", argument="timeout_s", value=timeout
            )
        return self.stores.db.run_write(lambda conn: self._reap(conn, timeout))

    def _reap(self, conn: sa.Connection, timeout: float) -> list[str]:
        cutoff = dialects.before_now(conn, timeout)
        stale = [runs.c.status == "running", runs.c.heartbeat_at < cutoff]
        ids = list(conn.execute(sa.select(runs.c.id).where(*stale)).scalars())
        if not ids:
            return []
        conn.execute(
            runs.update()
            .where(runs.c.id.in_(ids), *stale)
            .values(
                status="killed",
                end_time=runs.c.heartbeat_at,
                error=f"no heartbeat for over {timeout:g} s: the process running it ended "
                "without finishing it (killed, crashed, or its machine stopped)",
            )
        )
        from loopline.store.db.events import record_event

        for run_id in ids:
            record_event(conn, "run.reaped", run_id, {"timeout_s": timeout})
        return ids

    # -- reading ---------------------------------------------------------------------------

    def resolve_run_id(self, run_id_or_prefix: str) -> str:
        """The full id of the one run whose id starts with ``run_id_or_prefix``."""
        wanted = run_id_or_prefix.strip().lower() if isinstance(run_id_or_prefix, str) else ""
        if not _HEX.fullmatch(wanted):
            raise RunNotFoundError(str(run_id_or_prefix))
        with self.stores.db.read() as conn:
            if len(wanted) == 32:
                query = sa.select(runs.c.id).where(runs.c.id == wanted)
            else:
                query = (
                    sa.select(runs.c.id)
                    .where(runs.c.id.like(wanted + "%"))
                    .order_by(runs.c.id)
                    .limit(11)
                )
            found = list(conn.execute(query).scalars())
        if not found:
            raise RunNotFoundError(run_id_or_prefix)
        if len(found) > 1:
            raise RunNotFoundError(run_id_or_prefix, tuple(found))
        return str(found[0])

    def get_run(self, run_id_or_prefix: str) -> RunRecord:
        """One run with everything it logged (latest value of each metric)."""
        run_id = self.resolve_run_id(run_id_or_prefix)
        with self.stores.db.read() as conn:
            rows = conn.execute(sa.select(runs).where(runs.c.id == run_id)).all()
            records = _records(conn, rows)
        if not records:
            raise RunNotFoundError(run_id_or_prefix)
        return records[0]

    def search_runs(
        self,
        *,
        experiment: str | None = None,
        filters: Sequence[str] = (),
        order_by: Sequence[str] = (),
        status: str | Sequence[str] | None = None,
        parent_id: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs matching every filter, sorted (default: newest first).

        Filters and sort keys are text; see :mod:`loopline.tracking.search` for the syntax
        (``"metrics.f1 >= 0.8"``, ``"params.model = rf"``, ``"metrics.f1 desc"``).
        ``offset`` skips that many matching runs first (pages of ``limit`` runs).
        """
        from loopline.tracking import search  # only readers need the filter parser

        sorting = [search.parse_sort(s) for s in _as_list(order_by)]
        _check_page(limit, offset)
        with self.stores.db.read() as conn:
            dialects.prepare(conn)
            query = self._matching(conn, sa.select(runs), experiment, filters, status, parent_id)
            for key in sorting:
                query = query.order_by(*search.order_clauses(conn, key))
            query = query.order_by(runs.c.start_time.desc(), runs.c.id.desc())
            if limit is not None:
                query = query.limit(limit)
            if offset:
                query = query.offset(offset)
            rows = conn.execute(query).all()
            return _records(conn, rows)

    def list_runs(
        self,
        *,
        experiment: str | None = None,
        filters: Sequence[str] = (),
        order_by: Sequence[str] = (),
        status: str | Sequence[str] | None = None,
        parent_id: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[ListedRun]:
        """The runs :meth:`search_runs` finds with these arguments, in its order, as
        listings (plain dicts of attributes, params, tags, latest metric values with
        their step and number of points, inputs and artifacts) read in one statement
        (see :mod:`loopline.tracking.listing`): the path of ``loopline runs ls`` and
        the UI's runs table, several times faster than full records on large pages."""
        from loopline.tracking import listing_query, search

        sorting = [search.parse_sort(s) for s in _as_list(order_by)]
        _check_page(limit, offset)
        with self.stores.db.read() as conn:
            dialects.prepare(conn)
            matching = self._matching(conn, sa.select(runs), experiment, filters, status, parent_id)
            if dialects.is_postgres(conn):
                # The correlated aggregates make the planner's estimate large enough for
                # JIT compilation, which costs far more (about 0.2 s) than the query.
                conn.exec_driver_sql("SET LOCAL jit = off")
            query = listing_query.page_query(conn, matching, sorting, limit, offset)
            return listing_query.fetch_page(conn, query)

    def count_runs(
        self,
        *,
        experiment: str | None = None,
        filters: Sequence[str] = (),
        status: str | Sequence[str] | None = None,
        parent_id: str | None = None,
    ) -> int:
        """How many runs :meth:`search_runs` would find with these arguments and no limit."""
        with self.stores.db.read() as conn:
            dialects.prepare(conn)
            query = self._matching(
                conn,
                sa.select(sa.func.count()).select_from(runs),
                experiment,
                filters,
                status,
                parent_id,
            )
            return int(conn.execute(query).scalar() or 0)

    def _matching(
        self,
        conn: sa.Connection,
        query: Any,
        experiment: str | None,
        filters: Sequence[str],
        status: str | Sequence[str] | None,
        parent_id: str | None,
    ) -> Any:
        from loopline.tracking import search

        parsed = [search.parse_filter(f) for f in _as_list(filters)]
        statuses = _statuses(status)
        if experiment is not None:
            query = query.where(runs.c.experiment == experiment)
        if statuses:
            query = query.where(runs.c.status.in_(statuses))
        if parent_id is not None:
            query = query.where(runs.c.parent_id == self.resolve_run_id(parent_id))
        for flt in parsed:
            query = query.where(search.filter_clause(conn, flt))
        return query

    def experiments(self) -> list[str]:
        """The names of every experiment with a run, sorted."""
        with self.stores.db.read() as conn:
            query = sa.select(runs.c.experiment).distinct().order_by(runs.c.experiment)
            return [str(name) for name in conn.execute(query).scalars()]

    def run_keys(self, experiment: str | None = None) -> dict[str, list[str]]:
        """The param, metric and tag keys logged by any run (of ``experiment``), sorted:
        ``{"params": [...], "metrics": [...], "tags": [...]}``."""
        out: dict[str, list[str]] = {}
        with self.stores.db.read() as conn:
            for kind, table in (
                ("params", params_table),
                ("metrics", latest_metrics),
                ("tags", tags_table),
            ):
                query = sa.select(table.c.key).distinct().order_by(table.c.key)
                if experiment is not None:
                    query = query.where(
                        table.c.run_id.in_(
                            sa.select(runs.c.id).where(runs.c.experiment == experiment)
                        )
                    )
                out[kind] = [str(k) for k in conn.execute(query).scalars()]
        return out

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every point of metric ``key`` of the run, by step (then time of logging)."""
        full_id = self.resolve_run_id(run_id)
        with self.stores.db.read() as conn:
            rows = conn.execute(
                sa.select(metrics.c.step, metrics.c.timestamp, metrics.c.value)
                .where(metrics.c.run_id == full_id, metrics.c.key == key)
                .order_by(metrics.c.step, metrics.c.timestamp, metrics.c.id)
            ).all()
        return [MetricPoint(int(s), float(t), _float(v)) for s, t, v in rows]

    def metric_histories(
        self, run_ids: Sequence[str], keys: Sequence[str] | None = None
    ) -> dict[str, dict[str, list[MetricPoint]]]:
        """Every point of the runs' metrics (or of ``keys``), by run id then key, each in
        the order of :meth:`metric_history`; run ids must be full ids."""
        out: dict[str, dict[str, list[MetricPoint]]] = {run_id: {} for run_id in run_ids}
        with self.stores.db.read() as conn:
            for chunk in _chunks(list(run_ids)):
                query = sa.select(
                    metrics.c.run_id,
                    metrics.c.key,
                    metrics.c.step,
                    metrics.c.timestamp,
                    metrics.c.value,
                ).where(metrics.c.run_id.in_(chunk))
                if keys is not None:
                    query = query.where(metrics.c.key.in_(list(keys)))
                query = query.order_by(
                    metrics.c.run_id,
                    metrics.c.key,
                    metrics.c.step,
                    metrics.c.timestamp,
                    metrics.c.id,
                )
                for run_id, key, step, ts, value in conn.execute(query):
                    out[run_id].setdefault(key, []).append(
                        MetricPoint(int(step), float(ts), _float(value))
                    )
        return out


def _records(conn: sa.Connection, rows: Sequence[sa.Row[Any]]) -> list[RunRecord]:
    """Full records of ``rows`` of ll_runs, in their order, in a few queries."""
    ids = [row.id for row in rows]
    param_map: dict[str, dict[str, str]] = {i: {} for i in ids}
    tag_map: dict[str, dict[str, str]] = {i: {} for i in ids}
    summaries: dict[str, dict[str, MetricSummary]] = {i: {} for i in ids}
    input_map: dict[str, list[RunInput]] = {i: [] for i in ids}
    artifact_map: dict[str, list[RunArtifact]] = {i: [] for i in ids}
    for chunk in _chunks(ids):
        # Plain tuples of the columns needed, fetched at once (``all``: one fetchall, not
        # a fetchone per row): most of the time of a large page goes to reading these.
        for run_id, key, value in conn.execute(
            sa.select(params_table.c.run_id, params_table.c.key, params_table.c.value)
            .where(params_table.c.run_id.in_(chunk))
            .order_by(params_table.c.key)
        ).all():
            param_map[run_id][key] = value
        for run_id, key, value in conn.execute(
            sa.select(tags_table.c.run_id, tags_table.c.key, tags_table.c.value)
            .where(tags_table.c.run_id.in_(chunk))
            .order_by(tags_table.c.key)
        ).all():
            tag_map[run_id][key] = value
        lm = latest_metrics.c
        for run_id, key, value, step, ts, points in conn.execute(
            sa.select(lm.run_id, lm.key, lm.value, lm.step, lm.timestamp, lm.points)
            .where(lm.run_id.in_(chunk))
            .order_by(lm.key)
        ).all():
            summaries[run_id][key] = MetricSummary(
                key, math.nan if value is None else value, step, ts, points
            )
        for r in conn.execute(
            sa.select(run_inputs)
            .where(run_inputs.c.run_id.in_(chunk))
            .order_by(run_inputs.c.kind, run_inputs.c.name, run_inputs.c.version)
        ):
            input_map[r.run_id].append(RunInput(r.kind, r.name, r.version, r.digest, r.role))
        for r in conn.execute(
            sa.select(run_artifacts)
            .where(run_artifacts.c.run_id.in_(chunk))
            .order_by(run_artifacts.c.name)
        ):
            created = to_utc(r.created_at)
            assert created is not None
            artifact_map[r.run_id].append(RunArtifact(r.name, r.digest, int(r.size), created))
    out = []
    for row in rows:
        start = to_utc(row.start_time)
        assert start is not None
        out.append(
            RunRecord(
                id=row.id,
                experiment=row.experiment,
                name=row.name,
                status=row.status,
                parent_id=row.parent_id,
                start_time=start,
                end_time=to_utc(row.end_time),
                params=param_map[row.id],
                metrics={k: s.value for k, s in summaries[row.id].items()},
                tags=tag_map[row.id],
                git_commit=row.git_commit,
                git_dirty=row.git_dirty,
                inputs=input_map[row.id],
                artifacts=artifact_map[row.id],
                error=row.error,
                source=row.source,
                user=row.user,
                heartbeat_at=to_utc(row.heartbeat_at),
                metric_summaries=summaries[row.id],
            )
        )
    return out


def _check_page(limit: int | None, offset: int) -> None:
    if limit is not None and limit < 0:
        raise TrackingArgumentError(
            f"limit must be >= 0, not {limit}", argument="limit", value=limit
        )
    if offset < 0:
        raise TrackingArgumentError(
            f"offset must be >= 0, not {offset}", argument="offset", value=offset
        )


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _as_list(values: Sequence[str] | str) -> list[str]:
    if isinstance(values, str):  # one expression, not its characters
        return [values]
    return list(values)


def _statuses(status: str | Sequence[str] | None) -> list[str]:
    if status is None:
        return []
    wanted = [status] if isinstance(status, str) else list(status)
    for s in wanted:
        if s not in RUN_STATUSES:
            raise TrackingArgumentError(
                f"Unknown run status {s!r}; expected one of {', '.join(RUN_STATUSES)}",
                argument="status",
                value=s,
            )
    return wanted


def _check_label(what: str, value: str | None, *, required: bool) -> Any:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise TrackingArgumentError(
            f"Invalid {what} {value!r}: expected a non-empty string of at most 255 characters",
            argument=what,
            value=value,
        )
    return value


def _script_path() -> Path | None:
    """The script this process runs (``python path/to/script.py``, ``python -m mod``)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if not argv0 or argv0 == "-c":
        return None
    try:
        path = Path(argv0)
        return path.resolve() if path.is_file() else None
    except OSError:
        return None


def _user() -> str | None:
    try:
        return getpass.getuser()[:128]
    except (KeyError, OSError):
        return str(os.getuid()) if hasattr(os, "getuid") else None
