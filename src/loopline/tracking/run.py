"""A run handle: what a training script logs to, and how it reaches the database.

Logging calls are cheap: params, tags and metric points go into in-memory buffers under
one lock (so any thread may log), and a keeper thread writes them in batches: each time
``batch_size`` points are waiting, and every ``heartbeat_interval`` seconds together with
the run's heartbeat. A writer falling behind is caught up by the logging call itself once
``max_buffer`` points wait, which bounds memory. Everything buffered is written when the
run ends: at the end of its ``with`` block (normally, on an exception, on SIGINT or
SIGTERM; see :mod:`loopline.tracking.signals`), on :meth:`Run.finish`, and at interpreter
exit for runs that were never finished.

A process killed with SIGKILL cannot write anything; its run's heartbeat stops, and
:meth:`Tracker.reap_dead_runs` later records it as ``killed``.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import sqlalchemy as sa

from loopline.store.db import dialects
from loopline.tracking import signals
from loopline.tracking.errors import (
    ArtifactError,
    ParamConflictError,
    RunEndedError,
    TrackingArgumentError,
)
from loopline.tracking.tables import latest_metrics, metrics, params, run_artifacts, run_inputs
from loopline.tracking.tables import runs as runs_table
from loopline.tracking.tables import tags as tags_table
from loopline.tracking.values import (
    check_key,
    metric_step,
    metric_timestamp,
    metric_value,
    param_text,
)

if TYPE_CHECKING:
    from loopline.tracking.tracker import Tracker

log = logging.getLogger(__name__)

END_STATUSES = ("finished", "failed", "killed")
MAX_ERROR_LENGTH = 8000
#: A point waiting in the buffer: (key, step, timestamp, value or None for NaN).
Point = tuple[str, int, float, float | None]

_current: ContextVar[Run | None] = ContextVar("loopline_current_run", default=None)


def current_run() -> Run | None:
    """The run whose ``with`` block encloses this code (in this thread or task), if any.

    A convenience for deep call stacks; passing the run explicitly is clearer. Threads
    start with an empty context: hand them the run, or use ``contextvars.copy_context()``.
    """
    return _current.get()


class Run:
    """A running run. Create it with :meth:`Tracker.start_run`; end it with ``with`` or
    :meth:`finish`. Every ``log_*`` method is thread-safe."""

    def __init__(
        self,
        tracker: Tracker,
        run_id: str,
        experiment: str,
        name: str | None,
        parent_id: str | None,
        params: Mapping[str, str],
        *,
        heartbeat_interval: float,
        batch_size: int,
        max_buffer: int,
    ) -> None:
        self.id = run_id
        self.experiment = experiment
        self.name = name
        self.parent_id = parent_id
        self._tracker = tracker
        self._db = tracker.stores.db
        self._heartbeat_interval = heartbeat_interval
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._lock = threading.Lock()  # buffers and state
        self._flush_lock = threading.Lock()  # one writer at a time, in buffer order
        self._points: list[Point] = []
        self._params: dict[str, str] = dict(params)
        self._new_params: dict[str, str] = {}
        self._new_tags: dict[str, str] = {}
        self._next_step: dict[str, int] = {}
        self._metric_keys: set[str] = set()
        self._closing = False  # no more logging
        self._status = "running"
        self._tokens: list[Token[Run | None]] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._keeper: threading.Thread | None = None
        self._signals = False
        self._warned = False

    # -- lifecycle -------------------------------------------------------------------------

    def _start(self) -> None:
        """Begin heartbeats, take over SIGTERM/SIGINT if allowed, register for atexit."""
        self._signals = signals.acquire()
        _register(self)
        self._keeper = threading.Thread(
            target=self._keep, name=f"loopline-run-{self.id[:8]}", daemon=True
        )
        self._keeper.start()

    @property
    def status(self) -> str:
        """``running`` until the run ends, then ``finished``, ``failed`` or ``killed``."""
        return self._status

    def __enter__(self) -> Run:
        self._tokens.append(_current.set(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._tokens:
            token = self._tokens.pop()
            try:
                _current.reset(token)
            except ValueError:  # exited in another context than it was entered in
                _current.set(None)
        status, error = outcome_of(exc)
        self.finish(status, error)

    def finish(self, status: str = "finished", error: str | None = None) -> None:
        """End the run: write everything buffered, then its status, end time and error.

        Calling it again once it succeeded does nothing. If the database cannot be
        reached the error is raised and the data stays buffered: call ``finish`` again.
        """
        if status not in END_STATUSES:
            raise RunEndedError(
                f"Cannot finish run {self.id} as {status!r}; "
                f"expected one of {', '.join(END_STATUSES)}",
                run_id=self.id,
                status=str(self._status),
            )
        entered = signals.enter()
        try:
            with self._lock:
                if self._status != "running":
                    return
                self._closing = True
            self._stop.set()
            self._wake.set()
            keeper = self._keeper
            if keeper is not None and keeper is not threading.current_thread():
                keeper.join()
            if error is not None and len(error) > MAX_ERROR_LENGTH:
                error = error[: MAX_ERROR_LENGTH - 3] + "..."
            self._flush(final=(status, error, datetime.now(UTC)))
            self._status = status
            _unregister(self)
            signals.release(self._signals)
            self._signals = False
        finally:
            signals.leave(entered)

    # -- params and tags -------------------------------------------------------------------

    def log_param(self, key: str, value: object) -> None:
        """Record a param (stored as text). Logging the same value again is a no-op;
        a different value raises ParamConflictError."""
        self.log_params({key: value})

    def log_params(self, values: Mapping[str, object]) -> None:
        """Record several params at once; nothing is recorded if one of them conflicts."""
        checked = {check_key("param", k): param_text(v) for k, v in values.items()}
        entered = signals.enter()
        try:
            with self._lock:
                self._check_open()
                for key, text in checked.items():
                    old = self._params.get(key)
                    if old is not None and old != text:
                        raise ParamConflictError(self.id, key, old, text)
                for key, text in checked.items():
                    if key not in self._params:
                        self._params[key] = text
                        self._new_params[key] = text
        finally:
            signals.leave(entered)

    def set_tag(self, key: str, value: object) -> None:
        """Set a tag (stored as text); setting it again replaces the value."""
        self.set_tags({key: value})

    def set_tags(self, values: Mapping[str, object]) -> None:
        checked = {check_key("tag", k): param_text(v) for k, v in values.items()}
        entered = signals.enter()
        try:
            with self._lock:
                self._check_open()
                self._new_tags.update(checked)
        finally:
            signals.leave(entered)

    # -- metrics ---------------------------------------------------------------------------

    def log_metric(
        self,
        key: str,
        value: float,
        step: int | None = None,
        timestamp: float | None = None,
    ) -> None:
        """Buffer one point. ``step`` defaults to one past the last step of ``key`` logged
        through this handle (0 for the first); ``timestamp`` (seconds since the epoch) to
        now. NaN and infinities are allowed; a value that is not a number is refused."""
        if type(key) is not str or key not in self._metric_keys:
            check_key("metric", key)
            self._metric_keys.add(key)
        v = value if type(value) is float else metric_value(key, value)
        ts = time.time() if timestamp is None else metric_timestamp(key, timestamp)
        s = None if step is None else metric_step(key, step)
        if len(self._points) >= self._max_buffer:
            self.flush()  # before the point is taken: an interrupted flush drops nothing
        entered = signals.enter()
        with self._lock:
            if self._closing:
                signals.leave(entered)
                self._check_open()
            next_step = self._next_step
            previous = next_step.get(key)
            if s is None:
                s = 0 if previous is None else previous
            next_step[key] = s + 1
            self._points.append((key, s, ts, v if v == v else None))
            if len(self._points) >= self._batch_size:
                self._wake.set()
            try:
                # A signal that arrived during the call is raised here, and the call
                # is undone: every call that returned is kept, none that raised.
                signals.leave(entered)
            except BaseException:
                self._points.pop()
                if previous is None:
                    next_step.pop(key, None)
                else:
                    next_step[key] = previous
                raise

    def log_metrics(
        self,
        values: Mapping[str, float],
        step: int | None = None,
        timestamp: float | None = None,
    ) -> None:
        """Buffer one point per key, all with the same step (or each key's next step)
        and the same timestamp. Nothing is buffered if one value is invalid."""
        ts = time.time() if timestamp is None else metric_timestamp("*", timestamp)
        checked: list[tuple[str, float]] = []
        for key, value in values.items():
            if type(key) is not str or key not in self._metric_keys:
                check_key("metric", key)
                self._metric_keys.add(key)
            checked.append((key, value if type(value) is float else metric_value(key, value)))
        s = None if step is None else metric_step("*", step)
        if len(self._points) >= self._max_buffer:
            self.flush()
        entered = signals.enter()
        with self._lock:
            if self._closing:
                signals.leave(entered)
                self._check_open()
            next_step = self._next_step
            saved = dict(next_step)
            for key, v in checked:
                ks = next_step.get(key, 0) if s is None else s
                next_step[key] = ks + 1
                self._points.append((key, ks, ts, v if v == v else None))
            if len(self._points) >= self._batch_size:
                self._wake.set()
            try:
                signals.leave(entered)
            except BaseException:
                if checked:
                    del self._points[-len(checked) :]
                self._next_step = saved
                raise

    # -- inputs and artifacts (written at once: they are few and matter for lineage) ------

    def log_input(
        self,
        name: str,
        version: int | str,
        digest: str,
        *,
        kind: str = "dataset",
        role: str = "input",
    ) -> None:
        """Record that the run read ``name`` at ``version`` (content ``digest``).
        Recording the same input twice is a no-op."""
        name = check_key("input", name)
        kind = check_key("input kind", kind)
        role = check_key("input role", role)
        if isinstance(version, bool) or not isinstance(version, int | str) or version == "":
            raise TrackingArgumentError(
                f"Input {name!r}: version {version!r} is not valid; expected an int or a "
                "non-empty string",
                argument="version",
                value=version,
            )
        if not isinstance(digest, str) or not digest or len(digest) > 128:
            raise TrackingArgumentError(
                f"Input {name!r}: digest {digest!r} is not valid; expected the content "
                "hash of the version, as a string of at most 128 characters",
                argument="digest",
                value=digest,
            )
        self._check_open()
        row = {
            "run_id": self.id,
            "kind": kind,
            "name": name,
            "version": str(version),
            "digest": digest,
            "role": role,
        }

        def write(conn: sa.Connection) -> None:
            stmt = dialects.insert(conn, run_inputs).values(**row).on_conflict_do_nothing()
            conn.execute(stmt)

        self._write_now(write)

    def log_artifact(self, name: str, data: bytes | str | os.PathLike[str] | IO[bytes]) -> str:
        """Store ``data`` in the content store under ``name`` in this run; return its
        sha256 digest.

        ``data`` is bytes, a binary stream read to its end, or the path of a file (a
        ``str`` is a path: to store text, pass ``text.encode()``). A name holds one
        content for good: logging other content under it raises TrackingError.
        """
        name = check_key("artifact", name)
        self._check_open()
        cas = self._tracker.stores.cas
        if isinstance(data, bytes | bytearray | memoryview):
            size = memoryview(data).nbytes
            digest = str(cas.put(bytes(data)))
        elif isinstance(data, str | os.PathLike):
            path = Path(data)
            if not path.is_file():
                raise ArtifactError(
                    f"Artifact {name!r}: no file at {str(path)!r}",
                    hint="Pass the path of an existing file, bytes, or a binary stream "
                    "(to store text, pass text.encode())",
                    name=name,
                    reason="no such file",
                )
            size = path.stat().st_size
            digest = str(cas.put_file(path))
        elif hasattr(data, "read"):
            counter = _CountingReader(data)
            digest = str(cas.put(counter))  # type: ignore[arg-type]
            size = counter.size
        else:
            raise ArtifactError(
                f"Artifact {name!r}: cannot store a {type(data).__name__}; expected bytes, "
                "a file path or a binary stream",
                name=name,
                reason="unsupported type",
            )
        created = datetime.now(UTC)

        def write(conn: sa.Connection) -> None:
            existing = conn.execute(
                sa.select(run_artifacts.c.digest).where(
                    run_artifacts.c.run_id == self.id, run_artifacts.c.name == name
                )
            ).scalar_one_or_none()
            if existing is None:
                conn.execute(
                    run_artifacts.insert().values(
                        run_id=self.id, name=name, digest=digest, size=size, created_at=created
                    )
                )
            elif existing != digest:
                raise ArtifactError(
                    f"Artifact {name!r} of run {self.id} already holds content {existing[:12]}; "
                    f"it cannot change to {digest[:12]}",
                    hint="Artifacts are immutable: log the new content under another name",
                    name=name,
                    reason="already holds other content",
                )

        self._write_now(write)
        return digest

    # -- writing ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Write everything buffered now (the keeper thread does it on its own too)."""
        entered = signals.enter()
        try:
            self._flush()
        finally:
            signals.leave(entered)

    def _write_now(self, fn: Any) -> None:
        entered = signals.enter()
        try:
            self._db.run_write(fn)
        finally:
            signals.leave(entered)

    def _flush(
        self,
        *,
        heartbeat: bool = False,
        final: tuple[str, str | None, datetime] | None = None,
    ) -> None:
        with self._flush_lock:
            with self._lock:
                points, self._points = self._points, []
                new_params, self._new_params = self._new_params, {}
                new_tags, self._new_tags = self._new_tags, {}
            if not (points or new_params or new_tags or heartbeat or final):
                return
            try:
                self._db.run_write(
                    lambda conn: self._write(conn, points, new_params, new_tags, final)
                )
            except BaseException:
                with self._lock:
                    self._points[:0] = points
                    for key, text in new_params.items():
                        self._new_params.setdefault(key, text)
                    new_tags.update(self._new_tags)
                    self._new_tags = new_tags
                raise

    def _write(
        self,
        conn: sa.Connection,
        points: list[Point],
        new_params: dict[str, str],
        new_tags: dict[str, str],
        final: tuple[str, str | None, datetime] | None,
    ) -> None:
        run_id = self.id
        if new_params:
            conn.execute(
                params.insert(),
                [{"run_id": run_id, "key": k, "value": v} for k, v in new_params.items()],
            )
        if new_tags:
            ins = dialects.insert(conn, tags_table)
            conn.execute(
                ins.on_conflict_do_update(
                    index_elements=[tags_table.c.run_id, tags_table.c.key],
                    set_={"value": ins.excluded.value},
                ),
                [{"run_id": run_id, "key": k, "value": v} for k, v in new_tags.items()],
            )
        if points:
            dialects.insert_many(
                conn,
                metrics,
                ("run_id", "key", "step", "timestamp", "value"),
                [(run_id, *point) for point in points],
            )
            self._write_latest(conn, points)
        values: dict[str, Any] = {"heartbeat_at": dialects.now(conn)}
        where = [runs_table.c.id == run_id]
        if final is not None:
            status, error, ended = final
            values.update(status=status, error=error, end_time=ended)
        else:
            where.append(runs_table.c.status == "running")
        result = conn.execute(runs_table.update().where(*where).values(**values))
        if final is None and result.rowcount == 0 and not self._warned:
            self._warned = True
            log.warning(
                "run %s is no longer marked running in the database (was it reaped as "
                "killed while this process was paused?); it will be marked again when it "
                "ends",
                run_id,
            )

    def _write_latest(self, conn: sa.Connection, points: list[Point]) -> None:
        latest: dict[str, list[Any]] = {}
        for key, step, ts, value in points:
            cur = latest.get(key)
            if cur is None:
                latest[key] = [step, ts, value, 1]
            else:
                if step > cur[0] or (step == cur[0] and ts >= cur[1]):
                    cur[0], cur[1], cur[2] = step, ts, value
                cur[3] += 1
        t = latest_metrics
        ins = dialects.insert(conn, t)
        ex = ins.excluded
        newer = sa.or_(
            ex.step > t.c.step, sa.and_(ex.step == t.c.step, ex.timestamp >= t.c.timestamp)
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[t.c.run_id, t.c.key],
            set_={
                "step": sa.case((newer, ex.step), else_=t.c.step),
                "timestamp": sa.case((newer, ex.timestamp), else_=t.c.timestamp),
                "value": sa.case((newer, ex.value), else_=t.c.value),
                "points": t.c.points + ex.points,
            },
        )
        conn.execute(
            stmt,
            [
                {
                    "run_id": self.id,
                    "key": k,
                    "step": v[0],
                    "timestamp": v[1],
                    "value": v[2],
                    "points": v[3],
                }
                for k, v in latest.items()
            ],
        )

    def _keep(self) -> None:
        """The keeper thread: batches when woken, heartbeat (and batch) every interval."""
        interval = self._heartbeat_interval
        failures = 0
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._flush(heartbeat=True)
                failures = 0
            except Exception as exc:  # the database may come back: keep the data, retry
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("run %s: could not write to the database: %s", self.id, exc)
                self._stop.wait(min(interval, 0.1 * 2 ** min(failures, 6)))

    def _check_open(self) -> None:
        if self._closing:
            raise RunEndedError(
                f"Run {self.id} has ended ({self._status}); nothing more can be logged to it",
                hint="Start a new run with Tracker.start_run()",
                run_id=self.id,
                status=str(self._status),
            )

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, experiment={self.experiment!r}, status={self._status!r})"


