"""The in-process executor: a thread pool of ``parallelism`` threads.

Threads, not processes: the work loopline submits (fitting, scoring, Parquet and database
I/O) spends its time in numpy, scikit-learn, pyarrow and drivers, which release the GIL,
and threads share the driver's open stores and loaded models for free.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from loopline.execute.base import Resources, check_resources
from loopline.execute.errors import ExecutorError

T = TypeVar("T")


class LocalExecutor:
    """Units run in threads of this process, up to ``parallelism`` at once."""

    name = "local"
    shares_memory = True

    def __init__(self, parallelism: int | None = None, *, thread_name: str = "loopline") -> None:
        if parallelism is not None and (
            isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1
        ):
            raise ExecutorError(f"parallelism must be an int >= 1, not {parallelism!r}")
        self.parallelism = parallelism or max(1, min(4, os.cpu_count() or 1))
        self._cpus = os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.parallelism, thread_name_prefix=thread_name)
        self._closed = False

    def submit(
        self, fn: Callable[..., T], /, *args: Any, resources: Resources | None = None
    ) -> Future[T]:
        if self._closed:
            raise ExecutorError("this executor was shut down; create a new one")
        if resources is not None:
            self.check(resources)
        return self._pool.submit(fn, *args)

    def wait(
        self, futures: Iterable[Future[Any]], timeout: float | None = None
    ) -> tuple[set[Future[Any]], set[Future[Any]]]:
        done, pending = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        return set(done), set(pending)

    def check(self, resources: Resources) -> None:
        check_resources(resources)
        if resources.gpus > 0:
            raise ExecutorError(
                f"a unit asks for {resources.gpus:g} GPU(s); the local executor has none",
                hint='Run it on a cluster executor ([executor] kind = "ray") with GPUs',
            )
        if resources.cpus > self._cpus:
            raise ExecutorError(
                f"a unit asks for {resources.cpus:g} CPUs; this machine has {self._cpus}",
                hint="Lower its cpus, or run it on a cluster executor",
            )

    def shutdown(self, cancel: bool = False) -> None:
        self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=cancel)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
