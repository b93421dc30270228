"""The watcher's ledger of files: which (source, key, etag) was scored, and how it went.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ll_trigger_files",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("watcher", sa.String(128), nullable=False),
        sa.Column("source", sa.String(512), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("etag", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("output_key", sa.String(1024), nullable=False),
        sa.Column("rows_scored", sa.BigInteger(), nullable=True),
        sa.Column("rows_invalid", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ll_trigger_files"),
        sa.UniqueConstraint("source", "key", "etag", name="uq_ll_trigger_files_source_key_etag"),
    )
    op.create_index("ix_ll_trigger_files_source_status", "ll_trigger_files", ["source", "status"])


def downgrade() -> None:
    op.drop_table("ll_trigger_files")
