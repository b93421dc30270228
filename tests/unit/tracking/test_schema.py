"""The migration creates exactly the tables, columns and indexes tracking declares."""

from __future__ import annotations

import sqlalchemy as sa

from loopline.store.db.schema import VERSION_TABLE, metadata
from loopline.store.stores import Stores
from loopline.tracking.tables import TABLES


def test_migration_matches_the_tracking_tables(stores: Stores) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    ours = {t.name for t in TABLES}
    with stores.db.read() as conn:
        assert ours <= set(sa.inspect(conn).get_table_names())
        ctx = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        diff = compare_metadata(ctx, metadata)

    def table_of(entry: object) -> str | None:
        item = entry[0] if isinstance(entry, list) else entry
        for part in item[1:]:  # type: ignore[index]
            name = getattr(part, "name", None)
            table = getattr(part, "table", None)
            if table is not None and getattr(table, "name", None):
                return str(table.name)
            if isinstance(part, str) and part in ours:
                return part
            if name in ours:
                return str(name)
        return None

    assert [d for d in diff if table_of(d) in ours] == []
