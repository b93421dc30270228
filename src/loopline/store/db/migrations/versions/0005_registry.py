"""Tables of the registry (models, versions, aliases, alias history, traffic splits).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ll_models",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ll_models"),
        sa.UniqueConstraint("name", name="uq_ll_models_name"),
    )
    op.create_table(
        "ll_model_versions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("code_commit", sa.String(64), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("report_digest", sa.String(64), nullable=True),
        sa.Column("manifest_digest", sa.String(64), nullable=False),
        sa.Column("flavor", sa.String(32), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ll_model_versions"),
        sa.ForeignKeyConstraint(
            ["model"], ["ll_models.name"], name="fk_ll_model_versions_model_ll_models"
        ),
        sa.UniqueConstraint("model", "version", name="uq_ll_model_versions_model_version"),
    )
    op.create_table(
        "ll_model_aliases",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("model", "alias", name="pk_ll_model_aliases"),
        sa.ForeignKeyConstraint(
            ["model"], ["ll_models.name"], name="fk_ll_model_aliases_model_ll_models"
        ),
    )
    op.create_table(
        "ll_model_alias_history",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("to_version", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ll_model_alias_history"),
    )
    op.create_index(
        "ix_ll_model_alias_history_model_alias_at",
        "ll_model_alias_history",
        ["model", "alias", "at"],
    )
    op.create_table(
        "ll_model_traffic",
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("candidate", sa.String(256), nullable=False),
        sa.Column("percent", sa.Float(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("sticky_key", sa.String(128), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("model", "alias", name="pk_ll_model_traffic"),
        sa.ForeignKeyConstraint(
            ["model"], ["ll_models.name"], name="fk_ll_model_traffic_model_ll_models"
        ),
    )


def downgrade() -> None:
    op.drop_table("ll_model_traffic")
    op.drop_table("ll_model_alias_history")
    op.drop_table("ll_model_aliases")
    op.drop_table("ll_model_versions")
    op.drop_table("ll_models")
