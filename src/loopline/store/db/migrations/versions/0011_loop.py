"""The loop controller: lease, per-model state, rollouts and their events; failed
requests counted per second and role (replacing the hourly rejection counts, which
nothing wrote yet).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_index("ix_ll_prediction_rejections_model_hour", table_name="ll_prediction_rejections")
    op.drop_table("ll_prediction_rejections")
    op.create_table(
        "ll_prediction_failures",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("column", sa.String(255), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ll_prediction_failures"),
    )
    op.create_index("ix_ll_prediction_failures_model_at", "ll_prediction_failures", ["model", "at"])
    op.create_table(
        "ll_loop_leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("acquired_at", _TS, nullable=False),
        sa.Column("renewed_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_ll_loop_leases"),
    )
    op.create_table(
        "ll_loop_models",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("changed_at", _TS, nullable=False),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("last_window_end", _TS, nullable=True),
        sa.Column("last_label_window_end", _TS, nullable=True),
        sa.Column("active_rollout", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("model", name="pk_ll_loop_models"),
    )
    op.create_table(
        "ll_rollouts",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("trigger", sa.String(255), nullable=False),
        sa.Column("trigger_key", sa.String(255), nullable=True),
        sa.Column("cause", sa.JSON(), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("champion_version", sa.Integer(), nullable=True),
        sa.Column("challenger_version", sa.Integer(), nullable=True),
        sa.Column("retrain", sa.Boolean(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("pipeline_run_id", sa.String(32), nullable=True),
        sa.Column("verdict", sa.JSON(), nullable=True),
        sa.Column("split", sa.JSON(), nullable=True),
        sa.Column("bake", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ll_rollouts"),
        sa.UniqueConstraint("trigger_key", name="uq_ll_rollouts_trigger_key"),
    )
    op.create_index("ix_ll_rollouts_model_created_at", "ll_rollouts", ["model", "created_at"])
    op.create_table(
        "ll_rollout_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("rollout_id", sa.String(32), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("from_state", sa.String(24), nullable=True),
        sa.Column("to_state", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ll_rollout_events"),
        sa.UniqueConstraint(
            "rollout_id", "to_state", name="uq_ll_rollout_events_rollout_id_to_state"
        ),
    )


def downgrade() -> None:
    op.drop_table("ll_prediction_failures")
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
    op.drop_table("ll_rollout_events")
    op.drop_table("ll_rollouts")
    op.drop_table("ll_loop_models")
    op.drop_table("ll_loop_leases")
