"""Tables of the tracking layer: runs and what they logged.

- ``ll_runs``: one row per run; ``heartbeat_at`` is refreshed by the live process so a run
  whose process vanished can be told apart from one still going.
- ``ll_params`` / ``ll_tags``: one row per key (params are immutable, tags overwrite).
- ``ll_metrics``: every logged point (``timestamp`` in seconds since the epoch, ``value``
  NULL for NaN, so that NaN sorts and compares the same on SQLite and PostgreSQL).
- ``ll_latest_metrics``: the latest point of each (run, key) and how many points there
  are, kept up to date in the same transaction as the points; filters and sorting on
  metrics read this table instead of scanning every point.
- ``ll_run_inputs``: what a run read (dataset versions, by content digest).
- ``ll_run_artifacts``: what a run wrote, by content digest in the content store.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopline.store.db.schema import metadata
from loopline.store.db.types import ID, UTCDateTime

RUN_STATUSES = ("running", "finished", "failed", "killed")

_RUN_ID = sa.String(32)


def _run_fk() -> sa.Column[str]:
    return sa.Column(
        "run_id", _RUN_ID, sa.ForeignKey("ll_runs.id", ondelete="CASCADE"), nullable=False
    )


runs = sa.Table(
    "ll_runs",
    metadata,
    sa.Column("id", _RUN_ID, primary_key=True),
    sa.Column("experiment", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=True),
    sa.Column(
        "parent_id", _RUN_ID, sa.ForeignKey("ll_runs.id", ondelete="SET NULL"), nullable=True
    ),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("start_time", UTCDateTime(), nullable=False),
    sa.Column("end_time", UTCDateTime(), nullable=True),
    sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
    sa.Column("git_commit", sa.String(64), nullable=True),
    sa.Column("git_dirty", sa.Boolean(), nullable=True),
    sa.Column("source", sa.Text(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("user", sa.String(128), nullable=True),
    sa.CheckConstraint("status IN ('running', 'finished', 'failed', 'killed')", name="status"),
    sa.Index("ix_ll_runs_experiment_start_time", "experiment", "start_time"),
    sa.Index("ix_ll_runs_status_heartbeat_at", "status", "heartbeat_at"),
    sa.Index("ix_ll_runs_parent_id", "parent_id"),
)

params = sa.Table(
    "ll_params",
    metadata,
    _run_fk(),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("value", sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint("run_id", "key"),
)

tags = sa.Table(
    "ll_tags",
    metadata,
    _run_fk(),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("value", sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint("run_id", "key"),
)

metrics = sa.Table(
    "ll_metrics",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    _run_fk(),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("step", sa.BigInteger(), nullable=False),
    sa.Column("timestamp", sa.Double(), nullable=False),
    sa.Column("value", sa.Double(), nullable=True),
    sa.Index("ix_ll_metrics_run_id_key_step", "run_id", "key", "step"),
)

latest_metrics = sa.Table(
    "ll_latest_metrics",
    metadata,
    _run_fk(),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("step", sa.BigInteger(), nullable=False),
    sa.Column("timestamp", sa.Double(), nullable=False),
    sa.Column("value", sa.Double(), nullable=True),
    sa.Column("points", sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint("run_id", "key"),
)

run_inputs = sa.Table(
    "ll_run_inputs",
    metadata,
    _run_fk(),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("version", sa.String(255), nullable=False),
    sa.Column("digest", sa.String(128), nullable=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.PrimaryKeyConstraint("run_id", "kind", "name", "version", "role"),
    sa.Index("ix_ll_run_inputs_kind_name_version", "kind", "name", "version"),
)

run_artifacts = sa.Table(
    "ll_run_artifacts",
    metadata,
    _run_fk(),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint("run_id", "name"),
    sa.Index("ix_ll_run_artifacts_digest", "digest"),
)

TABLES = (runs, params, tags, metrics, latest_metrics, run_inputs, run_artifacts)
