"""Monitoring: references, runs, the time series of results, rejected-request counts.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_index("ix_ll_feedback_model_predicted_at", "ll_feedback", ["model", "predicted_at"])
    op.create_table(
        "ll_monitor_references",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("baseline", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("dataset", sa.String(255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("model", "version", "baseline", name="pk_ll_monitor_references"),
    )
    op.create_table(
        "ll_monitor_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("ref", sa.String(255), nullable=False),
        sa.Column("window_start", _TS, nullable=True),
        sa.Column("window_end", _TS, nullable=True),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ll_monitor_runs"),
    )
    op.create_index(
        "ix_ll_monitor_runs_model_started_at", "ll_monitor_runs", ["model", "started_at"]
    )
    op.create_table(
        "ll_monitor_series",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("window_start", _TS, nullable=False),
        sa.Column("window_end", _TS, nullable=False),
        sa.Column("metric", sa.String(96), nullable=False),
        sa.Column("feature", sa.String(255), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("computed_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ll_monitor_series"),
        sa.UniqueConstraint(
            "model",
            "version",
            "role",
            "window_start",
            "window_end",
            "metric",
            "feature",
            name="uq_ll_monitor_series_window_metric",
        ),
    )
    op.create_index(
        "ix_ll_monitor_series_model_metric_window_end",
        "ll_monitor_series",
        ["model", "metric", "window_end"],
    )
    op.create_table(
        "ll_prediction_rejections",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("hour", _TS, nullable=False),
        sa.Column("column", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ll_prediction_rejections"),
    )
    op.create_index(
        "ix_ll_prediction_rejections_model_hour", "ll_prediction_rejections", ["model", "hour"]
    )


def downgrade() -> None:
    op.drop_table("ll_prediction_rejections")
    op.drop_table("ll_monitor_series")
    op.drop_table("ll_monitor_runs")
    op.drop_table("ll_monitor_references")
    op.drop_index("ix_ll_feedback_model_predicted_at", "ll_feedback")
