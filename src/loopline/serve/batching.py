"""Adaptive micro-batching: concurrent requests for one model become one model call.

Each served model version has a :class:`MicroBatcher`: a queue and one consumer task. The
consumer takes everything queued (up to ``max_rows`` rows) and runs it as one vectorised
call in a worker thread, off the event loop. While that call runs, new requests queue up,
so batches grow with the load by themselves.

Before starting a call it may also wait, at most ``max_wait_s``, but only when waiting
can help: when other requests have arrived and are still being read, parsed or validated
(:class:`Arrivals` counts them). A lone request never waits, so latency under light load
is the same as without batching.

A call of a few rows to a fast model runs in the event loop itself: handing it to the
worker thread and back (two thread wake-ups and the loop's self-pipe) costs more than the
call. Only while the calls of this batcher's model measure under ``inline_s`` on average
and the batch has at most ``inline_rows`` rows; a slower model, or a model that becomes
slower, goes back to the worker thread at its next call, so the loop is never held for
longer than about ``inline_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopline.registry.validation import ValidationResult

log = logging.getLogger("loopline.serve")


#: Calls of at most this many rows may run in the event loop ...
INLINE_ROWS = 64
#: ... while such calls take at most this long on average (seconds).
INLINE_S = 0.001


class BatcherClosed(Exception):
    """The model version behind this batcher was swapped out; submit to the new one."""


class Arrivals:
    """Requests that have arrived but not reached a batcher yet (being read or validated)."""

    def __init__(self) -> None:
        self.pending = 0
        self._waiters: list[asyncio.Future[None]] = []

    def enter(self) -> None:
        self.pending += 1

    def leave(self) -> None:
        self.pending -= 1
        if self.pending <= 0:
            self.pending = 0
            self.wake()

    def wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def waiter(self) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut


@dataclass
class Job:
    """One request's rows, waiting for its share of a model call."""

    columns: dict[str, Any]
    n_rows: int
    request_id: str
    #: Wall-clock arrival (seconds since the epoch), for the log.
    arrived: float
    #: ``time.perf_counter()`` at arrival, for latencies.
    t0: float
    future: asyncio.Future[Any] | None = field(default=None, repr=False)
    #: The rows as one float64 matrix in the signature's column order, instead of
    #: ``columns`` (then empty), when validation kept one (see :mod:`loopline.serve.matrix`).
    matrix: Any = field(default=None, repr=False)

    @classmethod
    def of(cls, result: ValidationResult, request_id: str, arrived: float, t0: float) -> Job:
        """The job of a passing validation (its matrix, when it kept one)."""
        matrix = getattr(result, "matrix", None)
        return cls(result.columns, result.n_rows, request_id, arrived, t0, matrix=matrix)


class MicroBatcher:
    """Gathers jobs into calls of ``run_batch(jobs) -> results`` (one result per job)."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[Job]], list[Any]],
        executor: Executor,
        *,
        max_rows: int,
        max_wait_s: float,
        arrivals: Arrivals | None = None,
        on_depth: Callable[[int], None] | None = None,
        name: str = "model",
        inline_rows: int = INLINE_ROWS,
        inline_s: float = INLINE_S,
    ) -> None:
        self.run_batch = run_batch
        self.executor = executor
        self.max_rows = max(1, int(max_rows))
        self.max_wait_s = max(0.0, float(max_wait_s))
        self.arrivals = arrivals or Arrivals()
        self.on_depth = on_depth
        self.name = name
        self._queue: deque[Job] = deque()
        self._rows = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        self.jobs = 0
        self.inline_rows = max(0, int(inline_rows))
        self.inline_s = max(0.0, float(inline_s))
        #: Moving average of the seconds a call of at most ``inline_rows`` rows took (None
        #: until one was timed), and how many calls ran in the event loop.
        self.small_call_s: float | None = None
        self.inline_batches = 0

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closing

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._consume(), name=f"loopline-batcher-{self.name}"
            )

    def submit_nowait(self, job: Job) -> asyncio.Future[Any]:
        """Queue ``job``; the returned future gets its result (or exception)."""
        if self._closing or self._wake is None:
            raise BatcherClosed(self.name)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        job.future = fut
        self._queue.append(job)
        self._rows += job.n_rows
        self._wake.set()
        if self._rows >= self.max_rows:
            self.arrivals.wake()
        return fut

    async def close(self) -> None:
        """Stop taking jobs; finish those queued (their requests still get answers)."""
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        self.arrivals.wake()
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _consume(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if (
                self.max_wait_s > 0
                and self._rows < self.max_rows
                and self.arrivals.pending > 0
                and not self._closing
            ):
                await self._gather(loop)
            batch = self._take()
            if self.on_depth is not None:
                self.on_depth(len(self._queue))
            rows = sum(job.n_rows for job in batch)
            try:
                if self._inline(rows):
                    self.inline_batches += 1
                    results = self._timed(batch, rows)
                else:
                    results = await loop.run_in_executor(self.executor, self._timed, batch, rows)
            except Exception as exc:
                results = await self._isolate(loop, batch, exc)
            self.batches += 1
            self.jobs += len(batch)
            for job, result in zip(batch, results, strict=True):
                fut = job.future
                if fut is None or fut.done():
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

    def _inline(self, rows: int) -> bool:
        """Whether a call of ``rows`` rows runs in the event loop (see the module's doc)."""
        known = self.small_call_s
        return (
            self.inline_s > 0
            and rows <= self.inline_rows
            and known is not None
            and known <= self.inline_s
        )

    def _timed(self, batch: list[Job], rows: int) -> list[Any]:
        if rows > self.inline_rows:
            return self.run_batch(batch)
        t = time.perf_counter()
        try:
            return self.run_batch(batch)
        finally:
            took = time.perf_counter() - t
            known = self.small_call_s
            self.small_call_s = took if known is None else 0.8 * known + 0.2 * took

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until the requests in flight have queued, the batch is full, or the oldest
        queued request has waited ``max_wait_s``."""
        remaining = self._queue[0].t0 + self.max_wait_s - time.perf_counter()
        if remaining <= 0:
            return
        fut = self.arrivals.waiter()
        handle = loop.call_later(remaining, _resolve, fut)
        try:
            await fut
        finally:
            handle.cancel()

    def _take(self) -> list[Job]:
        batch = [self._queue.popleft()]
        rows = batch[0].n_rows
        while self._queue and rows + self._queue[0].n_rows <= self.max_rows:
            job = self._queue.popleft()
            rows += job.n_rows
            batch.append(job)
        self._rows -= rows
        return batch

    async def _isolate(
        self, loop: asyncio.AbstractEventLoop, batch: list[Job], exc: Exception
    ) -> list[Any]:
        """A failed call: retry each job alone, so one bad request fails only itself."""
        if len(batch) == 1:
            log.warning("model call failed for request %s: %s", batch[0].request_id, exc)
            return [exc]
        results: list[Any] = []
        for job in batch:
            try:
                results.extend(await loop.run_in_executor(self.executor, self.run_batch, [job]))
            except Exception as one:
                log.warning("model call failed for request %s: %s", job.request_id, one)
                results.append(one)
        return results


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
