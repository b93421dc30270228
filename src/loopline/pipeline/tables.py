"""Tables the pipeline layer owns: pipeline runs and step runs (which double as the cache)."""

from __future__ import annotations

import sqlalchemy as sa

from loopline.store.db.schema import metadata
from loopline.store.db.types import ID, UTCDateTime

pipeline_runs = sa.Table(
    "ll_pipeline_runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("pipeline", sa.String(255), nullable=False),
    sa.Column("source", sa.Text(), nullable=True),
    sa.Column("run_id", sa.String(32), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("params", sa.JSON(), nullable=False),
    sa.Column("executor", sa.String(64), nullable=False),
    sa.Column("use_cache", sa.Boolean(), nullable=False),
    sa.Column("resumed_from", sa.String(32), nullable=True),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Index("ix_ll_pipeline_runs_pipeline_started_at", "pipeline", "started_at"),
)

step_runs = sa.Table(
    "ll_step_runs",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column(
        "pipeline_run_id", sa.String(32), sa.ForeignKey("ll_pipeline_runs.id"), nullable=False
    ),
    sa.Column("step", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("cache_key", sa.String(64), nullable=True),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("inputs", sa.JSON(), nullable=False),
    sa.Column("params", sa.JSON(), nullable=False),
    sa.Column("output_format", sa.String(32), nullable=True),
    sa.Column("output_digest", sa.String(64), nullable=True),
    sa.Column("run_id", sa.String(32), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Index("ix_ll_step_runs_cache_key", "cache_key"),
    sa.Index("ix_ll_step_runs_pipeline_run_id", "pipeline_run_id"),
)
