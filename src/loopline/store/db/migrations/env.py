"""Alembic environment: runs on the connection loopline passes in, never from a URL here.

The target metadata holds every layer's tables (``schema.TABLE_MODULES``), so
autogenerate and comparisons see the whole schema.
"""

from __future__ import annotations

from alembic import context

from loopline.store.db.schema import VERSION_TABLE, load_all_tables

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - loopline always passes one
    raise RuntimeError("loopline migrations run through loopline.store.db.migrate.upgrade")

context.configure(
    connection=connection,
    target_metadata=load_all_tables(),
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
