"""Schema migrations: applied by ``loopline init`` and ``loopline db upgrade``, never implicitly.

Alembic does the work with its scripts in ``migrations/`` and its version row in
``loopline_alembic_version``. :data:`HEAD` names the newest revision so that checking a
database's revision (which every command does) costs one query and no Alembic import.
Concurrent upgrades are safe: on SQLite the upgrade holds the write lock for its whole
transaction; on PostgreSQL it takes a transaction-scoped advisory lock first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from loopline.store.db.engine import Database
from loopline.store.db.schema import VERSION_TABLE
from loopline.store.errors import DatabaseUnreachableError, SchemaError
from loopline.store.revision import HEAD as HEAD

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_ID = 0x6C6F6F70  # "loop"


def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None when loopline never migrated it."""
    import sqlalchemy as sa

    with db.read() as conn:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        row = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
        return None if row is None else str(row[0])


def require_current(db: Database) -> None:
    """Raise SchemaError unless the database is at :data:`HEAD`."""
    current = current_revision(db)
    if current == HEAD:
        return
    if current is None or _is_older(current):
        hint = "Apply the migrations with: loopline db upgrade"
    else:
        hint = "This database was migrated by a newer loopline; upgrade loopline itself"
    raise SchemaError(db.display_url, current, HEAD, hint=hint)


def upgrade(db: Database, revision: str = "head") -> tuple[str | None, str]:
    """Migrate to ``revision``; returns (revision before, revision after)."""
    from alembic import command

    before = current_revision(db)
    if before is not None and before != HEAD and not _is_older(before):
        raise SchemaError(
            db.display_url,
            before,
            HEAD,
            hint="This database was migrated by a newer loopline; upgrade loopline itself",
        )
    import sqlalchemy as sa

    try:
        with db.write() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
            config = _alembic_config(conn)
            command.upgrade(config, revision)
    except sa.exc.OperationalError as exc:
        raise DatabaseUnreachableError(db.display_url, str(exc.orig).splitlines()[0]) from exc
    return before, current_revision(db) or "none"


def alembic_heads() -> list[str]:
    """Heads of the migration scripts, read with Alembic (for tests and ``db`` commands)."""
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory(str(_MIGRATIONS)).get_heads())


def _alembic_config(conn: object) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def _is_older(revision: str) -> bool:
    try:
        return int(revision) < int(HEAD)
    except ValueError:
        return False
