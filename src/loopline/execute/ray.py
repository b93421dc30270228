"""The Ray executor: units run as Ray tasks, on this machine or on a cluster.

``RayExecutor()`` joins the Ray instance this process already started (``ray.init``), or
starts a local one; ``RayExecutor("ray://head:10001")`` (or ``"auto"``) connects to a
cluster. Each ``submit`` becomes one Ray task scheduled on the unit's resources (CPUs,
memory, GPUs) and its result comes back in a ``concurrent.futures.Future``.

Nothing is shared with the driver: the callable and its arguments are pickled
(cloudpickle), so a unit opens the stores itself from the settings it is given, and what
it produces goes to the artifact store (S3 at scale), not through the driver's memory.
Code the project loaded from its own files (a pipeline file and its sibling modules,
which no worker can import) is shipped by value with each unit; installed packages,
loopline among them, must be installed on the workers.

A unit that raises sets its future's exception (the exception's own type, carrying the
worker's traceback); a worker that dies mid-unit (killed, out of memory) is retried once
on another worker by Ray, then reported as failed. loopline's own retries (a step's
``retries``) happen inside the unit, the same as on the local executor.

``ray`` is imported only when this executor is created: ``pip install 'loopline[ray]'``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from loopline.execute.base import (
    USER_MODULE_PREFIX,
    Resources,
    check_resources,
    user_code_folders,
)
from loopline.execute.errors import ExecutorError

if TYPE_CHECKING:
    from types import ModuleType

T = TypeVar("T")

#: Times Ray reruns a unit whose worker process died (not one that raised).
SYSTEM_RETRIES = 1
_MB = 1024 * 1024


def import_ray() -> ModuleType:
    """Ray, or an ExecutorError saying how to install it."""
    try:
        import ray
    except ModuleNotFoundError as exc:
        raise ExecutorError(
            "The ray executor needs Ray, which is not installed",
            hint="Install it with: pip install 'loopline[ray]'",
        ) from exc
    return ray


def loopline_unit(fn: Callable[..., T], args: tuple[Any, ...]) -> T:
    """One unit of work (Ray names its log lines after this function)."""
    return fn(*args)


class RayExecutor:
    """Units run as Ray tasks, up to the cluster's CPUs at once.

    ``address``: None starts (or joins) a Ray instance on this machine; ``"auto"`` joins
    the one a ``ray start`` left running here; ``"ray://host:10001"`` connects to a
    cluster's client server. ``num_cpus`` limits a local instance started here.
    ``parallelism``: how many units the caller should keep in flight (default: the
    cluster's CPUs).
    """

    name = "ray"
    shares_memory = False

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        parallelism: int | None = None,
        runtime_env: Mapping[str, Any] | None = None,
    ) -> None:
        if parallelism is not None and (
            isinstance(parallelism, bool) or not isinstance(parallelism, int) or parallelism < 1
        ):
            raise ExecutorError(f"parallelism must be an int >= 1, not {parallelism!r}")
        if num_cpus is not None and (
            isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1
        ):
            raise ExecutorError(f"num_cpus must be an int >= 1, not {num_cpus!r}")
        ray = import_ray()
        self._ray = ray
        self._owns_ray = False
        if not ray.is_initialized():
            self._start(address, num_cpus, runtime_env)
        resources = ray.cluster_resources()
        self.cpus = float(resources.get("CPU", 0.0))
        self.gpus = float(resources.get("GPU", 0.0))
        self.memory_mb = int(resources.get("memory", 0.0) / _MB)
        if self.cpus <= 0:
            raise ExecutorError("the Ray cluster has no CPUs to run work on")
        self.parallelism = parallelism or max(1, int(self.cpus))
        self.address = address
        self._remote = ray.remote(loopline_unit)
        self._lock = threading.Lock()
        self._pending: dict[Any, Future[Any]] = {}
        self._refs: dict[int, Any] = {}
        self._shipped: set[str] = set()
        self._closed = False

    def _start(
        self, address: str | None, num_cpus: int | None, runtime_env: Mapping[str, Any] | None
    ) -> None:
        kwargs: dict[str, Any] = {
            "address": address,
            "include_dashboard": False,
            "logging_level": logging.ERROR,
            "namespace": "loopline",
        }
        if runtime_env:
            kwargs["runtime_env"] = dict(runtime_env)
        if address is None:
            kwargs["num_cpus"] = num_cpus
        elif num_cpus is not None:
            raise ExecutorError(
                f"num_cpus sizes a Ray instance started here; the cluster at {address} "
                "has its own CPUs",
                hint="Leave num_cpus out, or leave address out to start Ray on this machine",
            )
        try:
            self._ray.init(**kwargs)
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
            where = address or "this machine"
            raise ExecutorError(
                f"cannot start or reach Ray at {where}: {type(exc).__name__}: {exc}",
                hint=(
                    "Check the address (ray://HOST:10001 for a cluster's client server, "
                    "auto for a `ray start` on this machine)"
                ),
            ) from exc
        self._owns_ray = True

    @property
    def single_machine(self) -> bool:
        """True when every live node of the cluster runs on this machine (so a local
        SQLite file and artifact folder are reachable from every worker)."""
        here = {"127.0.0.1", "localhost", socket.gethostname()}
        try:
            here.add(self._ray.util.get_node_ip_address())
        except Exception:
            pass
        nodes = [n for n in self._ray.nodes() if n.get("Alive")]
        return all(n.get("NodeManagerAddress") in here for n in nodes)

    def submit(
        self, fn: Callable[..., T], /, *args: Any, resources: Resources | None = None
    ) -> Future[T]:
        if self._closed:
            raise ExecutorError("this executor was shut down; create a new one")
        options: dict[str, Any] = {"max_retries": SYSTEM_RETRIES, "num_cpus": 1}
        if resources is not None:
            self.check(resources)
            options["num_cpus"] = resources.cpus
            if resources.gpus:
                options["num_gpus"] = resources.gpus
            if resources.memory_mb:
                options["memory"] = resources.memory_mb * _MB
        self._ship_user_code()
        ref = self._remote.options(**options).remote(fn, args)
        future: Future[T] = ref.future()
        with self._lock:
            self._pending[ref] = future
            self._refs[id(future)] = ref
        future.add_done_callback(functools.partial(self._forget, ref))
        return future

    def wait(
        self, futures: Iterable[Future[Any]], timeout: float | None = None
    ) -> tuple[set[Future[Any]], set[Future[Any]]]:
        """``ray.wait`` on the units' refs: inside a Ray task, Ray lends the waiting
        task's CPUs to the units it waits for (a future's result() would not)."""
        futures = list(futures)
        done = {f for f in futures if f.done()}
        with self._lock:
            refs = {id(f): self._refs.get(id(f)) for f in futures if f not in done}
        waiting = [r for r in refs.values() if r is not None]
        if waiting and not done:
            ready, _ = self._ray.wait(waiting, num_returns=1, timeout=timeout)
            ready_ids = {id(r) for r in ready}
            for f in futures:
                ref = refs.get(id(f))
                if ref is not None and id(ref) in ready_ids:
                    with contextlib.suppress(Exception):  # a cancelled unit is done too
                        f.exception(timeout=30)  # its callback sets it a moment later
                    done.add(f)
        return done, {f for f in futures if f not in done}

    def _forget(self, ref: Any, future: Future[Any]) -> None:
        with self._lock:
            self._pending.pop(ref, None)
            self._refs.pop(id(future), None)

    def check(self, resources: Resources) -> None:
        # Ray would keep an infeasible task pending forever, with only a log warning.
        check_resources(resources)
        if resources.gpus > self.gpus:
            raise ExecutorError(
                f"a unit asks for {resources.gpus:g} GPU(s); the Ray cluster has {self.gpus:g}",
                hint="Lower its gpus, or add GPU nodes to the cluster",
            )
        if resources.cpus > self.cpus:
            raise ExecutorError(
                f"a unit asks for {resources.cpus:g} CPUs; the Ray cluster has {self.cpus:g}",
                hint="Lower its cpus, or add nodes to the cluster",
            )
        if (
            resources.memory_mb is not None
            and self.memory_mb
            and resources.memory_mb > (self.memory_mb)
        ):
            raise ExecutorError(
                f"a unit asks for {resources.memory_mb} MB of memory; the Ray cluster has "
                f"{self.memory_mb} MB",
                hint="Lower its memory_mb, or add nodes to the cluster",
            )

    def _ship_user_code(self) -> None:
        """Ship the project's own modules by value: a worker cannot import a pipeline
        file loaded from a path, nor the sibling modules it imports."""
        folders = user_code_folders()
        if not folders:
            return
        from ray import cloudpickle

        installed = _installed_roots()
        for name, module in list(sys.modules.items()):
            if name in self._shipped or module is None:
                continue
            if not name.startswith(USER_MODULE_PREFIX):
                if name.partition(".")[0] == "loopline":
                    continue  # installed on the workers
                file = getattr(module, "__file__", None)
                if not file or not _inside(Path(file), folders) or _inside(Path(file), installed):
                    continue
            try:
                cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]
            except ValueError:  # a module cloudpickle refuses (not a plain module)
                continue
            self._shipped.add(name)

    def shutdown(self, cancel: bool = False) -> None:
        self._closed = True
        with self._lock:
            pending = list(self._pending)
        if cancel:
            for ref in pending:
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:
                    pass
        elif pending:
            self._ray.wait(pending, num_returns=len(pending))
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _installed_roots() -> frozenset[Path]:
    """Where installed packages live (a virtual environment inside the project folder
    must not be shipped by value)."""
    import site
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, *site.getsitepackages(), sysconfig.get_paths()["purelib"]}
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        roots.add(user_site)
    return frozenset(Path(r).resolve() for r in roots if r)


def _inside(path: Path, folders: frozenset[Path]) -> bool:
    try:
        resolved = path.resolve()
    except OSError:
        return False
    return any(resolved.is_relative_to(folder) for folder in folders)
