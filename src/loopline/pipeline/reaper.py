"""Ending the pipeline runs whose process died: the pipeline side of the run reaper.

A pipeline run's liveness is its tracked run's: the runner holds that run open (with its
heartbeat) for as long as it drives the steps. When the tracker has marked it ``killed``
(no heartbeat for a while) or it ended some other way while ``ll_pipeline_runs`` still
says ``running``, the process is gone: the pipeline run becomes ``killed`` with the
tracked run's end time, and each step that was in flight (a step child run with no step
row in this pipeline run) gets a ``killed`` step row naming its tracked run, so the
history says which step the process died in. The reaped run can be resumed as usual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopline.pipeline.tables import pipeline_runs, step_runs

if TYPE_CHECKING:
    from loopline.store.stores import Stores
    from loopline.tracking import Tracker


def reap_dead_pipeline_runs(stores: Stores, tracker: Tracker | None = None) -> list[str]:
    """Mark ``killed`` the pipeline runs whose process died; returns their ids.

    Reaps dead tracked runs first (``tracker.reap_dead_runs()``), so one call brings both
    tables up to date.
    """
    from loopline.tracking import Tracker

    (tracker or Tracker(stores)).reap_dead_runs()
    return stores.db.run_write(_reap)


def abandon_pipeline_run(stores: Stores, pipeline_run_id: str, reason: str) -> bool:
    """End a pipeline run whose driving process is known to be gone (its caller holds the
    lease that process held): its tracked run and in-flight steps become ``killed`` now,
    without waiting for their heartbeats to go stale. True when it was still running."""
    from loopline.tracking.tables import runs

    def fn(conn: sa.Connection) -> bool:
        row = conn.execute(
            sa.select(pipeline_runs.c.run_id, pipeline_runs.c.status).where(
                pipeline_runs.c.id == pipeline_run_id
            )
        ).first()
        if row is None or row.status != "running":
            return False
        for where in (runs.c.id == row.run_id, runs.c.parent_id == row.run_id):
            conn.execute(
                runs.update()
                .where(where, runs.c.status == "running")
                .values(status="killed", end_time=runs.c.heartbeat_at, error=reason)
            )
        _reap(conn)
        return True

    return bool(stores.db.run_write(fn))


def _reap(conn: sa.Connection) -> list[str]:
    from loopline.store.db.events import record_event
    from loopline.tracking.tables import runs, tags

    dead = conn.execute(
        sa.select(
            pipeline_runs.c.id,
            pipeline_runs.c.run_id,
            runs.c.status,
            runs.c.end_time,
            runs.c.heartbeat_at,
            runs.c.error,
        )
        .join(runs, runs.c.id == pipeline_runs.c.run_id)
        .where(pipeline_runs.c.status == "running", runs.c.status != "running")
    ).all()
    reaped: list[str] = []
    for row in dead:
        ended = row.end_time or row.heartbeat_at
        reason = row.error or f"its process ended the run as {row.status!r}"
        error = f"the process running this pipeline died: {reason}"
        updated = conn.execute(
            pipeline_runs.update()
            .where(pipeline_runs.c.id == row.id, pipeline_runs.c.status == "running")
            .values(status="killed", ended_at=ended, error=error)
        )
        if not updated.rowcount:
            continue  # another process reaped it first
        recorded = set(
            conn.execute(
                sa.select(step_runs.c.step).where(step_runs.c.pipeline_run_id == row.id)
            ).scalars()
        )
        step_tag = tags.alias("step_tag")
        attempt_tag = tags.alias("attempt_tag")
        children = conn.execute(
            sa.select(
                runs.c.id,
                runs.c.status,
                runs.c.start_time,
                runs.c.end_time,
                runs.c.heartbeat_at,
                runs.c.error,
                step_tag.c.value.label("step"),
                attempt_tag.c.value.label("attempt"),
            )
            .join(
                step_tag,
                sa.and_(step_tag.c.run_id == runs.c.id, step_tag.c.key == "loopline.step"),
            )
            .outerjoin(
                attempt_tag,
                sa.and_(attempt_tag.c.run_id == runs.c.id, attempt_tag.c.key == "loopline.attempt"),
            )
            .where(runs.c.parent_id == row.run_id)
            .order_by(runs.c.start_time)
        ).all()
        last: dict[str, Any] = {}
        for child in children:
            if child.step not in recorded:
                last[child.step] = child  # the latest attempt of each unrecorded step
        for step, child in last.items():
            conn.execute(
                step_runs.insert().values(
                    pipeline_run_id=row.id,
                    step=step,
                    status="killed",
                    cache_key=None,
                    code_hash="",
                    inputs={},
                    params={},
                    output_format=None,
                    output_digest=None,
                    run_id=child.id,
                    attempts=int(child.attempt) if str(child.attempt or "").isdigit() else 1,
                    started_at=child.start_time,
                    ended_at=child.end_time or child.heartbeat_at or ended,
                    error=child.error or "the process died while this step ran",
                )
            )
        record_event(conn, "pipeline.reaped", row.id, {"run_id": row.run_id, "steps": sorted(last)})
        reaped.append(str(row.id))
    return reaped
