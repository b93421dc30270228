"""The ``Executor`` protocol and the resources a unit of work asks for."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from loopline.execute.errors import ExecutorError

T = TypeVar("T")


@dataclass(frozen=True)
class Resources:
    """What one unit of work needs: CPUs, memory and GPUs. The local executor checks the
    request fits this machine; a cluster executor schedules on it."""

    cpus: float = 1.0
    memory_mb: int | None = None
    gpus: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"cpus": self.cpus, "memory_mb": self.memory_mb, "gpus": self.gpus}


def check_resources(resources: Resources) -> Resources:
    """``resources`` if its numbers make sense; an ExecutorError naming the bad one."""
    if isinstance(resources.cpus, bool) or not isinstance(resources.cpus, int | float):
        raise ExecutorError(f"cpus must be a number, not {resources.cpus!r}")
    if resources.cpus <= 0:
        raise ExecutorError(f"cpus must be > 0, not {resources.cpus}")
    if resources.gpus < 0:
        raise ExecutorError(f"gpus must be >= 0, not {resources.gpus}")
    if resources.memory_mb is not None and resources.memory_mb <= 0:
        raise ExecutorError(f"memory_mb must be > 0, not {resources.memory_mb}")
    return resources


class Executor(Protocol):
    """Runs callables, several at once, and hands back futures of their results.

    ``parallelism`` is how many units can run at once; ``shares_memory`` says whether a
    submitted callable runs in this process (it may then use open handles such as the
    driver's stores) or elsewhere (arguments are pickled; it opens what it needs).
    A unit that raises sets its future's exception; the executor itself keeps running.
    """

    name: str
    parallelism: int
    shares_memory: bool

    def submit(
        self, fn: Callable[..., T], /, *args: Any, resources: Resources | None = None
    ) -> Future[T]: ...

    def wait(
        self, futures: Iterable[Future[Any]], timeout: float | None = None
    ) -> tuple[set[Future[Any]], set[Future[Any]]]:
        """Block until one of ``futures`` is done (or ``timeout`` s): (done, pending).
        A cluster executor lends the caller's resources to the units while it waits,
        so a unit that fans out work of its own cannot starve it."""
        ...

    def check(self, resources: Resources) -> None:
        """Raise ExecutorError when a unit asking for ``resources`` could never run here
        (so a pipeline refuses before its first step, not at the step that asks)."""
        ...

    def shutdown(self, cancel: bool = False) -> None: ...


#: The name prefix of modules loaded from a file path (pipeline files).
USER_MODULE_PREFIX = "loopline_user_pipeline_"
_user_code: set[Path] = set()
_user_code_lock = threading.Lock()


def register_user_code(folder: Path) -> None:
    """Note that modules under ``folder`` are the project's own code, loaded from a path
    (a pipeline file and its siblings): an executor running units in other processes
    ships them by value, as no worker could import them."""
    with _user_code_lock:
        _user_code.add(folder.resolve())


def user_code_folders() -> frozenset[Path]:
    """The folders :func:`register_user_code` noted."""
    with _user_code_lock:
        return frozenset(_user_code)
