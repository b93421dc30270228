"""Tables of the pipeline layer (pipeline runs, step runs, the step cache).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ll_pipeline_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("pipeline", sa.String(255), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("executor", sa.String(64), nullable=False),
        sa.Column("use_cache", sa.Boolean(), nullable=False),
        sa.Column("resumed_from", sa.String(32), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ll_pipeline_runs"),
    )
    op.create_index(
        "ix_ll_pipeline_runs_pipeline_started_at", "ll_pipeline_runs", ["pipeline", "started_at"]
    )
    op.create_table(
        "ll_step_runs",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("pipeline_run_id", sa.String(32), nullable=False),
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
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ll_step_runs"),
        sa.ForeignKeyConstraint(
            ["pipeline_run_id"],
            ["ll_pipeline_runs.id"],
            name="fk_ll_step_runs_pipeline_run_id_ll_pipeline_runs",
        ),
    )
    op.create_index("ix_ll_step_runs_cache_key", "ll_step_runs", ["cache_key"])
    op.create_index("ix_ll_step_runs_pipeline_run_id", "ll_step_runs", ["pipeline_run_id"])


def downgrade() -> None:
    op.drop_table("ll_step_runs")
    op.drop_table("ll_pipeline_runs")
