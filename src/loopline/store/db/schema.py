"""The single ``MetaData`` of loopline's tables, and the tables the store layer owns.

Every layer declares its tables on :data:`metadata` in its own module. All loopline tables
start with ``ll_`` and migrations keep their version in ``loopline_alembic_version``, so
loopline shares a database with other tools (Optuna's ``studies``/``trials`` and its own
``alembic_version``) without a name colliding.
"""

from __future__ import annotations

import sqlalchemy as sa

TABLE_PREFIX = "ll_"
VERSION_TABLE = "loopline_alembic_version"

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: Append-only audit log: who did what to the project, and when.
events = sa.Table(
    "ll_events",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("detail", sa.JSON(), nullable=False),
    sa.Index("ix_ll_events_kind_at", "kind", "at"),
    sa.Index("ix_ll_events_subject", "subject"),
)
