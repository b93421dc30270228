"""Tables of the data layer (datasets, versions, splits).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ll_datasets",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ll_datasets"),
        sa.UniqueConstraint("name", name="uq_ll_datasets_name"),
    )
    op.create_table(
        "ll_dataset_versions",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("dataset_id", _ID, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("parquet_digest", sa.String(64), nullable=False),
        sa.Column("profile_digest", sa.String(64), nullable=False),
        sa.Column("n_rows", sa.BigInteger(), nullable=False),
        sa.Column("n_columns", sa.Integer(), nullable=False),
        sa.Column("n_bytes", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("validation", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ll_dataset_versions"),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["ll_datasets.id"],
            name="fk_ll_dataset_versions_dataset_id_ll_datasets",
        ),
        sa.UniqueConstraint(
            "dataset_id", "version", name="uq_ll_dataset_versions_dataset_id_version"
        ),
        sa.UniqueConstraint(
            "dataset_id", "digest", name="uq_ll_dataset_versions_dataset_id_digest"
        ),
    )
    op.create_table(
        "ll_dataset_splits",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("version_id", _ID, nullable=False),
        sa.Column("params_key", sa.String(64), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("fractions", sa.JSON(), nullable=False),
        sa.Column("stratify", sa.String(255), nullable=True),
        sa.Column("assignment_digest", sa.String(64), nullable=False),
        sa.Column("sizes", sa.JSON(), nullable=False),
        sa.Column("digests", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ll_dataset_splits"),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["ll_dataset_versions.id"],
            name="fk_ll_dataset_splits_version_id_ll_dataset_versions",
        ),
        sa.UniqueConstraint(
            "version_id", "params_key", name="uq_ll_dataset_splits_version_id_params_key"
        ),
    )


def downgrade() -> None:
    op.drop_table("ll_dataset_splits")
    op.drop_table("ll_dataset_versions")
    op.drop_table("ll_datasets")
