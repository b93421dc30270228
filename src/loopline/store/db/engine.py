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
- A full disk, an I/O error or a read-only database, met by any statement, commit or
  connection of the engine, becomes :class:`DatabaseFullError` or
  :class:`DatabaseIOError` naming the database file (or the server) and the fix, never the
  SQL or its parameters. One ``handle_error`` hook on the engine does it, so every layer
  gets it; the transaction is rolled back as with any error.

Nothing here creates tables: migrations do that (``loopline db upgrade``).
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from loopline.config import redact_url
from loopline.store.errors import (
    DatabaseFullError,
    DatabaseIOError,
    DatabaseUnreachableError,
    MetadataStoreError,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

T = TypeVar("T")

_WRITE_OPTION = "loopline_write"
_RETRYABLE_PG_STATES = {"40001", "40P01", "55P03"}
#: Primary SQLite result codes (the low byte of an extended code) and what they mean here.
_SQLITE_KINDS = {13: "full", 10: "io", 8: "readonly"}  # SQLITE_FULL, _IOERR, _READONLY
_SQLITE_TEXTS = (
    ("database or disk is full", "full"),
    ("disk i/o error", "io"),
    ("readonly database", "readonly"),
)
#: PostgreSQL SQLSTATEs: disk_full, io_error, read_only_sql_transaction (a standby).
_PG_KINDS = {"53100": "full", "58030": "io", "25006": "readonly"}
#: Below this much free space, an SQLite I/O error is taken for a full disk.
_NEARLY_FULL_BYTES = 1024 * 1024


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
            else:
                engine = sa.create_engine(
                    self.url,
                    pool_pre_ping=True,
                    connect_args={"connect_timeout": 10},
                )
            _install_error_translation(engine, self)
            return engine
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

    def run_write(
        self,
        fn: Callable[[sa.Connection], T],
        *,
        attempts: int = 8,
        conflicts: int = 0,
        is_conflict: Callable[[Exception], bool] | None = None,
    ) -> T:
        """Run ``fn`` in a write transaction, retrying what another writer caused.

        Transient lock conflicts (SQLite busy, PostgreSQL serialization failures and
        deadlocks) are retried up to ``attempts`` times. With ``conflicts``, a transaction
        that lost an insert race (a unique violation: another process took the id, the
        version number, the row) is retried up to that many more times, so ``fn`` reads
        the new state and decides again; ``is_conflict`` can tell such a race from a real
        constraint failure, which is raised at once. Waits back off with jitter.

        ``fn`` may run more than once, so it must only touch the database (or do what is
        safe to repeat, like putting content-addressed blobs).
        """
        import sqlalchemy as sa

        delay = 0.02
        transient = 0
        races = 0
        while True:
            try:
                with self.write() as conn:
                    return fn(conn)
            except sa.exc.OperationalError as exc:
                transient += 1
                if transient >= attempts or not _is_transient(exc):
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 1.0)
            except sa.exc.IntegrityError as exc:
                races += 1
                if races > conflicts or (is_conflict is not None and not is_conflict(exc)):
                    raise
                time.sleep(random.uniform(0.002, 0.02 * min(races, 10)))

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


def _install_error_translation(engine: sa.Engine, db: Database) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "handle_error")
    def _on_error(context: sa.engine.ExceptionContext) -> None:
        error = storage_error(db, context.original_exception)
        if error is not None:
            raise error from context.original_exception


def storage_error(db: Database, exc: BaseException) -> MetadataStoreError | None:
    """The loopline error for a database driver error that says the disk is full, the
    storage failed, or the database is read-only; None for any other error."""
    kind = _storage_kind(exc)
    if kind is None:
        return None
    reason = _driver_reason(exc)
    path = db.sqlite_path
    location = str(path.resolve()) if path is not None else db.display_url
    if path is None:
        where = "the database server's disk" if not db.is_sqlite else "memory"
    else:
        where = f"the disk holding {path.resolve().parent}"
    free = _free_bytes(path)
    if kind == "io" and free is not None and free < _NEARLY_FULL_BYTES:
        kind = "full"  # SQLite says "disk I/O error" when it cannot even create its -shm
    if kind == "full":
        detail = f"{where} has {free:,} bytes free" if free is not None else f"{where} is full"
        return DatabaseFullError(location, f"{detail}; {reason}")
    if kind == "readonly":
        if db.is_sqlite:
            hint = (
                "Check that this user may write the database file and its folder, and that "
                "the filesystem is not mounted read-only"
            )
        else:
            hint = "Point metadata_url at the primary server: this one accepts no writes"
        return DatabaseIOError(location, f"it is read-only ({reason})", hint=hint)
    return DatabaseIOError(
        location,
        f"the storage failed ({reason})",
        hint="Check the disk: an I/O error can mean a failing disk or a network filesystem "
        "that went away; free space shows with: loopline doctor",
    )


def _storage_kind(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return _SQLITE_KINDS.get(code & 0xFF)
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(state, str):
        return _PG_KINDS.get(state)
    if type(exc).__module__.startswith("sqlite3"):
        text = str(exc).lower()
        return next((kind for needle, kind in _SQLITE_TEXTS if needle in text), None)
    return None


def _driver_reason(exc: BaseException) -> str:
    """The driver's own message, first line only: it never holds the SQL or parameters."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    name = getattr(exc, "sqlite_errorname", None)
    return f"{name}: {text}" if isinstance(name, str) else text


def _free_bytes(path: Path | None) -> int | None:
    if path is None:
        return None
    folder = path.resolve().parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


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
