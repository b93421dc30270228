"""Alarms: states, state history, action runs.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ll_alarm_states",
        sa.Column("alarm", sa.String(128), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("since", _TS, nullable=False),
        sa.Column("evaluated_at", _TS, nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("last_window", _TS, nullable=True),
        sa.PrimaryKeyConstraint("alarm", name="pk_ll_alarm_states"),
    )
    op.create_table(
        "ll_alarm_history",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("alarm", sa.String(128), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("from_state", sa.String(24), nullable=True),
        sa.Column("to_state", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("datapoints", sa.JSON(), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(24), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ll_alarm_history"),
    )
    op.create_index("ix_ll_alarm_history_alarm_at", "ll_alarm_history", ["alarm", "at"])
    op.create_table(
        "ll_action_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("trigger", sa.String(255), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ll_action_runs"),
    )
    op.create_index(
        "ix_ll_action_runs_trigger_started_at", "ll_action_runs", ["trigger", "started_at"]
    )


def downgrade() -> None:
    op.drop_table("ll_action_runs")
    op.drop_table("ll_alarm_history")
    op.drop_table("ll_alarm_states")
