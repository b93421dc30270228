"""The metadata database: one engine per URL, read and write transactions, retries.

SQLite and PostgreSQL are two URLs, not two classes. What differs is handled here once:

- SQLite runs in WAL mode (readers never block the writer) with a busy timeout, and write
  transactions start with ``BEGIN IMMEDIATE``: a writer takes the write lock up front and
  waits for it, instead of starting as a reader and failing with "database is locked" when
  it tries to upgrade. Several processes can write at once; they take turns.
- Transient conflicts (SQLite busy beyond the timeout, PostgreSQL serialization failures
  and deadlocks) are retried with jittered backoff by :meth:`Database.run_write`.
- Connection failures become :class:`DatabaseUnreachableError` naming the URL (without
  its password) and the fix.

Nothing here creates tables: migrations do that (``loopline db upgrade``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from loopline.config import redact_url
from loopline.errors import DatabaseUnreachableError

if TYPE_CHECKING:
    import sqlalchemy as sa

T = TypeVar("T")

_WRITE_OPTION = "loopline_write"
_RETRYABLE_PG_STATES = {"40001", "40P01", "55P03"}


class Database:
    """A handle on the metadata database at ``url``.

    ``create=False`` (the default) refuses to invent an empty SQLite file where a project's
    database should be: a missing file means the project was not initialised (or the URL
    is wrong), and saying so beats silently starting from nothing.
    """

    def __init__(self, url: str, *, busy_timeout: float = 30.0, create: bool = False) -> None:
        self.url = url
        self.display_url = redact_url(url)
        self.busy_timeout = busy_timeout
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = self.sqlite_path
            if path is not None:
                if create:
                    path.parent.mkdir(parents=True, exist_ok=True)
                elif not path.exists():
                    raise DatabaseUnreachableError(
                        self.display_url,
                        f"no database file at {path}",
                        hint="Initialise the project with: loopline init "
                        "(or fix metadata_url in loopline.toml)",
                    )
        self._engine: sa.Engine | None = None

    @property
    def sqlite_path(self) -> Path | None:
        return sqlite_file(self.url)

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = self._make_engine()
        return self._engine

    def _make_engine(self) -> sa.Engine:
        import sqlalchemy as sa

        try:
            if self.is_sqlite:
                engine = sa.create_engine(
                    self.url,
                    connect_args={"timeout": self.busy_timeout, "check_same_thread": False},
                )
                _install_sqlite_hooks(engine, self.busy_timeout)
                return engine
            return sa.create_engine(
                self.url,
                pool_pre_ping=True,
                connect_args={"connect_timeout": 10},
            )
        except ModuleNotFoundError as exc:
            raise DatabaseUnreachableError(
                self.display_url,
                f"its driver is not installed ({exc.name})",
                hint="Install it with: pip install 'loopline[postgres]'",
            ) from exc
        except sa.exc.ArgumentError as exc:
            raise DatabaseUnreachableError(
                self.display_url,
                f"not a valid database URL ({exc})",
                hint="Expected sqlite:///path/file.db or postgresql+psycopg://user:pw@host/db",
            ) from exc

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read transaction (committed at exit, though it should write nothing)."""
        with self._connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction: on SQLite it holds the write lock from its first statement."""
        with self._connect() as conn:
            conn = conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def run_write(self, fn: Callable[[sa.Connection], T], *, attempts: int = 8) -> T:
        """Run ``fn`` in a write transaction, retrying transient lock conflicts.

        ``fn`` may run more than once, so it must only touch the database.
        """
        import sqlalchemy as sa

        delay = 0.02
        for attempt in range(1, attempts + 1):
            try:
                with self.write() as conn:
                    return fn(conn)
            except sa.exc.OperationalError as exc:
                if attempt == attempts or not _is_transient(exc):
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")

    @contextmanager
    def _connect(self) -> Iterator[sa.Connection]:
        import sqlalchemy as sa

        try:
            conn = self.engine.connect()
        except sa.exc.OperationalError as exc:
            raise DatabaseUnreachableError(
                self.display_url, _first_line(exc), hint=_hint_for(self.url)
            ) from exc
        try:
            yield conn
        finally:
            conn.close()

    def check(self) -> None:
        """Raise DatabaseUnreachableError unless a trivial query answers."""
        import sqlalchemy as sa

        with self.read() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"Database({self.display_url!r})"


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL, or None for in-memory and other databases."""
    if not url.startswith("sqlite"):
        return None
    rest = url.split("://", 1)[1]
    if rest in ("", "/") or ":memory:" in rest or rest.startswith("/file:"):
        return None
    return Path(rest[1:]) if rest.startswith("/") else Path(rest)


def _install_sqlite_hooks(engine: sa.Engine, busy_timeout: float) -> None:
    from sqlalchemy import event

    timeout_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def _is_transient(exc: Exception) -> bool:
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state in _RETRYABLE_PG_STATES:
        return True
    text = str(orig or exc).lower()
    return "database is locked" in text or "database is busy" in text


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _hint_for(url: str) -> str:
    if url.startswith("sqlite"):
        return "Check that the folder of the database file exists and is writable"
    return (
        "Check that the PostgreSQL server is running and that metadata_url "
        "(or LOOPLINE_METADATA_URL) has the right host, port, user, password and database"
    )