def outcome_of(exc: BaseException | None) -> tuple[str, str | None]:
    """The status and error text a run ends with when ``exc`` ends its block."""
    if exc is None:
        return "finished", None
    if isinstance(exc, signals.Terminated):
        return "killed", str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "killed", "interrupted (KeyboardInterrupt)"
    if isinstance(exc, SystemExit):
        if exc.code in (None, 0):
            return "finished", None
        return "failed", f"SystemExit: {exc.code}"
    text = str(exc)
    return "failed", f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _CountingReader:
    """Counts the bytes read through it (to record a streamed artifact's size)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.size += len(data)
        return data


# -- runs that were never finished: written at interpreter exit -------------------------

_open_runs: set[Run] = set()
_open_lock = threading.Lock()
_atexit_registered = False


def _register(run: Run) -> None:
    global _atexit_registered
    with _open_lock:
        _open_runs.add(run)
        if not _atexit_registered:
            atexit.register(_finish_open_runs)
            _atexit_registered = True


def _unregister(run: Run) -> None:
    with _open_lock:
        _open_runs.discard(run)


def _finish_open_runs() -> None:
    with _open_lock:
        pending = list(_open_runs)
    if not pending:
        return
    received = signals.received_signal()
    # An uncaught exception was printed by the interpreter, which keeps it here.
    uncaught = getattr(sys, "last_value", None)
    if received is not None:
        status, error = outcome_of(signals.Terminated(received))
    elif isinstance(uncaught, BaseException):
        status, error = outcome_of(uncaught)
    else:
        status, error = "finished", None
    for run in pending:
        try:
            run.finish(status, error)
        except Exception as exc:
            sys.stderr.write(f"loopline: could not finish run {run.id} at exit: {exc}\n")
