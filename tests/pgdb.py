"""A fresh PostgreSQL database per test (or module), dropped afterwards."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """CREATE DATABASE ll_test_<random> on ``server``; yield its URL; drop it.

    ``DROP ... WITH (FORCE)`` ends the test's own leftover connections, but not a backend
    of another role (an autovacuum worker that just started on the new database): that
    refusal is retried for a few seconds, and a database still in use then is left (said
    on stderr) rather than failing a test that passed."""
    import sqlalchemy as sa

    name = f"ll_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
        deadline = time.monotonic() + 10
        while True:
            try:
                with admin.connect() as conn:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except sa.exc.DBAPIError as exc:
                if "must be a member of the role" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    sys.stderr.write(f"test database {name} left behind: {exc}\n")
                    break
                time.sleep(0.2)
    finally:
        admin.dispose()
