"""Several processes write metadata at once: nothing is lost, nobody sees 'database is locked'."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import sqlalchemy as sa

from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.db.schema import events

WRITER = textwrap.dedent(
    """
    import sys
    from loopline.store.db.engine import Database
    from loopline.store.db.events import record_event

    url, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    db = Database(url, busy_timeout=30)
    for i in range(n):
        if i % 10 == 0:
            # a larger transaction now and then: read, then write several rows
            def many(conn, i=i):
                conn.exec_driver_sql("SELECT count(*) FROM ll_events").scalar()
                for j in range(5):
                    record_event(conn, "concurrency", f"{worker}", {"i": i, "j": j})
            db.run_write(many)
        else:
            db.run_write(lambda conn, i=i: record_event(conn, "concurrency", f"{worker}", {"i": i}))
    db.dispose()
    """
)

WORKERS = 4
PER_WORKER = 200


def test_four_processes_write_one_database_and_lose_nothing(metadata_url: str) -> None:
    db = Database(metadata_url, create=True)
    migrate.upgrade(db)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, metadata_url, f"w{k}", str(PER_WORKER)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(WORKERS)
    ]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * WORKERS, errors
    assert not any("locked" in e for e in errors), errors

    per_worker = PER_WORKER + (PER_WORKER // 10) * 4  # each 10th call writes 5 rows
    with db.read() as conn:
        counts = dict(
            conn.execute(
                sa.select(events.c.subject, sa.func.count()).group_by(events.c.subject)
            ).all()
        )
        distinct_ids = conn.execute(sa.select(sa.func.count(sa.distinct(events.c.id)))).scalar()
    assert counts == {f"w{k}": per_worker for k in range(WORKERS)}
    assert distinct_ids == WORKERS * per_worker
    db.dispose()
