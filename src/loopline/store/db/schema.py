"""The single ``MetaData`` of loopline's tables, and the tables the store layer owns.

Every layer declares its tables on :data:`metadata` in its own module. All loopline tables
start with ``ll_`` and migrations keep their version in ``loopline_alembic_version``, so
loopline shares a database with other tools (Optuna's ``studies``/``trials`` and its own
``alembic_version``) without a name colliding.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopline.store.db.types import ID, UTCDateTime

TABLE_PREFIX = "ll_"
VERSION_TABLE = "loopline_alembic_version"

#: Every module that declares tables on :data:`metadata`, one per layer. Migrations (and
#: the test that compares the migrated schema with the declared one) load them all by
#: name, so the store layer never imports the layers above it. A test checks the list
#: names every ``tables`` module of the package.
TABLE_MODULES: tuple[str, ...] = (
    "loopline.store.db.schema",
    "loopline.data.tables",
    "loopline.tracking.tables",
    "loopline.pipeline.tables",
    "loopline.registry.tables",
    "loopline.monitor.tables",
    "loopline.serve.tables",
    "loopline.trigger.tables",
    "loopline.alarm.tables",
    "loopline.loop.tables",
)


def load_all_tables() -> sa.MetaData:
    """:data:`metadata` with every layer's tables declared on it."""
    import importlib

    for name in TABLE_MODULES:
        importlib.import_module(name)
    return metadata


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
        ID,
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("detail", sa.JSON(), nullable=False),
    sa.Index("ix_ll_events_kind_at", "kind", "at"),
    sa.Index("ix_ll_events_subject", "subject"),
)

#: Which project a database belongs to: one row, written by ``loopline init`` (or by the
#: first project that opens a database migrated before this table existed). Two projects
#: with different artifact stores must not share one database (or PostgreSQL schema):
#: each would see the other's datasets and models, whose blobs live in the other store.
project = sa.Table(
    "ll_project",
    metadata,
    sa.Column("key", sa.String(16), primary_key=True),
    sa.Column("project_id", sa.String(32), nullable=False),
    sa.Column("artifacts_url", sa.Text(), nullable=False),
    sa.Column("project_dir", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
