"""The project a database belongs to (one row), so two projects cannot share one silently.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ll_project",
        sa.Column("key", sa.String(16), nullable=False),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("artifacts_url", sa.Text(), nullable=False),
        sa.Column("project_dir", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_ll_project"),
    )


def downgrade() -> None:
    op.drop_table("ll_project")
