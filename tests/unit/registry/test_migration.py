"""The 0005 migration creates exactly the registry's declared tables."""

from __future__ import annotations

import pytest

from loopline.registry import tables
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.db.schema import VERSION_TABLE, metadata

REGISTRY_TABLES = {
    t.name
    for t in (
        tables.models,
        tables.model_versions,
        tables.model_aliases,
        tables.alias_history,
        tables.model_traffic,
    )
}


def _table_of(diff: object) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    for part in item if isinstance(item, tuple) else ():
        name = getattr(part, "name", None)
        table = getattr(part, "table", None)
        if table is not None and getattr(table, "name", None):
            return str(table.name)
        if isinstance(name, str) and name.startswith("ll_"):
            return name
        if isinstance(part, str) and part.startswith("ll_"):
            return part
    return None


def test_the_registry_revision_is_in_the_chain() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(migrate._MIGRATIONS))
    assert scripts.get_revision("0005").down_revision == "0004"
    assert int(migrate.HEAD) >= 5
    assert migrate.alembic_heads() == [migrate.HEAD]


@pytest.fixture
def db(metadata_url: str) -> Database:
    database = Database(metadata_url, create=True)
    yield database
    database.dispose()


def test_migration_matches_the_declared_tables(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    migrate.upgrade(db)
    with db.read() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        diff = compare_metadata(ctx, metadata)
    ours = [d for d in diff if _table_of(d) in REGISTRY_TABLES]
    assert ours == []
