"""Optuna's RDB storage in the project's own metadata database.

Studies live beside loopline's tables, in the same SQLite file or PostgreSQL database,
so a search is as durable (and as shared) as the runs that track it. The two never
collide: Optuna creates ``studies``, ``trials``, ... and keeps its schema version in
``alembic_version``; loopline's tables all start with ``ll_`` and its version lives in
``loopline_alembic_version`` (a test proves it on both databases, in both orders).

On SQLite several processes can run trials of one study at once: the file is in WAL
mode (readers never block the writer) and every connection waits up to the project's
busy timeout for the write lock. Optuna creates its tables on first use; two processes
doing that at the same moment can trip over each other, so opening retries.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from loopline.config import redact_url
from loopline.store.db.engine import sqlite_file
from loopline.train.errors import SearchStorageError, TrainError

if TYPE_CHECKING:
    from types import ModuleType

    import sqlalchemy as sa
    from optuna.storages import RDBStorage

_OPEN_ATTEMPTS = 5
log = logging.getLogger(__name__)


def import_optuna() -> ModuleType:
    """Optuna, imported on first use with its own logging turned down to warnings."""
    try:
        import optuna
    except ModuleNotFoundError as exc:
        raise TrainError(
            "Hyperparameter search needs Optuna, which is not installed",
            hint="Install it with: pip install 'loopline[train]'",
        ) from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def optuna_url(metadata_url: str) -> str:
    """The SQLAlchemy URL Optuna's RDBStorage should open for ``metadata_url``.

    loopline's URLs are SQLAlchemy URLs already; this pins the PostgreSQL driver loopline
    installs (psycopg 3) and refuses an in-memory SQLite database, which another
    connection (Optuna's engine, another worker) could never see.
    """
    import sqlalchemy as sa

    try:
        url = sa.make_url(metadata_url)
    except sa.exc.ArgumentError as exc:
        raise SearchStorageError(
            f"Cannot store a search in {redact_url(metadata_url)!r}: not a database URL",
            url=redact_url(metadata_url),
        ) from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if sqlite_file(metadata_url) is None:
            raise SearchStorageError(
                f"Cannot store a search in the in-memory database {redact_url(metadata_url)!r}",
                hint="Use a SQLite file (the default project store) or PostgreSQL",
                url=redact_url(metadata_url),
            )
        url = url.set(drivername="sqlite")
    elif backend == "postgresql":
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
    else:
        raise SearchStorageError(
            f"Cannot store a search in {redact_url(metadata_url)!r}: expected a SQLite or "
            "PostgreSQL URL",
            url=redact_url(metadata_url),
        )
    text = url.render_as_string(hide_password=False)
    # Optuna formats the URL as a template ({SCHEMA_VERSION}); keep literal braces literal.
    return text.replace("{", "{{").replace("}", "}}")


def open_storage(
    metadata_url: str,
    *,
    busy_timeout: float = 30.0,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
) -> RDBStorage:
    """Optuna's RDBStorage on the project's metadata database.

    ``heartbeat_interval`` (seconds) makes each running trial prove it is alive; a trial
    silent for ``grace_period`` seconds (default: twice the interval) belongs to a dead
    process and is marked FAIL when a worker next starts a trial. Close the storage with
    :func:`close_storage`.
    """
    import_optuna()
    import sqlalchemy as sa
    from optuna.exceptions import StorageInternalError
    from optuna.storages import RDBStorage

    url = optuna_url(metadata_url)
    engine_kwargs: dict[str, Any]
    path = sqlite_file(metadata_url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _ensure_wal(str(path), busy_timeout)
        engine_kwargs = {"connect_args": {"timeout": busy_timeout}}
    else:
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    delay = 0.05
    for attempt in range(1, _OPEN_ATTEMPTS + 1):
        try:
            storage = RDBStorage(url, engine_kwargs=engine_kwargs)
            # The heartbeat is "experimental" in Optuna, and passing it to the constructor
            # warns; loopline relies on it knowingly. Setting the two attributes the
            # constructor would set avoids the warning without touching the process's
            # warning filters, which threads share (a step in another thread resetting
            # them let the warning through).
            storage.heartbeat_interval = heartbeat_interval
            storage.grace_period = grace_period
            if path is not None:
                _tune_sqlite(storage.engine, busy_timeout)
            return storage
        except (sa.exc.SQLAlchemyError, StorageInternalError) as exc:
            # Another process is creating Optuna's tables or stamping its version right
            # now; once it is done, opening finds them and succeeds.
            if attempt == _OPEN_ATTEMPTS:
                raise SearchStorageError(
                    f"Cannot open the Optuna storage in {redact_url(metadata_url)}: "
                    f"{_first_line(exc)}",
                    url=redact_url(metadata_url),
                ) from exc
            log.debug("opening the Optuna storage failed (attempt %d): %s", attempt, exc)
        time.sleep(delay * (0.5 + random.random()))
        delay *= 2
    raise AssertionError("unreachable")


def close_storage(storage: RDBStorage) -> None:
    """Release the storage's connections (its engine and this thread's session)."""
    try:
        storage.remove_session()
    finally:
        storage.engine.dispose()


def _tune_sqlite(engine: sa.Engine, busy_timeout: float) -> None:
    """Give Optuna's SQLite connections loopline's settings: in WAL mode a commit need not
    wait for the disk (``synchronous = NORMAL`` loses at most the last commits on power
    loss, never consistency), which makes the many small commits of a trial cheap."""
    from sqlalchemy import event

    timeout_ms = int(busy_timeout * 1000)

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cur.execute("PRAGMA synchronous = NORMAL")
        finally:
            cur.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened while Optuna set up start afresh, tuned


def _ensure_wal(path: str, busy_timeout: float) -> None:
    """Put the SQLite file in WAL mode (a property of the file, kept once set), as loopline's
    own engine does, so Optuna's connections and loopline's never block each other's reads."""
    conn = sqlite3.connect(path, timeout=busy_timeout)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()
        if not mode or str(mode[0]).lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
    except sqlite3.Error as exc:
        raise SearchStorageError(
            f"Cannot use the SQLite database {path}: {exc}", url=str(path)
        ) from exc
    finally:
        conn.close()


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__
