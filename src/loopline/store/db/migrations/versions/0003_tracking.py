"""Tables of the tracking layer (runs, params, metrics, tags, inputs, artifacts).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _run_fk() -> sa.Column[str]:
    return sa.Column(
        "run_id",
        sa.String(32),
        sa.ForeignKey("ll_runs.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "ll_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("experiment", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("parent_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("git_dirty", sa.Boolean(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("user", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ll_runs"),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["ll_runs.id"],
            name="fk_ll_runs_parent_id_ll_runs",
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(
            "status IN ('running', 'finished', 'failed', 'killed')",
            name="ck_ll_runs_status",
        ),
    )
    op.create_index("ix_ll_runs_experiment_start_time", "ll_runs", ["experiment", "start_time"])
    op.create_index("ix_ll_runs_status_heartbeat_at", "ll_runs", ["status", "heartbeat_at"])
    op.create_index("ix_ll_runs_parent_id", "ll_runs", ["parent_id"])

    for name in ("ll_params", "ll_tags"):
        op.create_table(
            name,
            _run_fk(),
            sa.Column("key", sa.String(255), nullable=False),
            sa.Column("value", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("run_id", "key", name=f"pk_{name}"),
        )

    op.create_table(
        "ll_metrics",
        sa.Column("id", _BIGINT, autoincrement=True, nullable=False),
        _run_fk(),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.Double(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ll_metrics"),
    )
    op.create_index("ix_ll_metrics_run_id_key_step", "ll_metrics", ["run_id", "key", "step"])

    op.create_table(
        "ll_latest_metrics",
        _run_fk(),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.Double(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_ll_latest_metrics"),
    )

    op.create_table(
        "ll_run_inputs",
        _run_fk(),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint(
            "run_id", "kind", "name", "version", "role", name="pk_ll_run_inputs"
        ),
    )
    op.create_index(
        "ix_ll_run_inputs_kind_name_version", "ll_run_inputs", ["kind", "name", "version"]
    )

    op.create_table(
        "ll_run_artifacts",
        _run_fk(),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "name", name="pk_ll_run_artifacts"),
    )
    op.create_index("ix_ll_run_artifacts_digest", "ll_run_artifacts", ["digest"])


def downgrade() -> None:
    for name in (
        "ll_run_artifacts",
        "ll_run_inputs",
        "ll_latest_metrics",
        "ll_metrics",
        "ll_tags",
        "ll_params",
        "ll_runs",
    ):
        op.drop_table(name)
