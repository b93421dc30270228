"""The metadata database on SQLite and PostgreSQL: migrations, transactions, errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from loopline.errors import DatabaseUnreachableError, SchemaError
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.db.events import list_events, record_event
from loopline.store.db.schema import VERSION_TABLE, metadata


@pytest.fixture
def db(metadata_url: str) -> Database:
    database = Database(metadata_url, create=True)
    yield database
    database.dispose()


def test_fresh_database_is_not_migrated_and_says_how_to_fix(db: Database) -> None:
    assert migrate.current_revision(db) is None
    with pytest.raises(SchemaError) as info:
        migrate.require_current(db)
    assert "loopline db upgrade" in str(info.value)
    assert info.value.current is None


def test_upgrade_applies_once_and_is_idempotent(db: Database) -> None:
    assert migrate.upgrade(db) == (None, migrate.HEAD)
    assert migrate.upgrade(db) == (migrate.HEAD, migrate.HEAD)
    migrate.require_current(db)
    with db.read() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert {"ll_events", VERSION_TABLE} <= tables
    assert "alembic_version" not in tables  # leaves the default name to other tools


def test_head_constant_matches_the_migration_scripts() -> None:
    assert migrate.alembic_heads() == [migrate.HEAD]


def _import_every_layers_tables() -> None:
    """Each layer declares its tables in a ``tables`` module; load them all."""
    import importlib
    import pkgutil

    import loopline

    for info in pkgutil.walk_packages(loopline.__path__, "loopline."):
        if info.name.endswith(".tables"):
            importlib.import_module(info.name)


def test_migrations_create_exactly_the_declared_tables(db: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    _import_every_layers_tables()
    migrate.upgrade(db)
    with db.read() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        diff = compare_metadata(ctx, metadata)
    assert diff == []


def test_newer_database_is_refused(db: Database) -> None:
    migrate.upgrade(db)
    with db.write() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(SchemaError) as info:
        migrate.require_current(db)
    assert "newer loopline" in str(info.value)
    with pytest.raises(SchemaError):
        migrate.upgrade(db)


def test_events_round_trip_newest_first(db: Database) -> None:
    migrate.upgrade(db)
    for i in range(3):
        db.run_write(lambda c, i=i: record_event(c, "test.kind", f"s{i}", {"i": i}))
    with db.read() as conn:
        got = list_events(conn, kind="test.kind")
    assert [e.detail["i"] for e in got] == [2, 1, 0]
    assert got[0].at.tzinfo is not None
    assert "@" in got[0].actor


def test_a_failed_write_transaction_leaves_nothing(db: Database) -> None:
    migrate.upgrade(db)

    def boom(conn: sa.Connection) -> None:
        record_event(conn, "test.rollback", "x")
        raise RuntimeError("fail after the insert")

    with pytest.raises(RuntimeError):
        db.run_write(boom)
    with db.read() as conn:
        assert list_events(conn, kind="test.rollback") == []


def test_missing_sqlite_file_is_reported_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "m.db"
    with pytest.raises(DatabaseUnreachableError) as info:
        Database(f"sqlite:///{path}")
    assert str(path) in str(info.value)
    assert "loopline init" in str(info.value)
    assert not path.exists()


def test_unreachable_postgres_names_url_without_password() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = Database(f"postgresql+psycopg://u:topsecret@127.0.0.1:{port}/x")
    with pytest.raises(DatabaseUnreachableError) as info:
        db.check()
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message
    assert "topsecret" not in message
    assert "PostgreSQL server is running" in message


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}", busy_timeout=7, create=True)
    with db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7000
    db.dispose()
