"""Failed requests, counted where they happen and added to ``ll_prediction_failures``.

A server counts in memory, per (version, role, second, kind, column), and adds the counts
to the table every flush (a few rows per flush, only when something failed): the
monitor's ``health.error_share`` of a window is then exact, and so is a canary's, whose
failed requests the primary answered instead. A process killed between two flushes loses
at most the counts of one flush interval, as the prediction log does.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopline.store.db.engine import Database

#: Kinds of failure: the rows did not match the signature, or the model raised.
INVALID = "invalid"
MODEL_ERROR = "model_error"

_Key = tuple[int, str, datetime, str, str]


class FailureLog:
    """In-memory counts of failed requests of one model, flushed to the database."""

    def __init__(self, db: Database, model: str) -> None:
        self.db = db
        self.model = model
        self._lock = threading.Lock()
        self._requests: Counter[_Key] = Counter()
        self._rows: Counter[_Key] = Counter()
        self.flushed = 0

    def add(
        self,
        version: int,
        role: str,
        kind: str,
        *,
        column: str = "",
        rows: int = 0,
        at: float | None = None,
    ) -> None:
        """Count one failed request of ``rows`` rows (``at``: its arrival, epoch seconds)."""
        moment = datetime.fromtimestamp(int(at), UTC) if at is not None else _now_second()
        key = (int(version), role, moment, kind, column[:255])
        with self._lock:
            self._requests[key] += 1
            self._rows[key] += int(rows)

    def pending(self) -> int:
        with self._lock:
            return sum(self._requests.values())

    def flush(self) -> int:
        """Add the counts so far to the table; returns how many requests they covered.
        On a database error the counts are kept for the next flush."""
        with self._lock:
            requests, rows = self._requests, self._rows
            self._requests, self._rows = Counter(), Counter()
        if not requests:
            return 0
        from loopline.monitor.tables import failures

        values = [
            {
                "model": self.model,
                "version": version,
                "role": role,
                "at": at,
                "kind": kind,
                "column": column,
                "requests": n,
                "rows": rows[(version, role, at, kind, column)],
            }
            for (version, role, at, kind, column), n in requests.items()
        ]
        try:
            self.db.run_write(lambda c: c.execute(failures.insert(), values))
        except Exception:
            with self._lock:
                self._requests.update(requests)
                self._rows.update(rows)
            raise
        total = sum(requests.values())
        self.flushed += total
        return total


def _now_second() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
