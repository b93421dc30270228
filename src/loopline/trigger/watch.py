"""The file watcher: score every new CSV/Parquet file of a folder or S3 prefix, exactly once.

The serverless-trigger role (a Lambda on an S3 prefix), as one restartable process. Each
poll lists the source through the :class:`~loopline.store.objects.base.ObjectStore`
abstraction and, for each file whose ``(key, etag)`` the ledger (``ll_trigger_files``)
does not know:

1. *settle*: a file is read only once its etag (size, mtime or S3 ETag) has been the same
   for ``settle_s`` seconds, across at least two polls, so a file being written is not read
   half-way; dotfiles, ``~`` files and names that are not ``*.csv``/``*.parquet`` (such as
   ``*.part``, ``*.tmp``) are ignored, and so is the ``failed/`` prefix;
2. *claim*: the file is copied to a local temporary file (hashing it), and a ``processing``
   row is inserted in one transaction; the unique ``(source, key, etag)`` makes the claim
   exclusive. The temporary file (``loopline-watch-*.tmp`` in ``TMPDIR``) is named after
   its watcher's process, so the next watcher removes those a killed one left behind
   (see :mod:`loopline.store.tempfiles`);
3. *score*: :func:`~loopline.trigger.batch.score_file` writes the output atomically under
   the destination, with a deterministic name (``<key stem>-<sha256[:12]>.parquet``);
4. *done*: the row is marked ``done``.

A watcher killed anywhere (SIGKILL) and restarted finds its ``processing`` rows: if the
output exists the scoring finished and the row is marked done without scoring again;
otherwise the file is scored again. Failures are retried ``attempts`` times with
exponential backoff (status ``retry``); after the last one the row is ``failed`` and an
error report ``<key stem>-<sha256[:12]>.error.json`` is written under the destination.
An input that cannot be scored at all (unreadable, missing columns) fails at once.

One watcher per source and name: a restarted watcher with the same name takes over its
claims at once; a watcher of another name leaves them alone for ``lease_s`` seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.store import tempfiles
from loopline.store.db.types import to_utc
from loopline.store.errors import ObjectNotFoundError
from loopline.trigger.batch import (
    DEFAULT_CHUNK_ROWS,
    INVALID_SUFFIX,
    ChunkScorer,
    Source,
    Target,
    file_format,
    open_log_writer,
    score_file,
)
from loopline.trigger.errors import TriggerError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from loopline.store.objects.base import ObjectInfo, ObjectStore
    from loopline.store.stores import Stores
    from loopline.trigger.batchlog import BatchLogWriter

log = logging.getLogger("loopline.trigger")

FAILED_PREFIX = "failed/"
ERROR_SUFFIX = ".error.json"
_COPY_CHUNK = 1024 * 1024
#: Names of the temporary copies of inputs, in ``TMPDIR``.
TEMP_PREFIX = "loopline-watch-"
TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class FileOutcome:
    """What a poll did with one file.

    ``status``: ``done`` (scored now), ``recovered`` (an interrupted claim whose output was
    complete: marked done, not scored again), ``retry`` (failed, will be tried again) or
    ``failed`` (no attempt left, or an input that can never be scored).
    """

    key: str
    etag: str
    status: str
    attempts: int
    output_key: str | None = None
    rows_scored: int = 0
    rows_invalid: int = 0
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass
class _Claim:
    action: str  # "score", "recovered", "skip"
    row_id: int | None = None
    attempts: int = 0


class Watcher:
    """Scores each new file of ``source_url`` with ``model_ref`` into ``dest_url``, once.

    ``source_url``/``dest_url`` are folder paths or object store URLs (``s3://bucket/in``).
    ``name`` tells watchers apart in the ledger (default: derived from source, destination
    and model). The alias of ``model_ref`` is resolved at each poll, so moving it switches
    the model for the next files.
    """

    def __init__(
        self,
        stores: Stores,
        source_url: str,
        model_ref: str,
        dest_url: str,
        *,
        poll_s: float = 2.0,
        settle_s: float = 1.0,
        attempts: int = 3,
        backoff_s: float = 5.0,
        lease_s: float = 600.0,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        out_format: str = "parquet",
        name: str | None = None,
        log_predictions: bool = True,
        on_outcome: Callable[[FileOutcome], None] | None = None,
    ) -> None:
        from loopline.store.objects.base import open_object_store

        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        if out_format not in ("parquet", "csv"):
            raise ValueError("out_format must be 'parquet' or 'csv'")
        self.stores = stores
        self.source = _canonical(source_url)
        self.dest = _canonical(dest_url)
        if "://" not in self.source and not Path(self.source).is_dir():
            raise TriggerError(
                f"The watched folder {self.source} does not exist", hint="Create it first"
            )
        if "://" not in self.dest:
            Path(self.dest).mkdir(parents=True, exist_ok=True)
        self.model_ref = model_ref
        self.poll_s = float(poll_s)
        self.settle_s = float(settle_s)
        self.attempts = int(attempts)
        self.backoff_s = float(backoff_s)
        self.lease_s = float(lease_s)
        self.chunk_rows = int(chunk_rows)
        self.out_format = out_format
        digest = hashlib.sha256(f"{self.source}|{self.dest}|{model_ref}".encode()).hexdigest()
        self.name = name or f"watch-{digest[:12]}"
        self.on_outcome = on_outcome
        s3 = stores.settings.s3
        self.source_store: ObjectStore = open_object_store(self.source, s3=s3)
        self.dest_store: ObjectStore = open_object_store(self.dest, s3=s3)
        self._skip_prefix = _nested_prefix(self.source, self.dest)
        self._writer: BatchLogWriter | None = (
            open_log_writer(stores, self.chunk_rows) if log_predictions else None
        )
        self._scorer: ChunkScorer | None = None
        #: key -> (etag, monotonic time it was first seen with that etag)
        self._seen: dict[str, tuple[str, float]] = {}
        self._finished: set[tuple[str, str]] | None = None
        #: Keys seen but not yet settled at the last poll.
        self.pending: set[str] = set()
        self._temp_swept = False

    # -- running ----------------------------------------------------------------------------

    def run_once(self, stop: threading.Event | None = None) -> list[FileOutcome]:
        """One poll: score every settled, unscored file; returns what was done per file.

        With ``stop`` set between files, returns after the current file (graceful stop).
        """
        self._refresh_model()
        if self._finished is None:
            self._finished = self._load_finished()
        open_rows = self._open_rows()
        now = time.monotonic()
        outcomes: list[FileOutcome] = []
        self.pending = set()
        listed = [k for k in self.source_store.list("") if self._wanted(k)]
        for key in list(self._seen):
            if key not in listed:
                del self._seen[key]
        for key in listed:
            if stop is not None and stop.is_set():
                break
            try:
                info = self.source_store.stat(key)
            except ObjectNotFoundError:
                continue  # removed since the listing
            if (key, info.etag) in self._finished:
                continue
            seen = self._seen.get(key)
            if seen is None or seen[0] != info.etag:
                self._seen[key] = (info.etag, now)
                if self.settle_s > 0:
                    self.pending.add(key)
                    continue
            elif now - seen[1] < self.settle_s:
                self.pending.add(key)
                continue
            row = open_rows.get((key, info.etag))
            if row is not None and not self._due(row):
                continue
            outcome = self._process(key, info)
            if outcome is None:
                continue
            outcomes.append(outcome)
            if self.on_outcome is not None:
                self.on_outcome(outcome)
        return outcomes

    def run_forever(self, stop_event: threading.Event) -> None:
        """Poll every ``poll_s`` seconds until ``stop_event`` is set; then flush and return."""
        try:
            while not stop_event.is_set():
                try:
                    self.run_once(stop_event)
                except TriggerError:
                    raise
                except Exception as exc:  # a store or database hiccup: try again next poll
                    log.warning("watch poll failed (%s); retrying in %.1fs", exc, self.poll_s)
                stop_event.wait(self.poll_s)
        finally:
            self.close()

    def close(self) -> None:
        """Flush the prediction log."""
        if self._writer is not None:
            self._writer.close()

    # -- one file ---------------------------------------------------------------------------

    def _process(self, key: str, info: ObjectInfo) -> FileOutcome | None:
        started = time.perf_counter()
        temp = self._new_temp()
        try:
            sha = self._copy(key, temp)
            try:
                again = self.source_store.stat(key)
            except ObjectNotFoundError:
                return None
            if again.etag != info.etag:
                self._seen.pop(key, None)  # still changing: let it settle again
                return None
            stem = os.path.splitext(key)[0]
            base = f"{stem}-{sha[:12]}"
            output_key = f"{base}.{self.out_format}"
            claim = self._claim(key, info, sha, output_key)
            if claim.action == "skip":
                return None
            if claim.action == "recovered":
                self._finish_key(key, info.etag)
                return FileOutcome(
                    key, info.etag, "recovered", claim.attempts, output_key=output_key
                )
            assert claim.row_id is not None
            return self._score(key, info, temp, base, output_key, claim, started)
        finally:
            temp.unlink(missing_ok=True)

    def _score(
        self,
        key: str,
        info: ObjectInfo,
        temp: Path,
        base: str,
        output_key: str,
        claim: _Claim,
        started: float,
    ) -> FileOutcome:
        assert claim.row_id is not None
        assert self._scorer is not None
        source = Source(key, lambda: temp.open("rb"), fmt=file_format(key))
        try:
            result = score_file(
                self._scorer,
                source,
                Target.in_store(self.dest_store, output_key),
                chunk_rows=self.chunk_rows,
                invalid=Target.in_store(self.dest_store, base + INVALID_SUFFIX),
            )
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            final = isinstance(exc, TriggerError) or claim.attempts >= self.attempts
            status = "failed" if final else "retry"
            delay = self.backoff_s * 2 ** (claim.attempts - 1)
            self._mark(claim.row_id, status, error=error, retry_in=None if final else delay)
            if final:
                self._write_error(base, key, info, claim.attempts, error)
                self._finish_key(key, info.etag)
            log.warning("scoring %s failed (attempt %d): %s", key, claim.attempts, error)
            return FileOutcome(
                key,
                info.etag,
                status,
                claim.attempts,
                error=error,
                seconds=time.perf_counter() - started,
            )
        if self._writer is not None:
            self._writer.flush()
        self._mark(
            claim.row_id, "done", rows_scored=result.rows_scored, rows_invalid=result.rows_invalid
        )
        self._finish_key(key, info.etag)
        return FileOutcome(
            key,
            info.etag,
            "done",
            claim.attempts,
            output_key=output_key,
            rows_scored=result.rows_scored,
            rows_invalid=result.rows_invalid,
            seconds=time.perf_counter() - started,
        )

    def _new_temp(self) -> Path:
        """A private temporary file for one input; the first one also sweeps the stale
        temporary files of watchers that were killed."""
        folder = tempfile.gettempdir()
        if not self._temp_swept:
            self._temp_swept = True
            tempfiles.sweep(folder, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
        fd, name = tempfiles.create(folder, TEMP_PREFIX, TEMP_SUFFIX, mode=0o600)
        os.close(fd)
        return Path(name)

    def _copy(self, key: str, temp: Path) -> str:
        """Copy the source object to ``temp``; its sha256."""
        digest = hashlib.sha256()
        with self.source_store.open(key) as src, temp.open("wb") as dst:
            while chunk := src.read(_COPY_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
        return digest.hexdigest()

    def _write_error(
        self, base: str, key: str, info: ObjectInfo, attempts: int, error: str
    ) -> None:
        report = {
            "source": self.source,
            "key": key,
            "etag": info.etag,
            "size": info.size,
            "model": self.model_ref,
            "watcher": self.name,
            "attempts": attempts,
            "error": error,
            "at": datetime.now(UTC).isoformat(),
        }
        try:
            self.dest_store.put(base + ERROR_SUFFIX, json.dumps(report, indent=2).encode())
        except Exception as exc:  # the ledger row holds the error anyway
            log.warning("could not write the error report of %s (%s)", key, exc)

    # -- the ledger -------------------------------------------------------------------------

    def _claim(self, key: str, info: ObjectInfo, sha: str, output_key: str) -> _Claim:
        import sqlalchemy as sa

        from loopline.trigger.tables import trigger_files as t

        output_exists = self.dest_store.exists(output_key)

        def fn(conn: sa.Connection) -> _Claim:
            now = datetime.now(UTC)
            row = conn.execute(
                sa.select(t).where(t.c.source == self.source, t.c.key == key, t.c.etag == info.etag)
            ).first()
            if row is None:
                result = conn.execute(
                    t.insert().values(
                        watcher=self.name,
                        source=self.source,
                        key=key,
                        etag=info.etag,
                        size=info.size,
                        sha256=sha,
                        status="processing",
                        attempts=1,
                        output_key=output_key,
                        created_at=now,
                        updated_at=now,
                    )
                )
                key_row = result.inserted_primary_key
                assert key_row is not None
                return _Claim("score", int(key_row[0]), 1)
            if row.status in ("done", "failed") or not self._due(row):
                return _Claim("skip")
            if row.status == "processing" and output_exists and row.output_key == output_key:
                conn.execute(
                    t.update()
                    .where(t.c.id == row.id)
                    .values(status="done", watcher=self.name, updated_at=now)
                )
                return _Claim("recovered", int(row.id), int(row.attempts))
            conn.execute(
                t.update()
                .where(t.c.id == row.id)
                .values(
                    status="processing",
                    watcher=self.name,
                    attempts=row.attempts + 1,
                    sha256=sha,
                    output_key=output_key,
                    next_attempt_at=None,
                    updated_at=now,
                )
            )
            return _Claim("score", int(row.id), int(row.attempts) + 1)

        return self.stores.db.run_write(fn)

    def _due(self, row: Any) -> bool:
        """Whether an open ledger row may be (re)claimed by this watcher now."""
        now = datetime.now(UTC)
        if row.status == "retry":
            return row.next_attempt_at is None or to_utc(row.next_attempt_at) <= now
        if row.status == "processing":
            # Our own claims are stale (this process holds none between files); another
            # watcher's only after the lease.
            if row.watcher == self.name:
                return True
            updated: datetime = row.updated_at
            return to_utc(updated) + timedelta(seconds=self.lease_s) <= now
        return False

    def _mark(
        self,
        row_id: int,
        status: str,
        *,
        error: str | None = None,
        retry_in: float | None = None,
        rows_scored: int | None = None,
        rows_invalid: int | None = None,
    ) -> None:

        from loopline.trigger.tables import trigger_files as t

        now = datetime.now(UTC)
        values: dict[str, Any] = {"status": status, "updated_at": now, "error": error}
        if retry_in is not None:
            values["next_attempt_at"] = now + timedelta(seconds=retry_in)
        if rows_scored is not None:
            values["rows_scored"] = rows_scored
            values["rows_invalid"] = rows_invalid

        def fn(conn: sa.Connection) -> None:
            conn.execute(t.update().where(t.c.id == row_id).values(**values))

        self.stores.db.run_write(fn)

    def _open_rows(self) -> dict[tuple[str, str], Any]:
        import sqlalchemy as sa

        from loopline.trigger.tables import trigger_files as t

        with self.stores.db.read() as conn:
            rows = conn.execute(
                sa.select(t).where(
                    t.c.source == self.source, t.c.status.in_(("processing", "retry"))
                )
            ).all()
        return {(r.key, r.etag): r for r in rows}

    def _load_finished(self) -> set[tuple[str, str]]:
        import sqlalchemy as sa

        from loopline.trigger.tables import trigger_files as t

        with self.stores.db.read() as conn:
            rows = conn.execute(
                sa.select(t.c.key, t.c.etag).where(
                    t.c.source == self.source, t.c.status.in_(("done", "failed"))
                )
            ).all()
        return {(r.key, r.etag) for r in rows}

    def _finish_key(self, key: str, etag: str) -> None:
        if self._finished is not None:
            self._finished.add((key, etag))
        self._seen.pop(key, None)

    # -- helpers ----------------------------------------------------------------------------

    def _refresh_model(self) -> None:
        from loopline.registry import Registry
        from loopline.trigger.scoring import load_for_batch

        registry = Registry(self.stores)
        version = registry.resolve(self.model_ref)
        current = self._scorer
        if current is not None and current.loaded.version == version.version:
            return
        loaded = load_for_batch(self.stores, version.ref)  # the ONNX export alone, if kept
        self._scorer = ChunkScorer(loaded, chunk_rows=self.chunk_rows, log_writer=self._writer)
        log.info("watcher %s scores with %s", self.name, loaded.ref)

    def _wanted(self, key: str) -> bool:
        if key.startswith(FAILED_PREFIX):
            return False
        if self._skip_prefix and key.startswith(self._skip_prefix):
            return False
        if any(part.startswith((".", "~")) for part in key.split("/")):
            return False
        return file_format(key) is not None


def _canonical(url: str) -> str:
    if "://" in url and not url.startswith("file://"):
        return url.rstrip("/")
    if url.startswith("file://"):
        url = url[len("file://") :]
    return str(Path(url).expanduser().absolute())


def _nested_prefix(source: str, dest: str) -> str | None:
    """The key prefix of ``dest`` inside ``source`` (so outputs are not watched), or None."""
    if dest == source:
        raise TriggerError(
            f"The destination {dest} is the watched source itself",
            hint="Write the outputs to another folder or prefix",
        )
    if dest.startswith(source.rstrip("/") + "/"):
        return dest[len(source.rstrip("/")) + 1 :].rstrip("/") + "/"
    return None


__all__ = ["FileOutcome", "Watcher"]
