"""The metadata database on SQLite and PostgreSQL: migrations, transactions, errors."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.db.events import list_events, record_event
from loopline.store.db.schema import VERSION_TABLE
from loopline.store.errors import (
    DatabaseFullError,
    DatabaseIOError,
    DatabaseUnreachableError,
    SchemaError,
)


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


def test_every_layers_tables_module_is_listed_for_migrations() -> None:
    """A layer's ``tables`` module that TABLE_MODULES misses would escape the comparison."""
    from loopline.store.db.schema import TABLE_MODULES

    src = Path(__import__("loopline").__file__).parent
    found = {
        "loopline." + ".".join(p.relative_to(src).with_suffix("").parts)
        for p in src.rglob("tables.py")
        if "sa.Table(" in p.read_text()
    }
    assert found
    assert found <= set(TABLE_MODULES)


def test_migrations_create_exactly_the_declared_tables(db: Database) -> None:
    """The one schema check: every table, column, index and type every layer declares
    (ll_events, pipeline, serve, monitor included) is what the migrations make."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from loopline.store.db.schema import load_all_tables

    declared = load_all_tables()
    migrate.upgrade(db)
    with db.read() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        diff = compare_metadata(ctx, declared)
        tables = set(sa.inspect(conn).get_table_names())
    assert diff == []
    assert {t for t in declared.tables} <= tables
    assert {"ll_events", "ll_pipeline_runs", "ll_api_keys", "ll_project"} <= tables


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


# -- full disk, I/O errors, read-only: loopline errors without SQL ----------------------------

SECRET = "PARAMETER-VALUE-THAT-MUST-NOT-SHOW"


def _fill_until_full(
    db: Database,
) -> tuple[Callable[[sa.Connection], None], Callable[[], None]]:
    """A write that fills the database until it is full, and how to make room again: on
    SQLite for real (the file may not grow past its pages), on PostgreSQL as the server
    reports a full disk (SQLSTATE 53100)."""
    if db.is_sqlite:
        limit = {"on": True}

        def cap_size(dbapi_conn: Any, _record: Any) -> None:
            if limit["on"]:
                pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
                dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

        db.dispose()
        sa.event.listen(db.engine, "connect", cap_size)

        def fill(conn: sa.Connection) -> None:
            for i in range(10_000):
                record_event(conn, "test.fill", f"row {i}", {"pad": SECRET * 40})

        def make_room() -> None:
            limit["on"] = False
            db.dispose()

        return fill, make_room

    def server_disk_full(conn: sa.Connection) -> None:
        conn.exec_driver_sql(
            'DO $$ BEGIN RAISE EXCEPTION \'could not extend file "base/16384/2619": '
            "No space left on device' USING ERRCODE = 'disk_full', "
            "HINT = 'Check free disk space.'; END $$"
        )

    return server_disk_full, lambda: None


def test_a_full_database_raises_database_full_and_rolls_back(db: Database) -> None:
    migrate.upgrade(db)
    db.run_write(lambda c: record_event(c, "test.before", "kept"))
    fill, make_room = _fill_until_full(db)

    def write(conn: sa.Connection) -> None:
        record_event(conn, "test.full", "lost", {"secret": SECRET})
        fill(conn)

    with pytest.raises(DatabaseFullError) as info:
        db.run_write(write)
    message = str(info.value)
    assert SECRET not in message
    assert "INSERT" not in message
    assert "[SQL" not in message
    assert len(message) < 500
    assert "rolled back" in message
    assert "Free some space" in message
    if db.is_sqlite:
        assert db.sqlite_path is not None
        assert info.value.location == str(db.sqlite_path.resolve())
        assert "SQLITE_FULL" in message
        assert "bytes free" in message
    else:
        assert info.value.location == db.display_url
        assert "No space left on device" in message
    make_room()
    with db.read() as conn:
        assert list_events(conn, kind="test.full") == []
        assert list_events(conn, kind="test.fill") == []
        assert len(list_events(conn, kind="test.before")) == 1
    db.run_write(lambda c: record_event(c, "test.after", "works again"))
    with db.read() as conn:
        assert len(list_events(conn, kind="test.after")) == 1


def test_a_read_only_database_says_so(db: Database, tmp_path: Path) -> None:
    migrate.upgrade(db)
    if db.is_sqlite:
        assert db.sqlite_path is not None
        readonly = Database(f"sqlite:///file:{db.sqlite_path}?mode=ro&uri=true")

        def write(conn: sa.Connection) -> None:
            record_event(conn, "test.ro", "x", {"secret": SECRET})

    else:
        readonly = Database(db.url)

        def write(conn: sa.Connection) -> None:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            record_event(conn, "test.ro", "x", {"secret": SECRET})

    try:
        with pytest.raises(DatabaseIOError) as info:
            readonly.run_write(write)
    finally:
        readonly.dispose()
    message = str(info.value)
    assert "read-only" in message
    assert SECRET not in message
    assert ("may write the database file" if db.is_sqlite else "primary server") in message
    with db.read() as conn:
        assert list_events(conn, kind="test.ro") == []


def test_an_io_error_on_a_nearly_full_disk_is_reported_as_a_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from loopline.store.db import engine as engine_module

    db = Database(f"sqlite:///{tmp_path / 'm.db'}", create=True)
    io_error = sqlite3.OperationalError("disk I/O error")
    io_error.sqlite_errorcode = 4874  # SQLITE_IOERR_SHMSIZE
    io_error.sqlite_errorname = "SQLITE_IOERR_SHMSIZE"
    monkeypatch.setattr(engine_module, "_free_bytes", lambda path: 4096)
    error = engine_module.storage_error(db, io_error)
    assert isinstance(error, DatabaseFullError)
    assert str(tmp_path / "m.db") in str(error)
    assert "4,096 bytes free" in str(error)
    monkeypatch.setattr(engine_module, "_free_bytes", lambda path: 50 * 1024**3)
    error = engine_module.storage_error(db, io_error)
    assert isinstance(error, DatabaseIOError)
    assert "SQLITE_IOERR_SHMSIZE" in str(error)
    assert "failing disk" in str(error)
    assert engine_module.storage_error(db, sqlite3.OperationalError("no such table: x")) is None


def test_lock_conflicts_are_not_taken_for_storage_errors(tmp_path: Path) -> None:
    import sqlite3

    from loopline.store.db import engine as engine_module

    db = Database(f"sqlite:///{tmp_path / 'm.db'}", create=True)
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5  # SQLITE_BUSY: retried by run_write, not translated
    assert engine_module.storage_error(db, busy) is None
