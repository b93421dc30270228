"""``create_app``: the Starlette application of one server process, and its lifecycle.

The app owns, for its process: the stores, the registry, the traffic plan (primary slot
and candidates), one inference thread shared by the micro-batchers, the prediction log
writer, the API-key cache and the metrics. Its lifespan starts them (the model loads in
the background: ``/health/live`` answers at once, ``/health/ready`` once the model is
loaded) and stops them in order on a graceful stop: in-flight requests finish, queued
batches are answered, then the log is flushed, so nothing answered is lost. While it runs
it follows its alias and the registry's traffic split (every ``poll_interval_s``, on
``POST /admin/reload`` and on SIGUSR1).

The request path is spread over one module per concern:

- :mod:`~loopline.serve.middleware`: request ids, request metrics and the mapping of
  errors to answers, once for every counted route;
- :mod:`~loopline.serve.auth`: API keys; :mod:`~loopline.serve.inference`: which version
  answers, micro-batch submission, the shadow;
- the routes: :mod:`~loopline.serve.predict_routes` (``/predict``, ``/invocations``),
  :mod:`~loopline.serve.v2_routes` (``/v2``), :mod:`~loopline.serve.service_routes`
  (feedback, health, metrics, docs, admin);
- :mod:`~loopline.serve.responses`: JSON bodies, model headers, problem bodies.

HTTP statuses are decided in ``serve`` and only there: 400 malformed bodies, 401/403 auth,
404 unknown model, 413 too large, 415 content type, 422 rows that do not match the
signature, 503 not loaded yet (or its load failed, and why). A 500 means a bug; values
quoted back in errors are cut by depth and size (:func:`~loopline.echo.echo`), so
no input can break the error report itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette

from loopline.errors import LooplineError
from loopline.serve.auth import Authorizer
from loopline.serve.batching import Arrivals
from loopline.serve.deployment import (
    ModelSlot,
    ServedModel,
    ServeOptions,
    Split,
    Traffic,
    parse_split,
)
from loopline.serve.errors import ServeError
from loopline.serve.inference import Inference
from loopline.serve.metrics import ServeMetrics
from loopline.serve.middleware import RequestTracker
from loopline.serve.predict_routes import PredictRoutes, hot_paths
from loopline.serve.service_routes import ServiceRoutes
from loopline.serve.settings import ServeSettings
from loopline.serve.v2_routes import V2Routes

if TYPE_CHECKING:
    from starlette.routing import Route
    from starlette.types import ASGIApp, Receive, Scope, Send

    from loopline.config import Settings
    from loopline.monitor.gauges import MonitorGauges
    from loopline.monitor.predictions import PredictionLogWriter
    from loopline.registry import ModelVersion, Registry
    from loopline.store.stores import Stores

log = logging.getLogger("loopline.serve")


@dataclass
class WorkerInfo:
    """Where this process stands among the server's workers."""

    index: int = 0
    count: int = 1
    #: Shared by the workers: ready markers (and the metrics folder).
    run_dir: Path | None = None
    #: The supervisor, told to pass an admin reload on to every worker.
    supervisor_pid: int | None = None
    #: Load the model before the app starts (so before the process listens): for a worker
    #: restarted beside others that serve, which should get no connection it would 503.
    load_before_start: bool = False


class ServerApp:
    """The state of one server process and its lifecycle (the routes are elsewhere)."""

    def __init__(
        self,
        settings: Settings,
        serve: ServeSettings,
        *,
        model: str,
        canary: str | None = None,
        shadow: str | None = None,
        sticky_key: str | None = None,
        worker: WorkerInfo | None = None,
        stores: Stores | None = None,
    ) -> None:
        from loopline.registry.refs import parse_ref

        self.settings = settings
        self.serve = serve
        self.model_ref = model
        self.parsed = parse_ref(model)
        self.canary_split: Split | None = (
            None if canary is None else parse_split(canary, "canary", sticky_key)
        )
        self.shadow_split: Split | None = (
            None if shadow is None else parse_split(shadow, "shadow", sticky_key)
        )
        self.worker = worker or WorkerInfo()
        self._own_stores = stores is None
        self.stores: Stores | None = stores
        self.registry: Registry | None = None
        self.metrics = ServeMetrics()
        self.arrivals = Arrivals()
        self.infer_executor = ThreadPoolExecutor(1, thread_name_prefix="loopline-infer")
        self.load_executor = ThreadPoolExecutor(1, thread_name_prefix="loopline-load")
        self.io_executor = ThreadPoolExecutor(2, thread_name_prefix="loopline-io")
        self.options = ServeOptions(
            max_batch_size=serve.max_batch_size,
            max_wait_ms=serve.max_wait_ms,
            check_ranges=serve.check_ranges,
            onnx_threads=1,
        )
        self.log_writer: PredictionLogWriter | None = None
        #: The newest monitored values of the served versions, on /metrics.
        self.monitor_gauges: MonitorGauges | None = None
        self.auth = Authorizer(serve, self.io_executor)
        self.inference = Inference(self.metrics, model_ref=model, model_name=self.parsed.name)
        self.tracker = RequestTracker(self.metrics, self.arrivals)
        self._refresh_lock: asyncio.Lock | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._ready_marker: Path | None = None
        self._all_ready = False
        self.started_at = time.time()
        self.stopping = False
        #: Why the first load of the primary failed (then nothing can be served).
        self.failure: BaseException | None = None
        #: Set by the process running the app: ends it (gracefully) when that happens.
        self.stop_server: Callable[[], None] | None = None

    @property
    def traffic(self) -> Traffic | None:
        """The traffic plan (primary and candidates), from the start on."""
        return self.inference.traffic

    def routes(self) -> list[Route]:
        """Every route, the prediction routes first (matched in this order)."""
        return [
            *PredictRoutes(self).routes(),
            *V2Routes(self).routes(),
            *ServiceRoutes(self).routes(),
        ]

    # -- starting and stopping ------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    async def startup(self) -> None:
        from loopline.monitor.predictions import PredictionIndex, PredictionLogWriter
        from loopline.registry import Registry
        from loopline.serve.keys import KeyStore
        from loopline.store.stores import Stores

        loop = asyncio.get_running_loop()
        if self.stores is None:
            self.stores = await loop.run_in_executor(self.io_executor, Stores.open, self.settings)
        stores = self.stores
        self.registry = Registry(stores)
        self.auth.keys = KeyStore(stores.db)
        from loopline.monitor.gauges import MonitorGauges

        self.monitor_gauges = MonitorGauges(
            stores,
            self.parsed.name,
            lambda: self.inference.versions() if self.traffic is not None else (),
            # As fresh as the registry, but never staler than 10 s: alerting reads them.
            ttl_s=min(10.0, max(1.0, self.serve.poll_interval_s)),
        )
        if self.serve.log_predictions:
            self.log_writer = PredictionLogWriter(
                stores.objects,
                flush_interval_s=self.serve.log_flush_s,
                flush_rows=self.serve.log_flush_rows,
                max_buffer_rows=self.serve.log_max_buffer_rows,
                index=PredictionIndex(stores.db).add,
                writer_id=f"{os.getpid()}w{self.worker.index}",
            ).start()
            from loopline.monitor.failures import FailureLog

            self.inference.failures = FailureLog(stores.db, self.parsed.name)
            self._tasks.append(loop.create_task(self._flush_failures(), name="loopline-failures"))
        primary = self._make_slot(self.model_ref, "primary")
        self.inference.traffic = Traffic(
            primary, self._make_slot, canary=self.canary_split, shadow=self.shadow_split
        )
        self._refresh_lock = asyncio.Lock()
        if self.worker.load_before_start:
            await self._first_load()
            self._tasks.append(loop.create_task(self._poll(), name="loopline-poll"))
        else:
            self._tasks.append(loop.create_task(self._run_background(), name="loopline-poll"))
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGUSR1, self._on_reload_signal)

    async def shutdown(self) -> None:
        self.stopping = True
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGUSR1)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.traffic is not None:
            await self.traffic.close()  # queued batches are answered (and logged) first
        if self.log_writer is not None:
            await loop.run_in_executor(self.io_executor, self.log_writer.close)
        if self.inference.failures is not None:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(self.io_executor, self.inference.failures.flush)
        if self._ready_marker is not None:
            with contextlib.suppress(OSError):
                self._ready_marker.unlink()
        self.infer_executor.shutdown(wait=True)
        self.load_executor.shutdown(wait=False, cancel_futures=True)
        self.io_executor.shutdown(wait=True)
        if self._own_stores and self.stores is not None:
            self.stores.close()

    # -- model slots ----------------------------------------------------------------------

    def _make_slot(self, ref: str, role: str) -> ModelSlot:
        assert self.registry is not None
        return ModelSlot(
            ref,
            role,
            registry=self.registry,
            loader=self._load,
            load_executor=self.load_executor,
            metrics=self.metrics,
        )

    def _load(self, mv: ModelVersion, role: str) -> ServedModel:
        """Runs in the load thread: read, verify, compile, warm up."""
        assert self.registry is not None
        loaded = self.registry.load(mv)
        served = ServedModel(
            loaded,
            role,
            executor=self.infer_executor,
            options=self.options,
            arrivals=self.arrivals,
            metrics=self.metrics,
            log_writer=self.log_writer,
        )
        served.warm()
        return served

    # -- following the alias and the split ------------------------------------------------

    async def _run_background(self) -> None:
        await self._first_load()
        await self._poll()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.serve.poll_interval_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("refreshing the served models failed")

    async def _flush_failures(self) -> None:
        """Add the failed-request counts to the database as often as the log flushes."""
        failures = self.inference.failures
        assert failures is not None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.serve.log_flush_s)
            if not failures.pending():
                continue
            try:
                await loop.run_in_executor(self.io_executor, failures.flush)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cannot record failed requests (kept for the next flush): %s", exc)

    async def _first_load(self) -> None:
        """The first load; when the primary could not be loaded, the server has nothing to
        serve: record why, and stop the process that runs the app (if it said how)."""
        assert self.traffic is not None
        primary = self.traffic.primary
        try:
            await self.refresh()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("loading the served models failed")
            if primary.current is None:
                primary.failed(f"loading {self.model_ref} failed: {exc}", exc)
        if primary.current is not None:
            return
        self.failure = primary.last_exception or ServeError(
            f"Cannot load {self.model_ref}: {primary.last_error or 'unknown error'}"
        )
        log.error("cannot serve %s: %s", self.model_ref, primary.last_error)
        if self.stop_server is not None:
            self.stop_server()

    async def refresh(self) -> dict[str, Any]:
        """Follow the alias and the traffic split now (what the poller does)."""
        assert self.traffic is not None
        assert self._refresh_lock is not None
        async with self._refresh_lock:
            swapped = await self.traffic.primary.refresh()
            split = await self._registry_split()
            await self.traffic.apply(split)
            self.auth.clear()
            if self.traffic.primary.current is not None:
                self.failure = None
                self._mark_ready()
            if swapped:
                _freeze_heap()
            current = self.traffic.primary.current
            return {"swapped": swapped, "version": None if current is None else current.version}

    async def _registry_split(self) -> Split | None:
        if self.parsed.alias is None or self.registry is None:
            return None
        loop = asyncio.get_running_loop()
        try:
            row = await loop.run_in_executor(
                self.io_executor, self.registry.traffic, self.parsed.name, self.parsed.alias
            )
        except LooplineError as exc:
            log.warning("cannot read the traffic split: %s", exc)
            return self.traffic.registry_split if self.traffic is not None else None
        if row is None:
            return None
        return Split(row.candidate, row.percent, row.mode, row.sticky_key, source="registry")

    def _on_reload_signal(self) -> None:
        if not self.stopping:
            self._tasks.append(asyncio.get_running_loop().create_task(self.refresh()))

    # -- readiness --------------------------------------------------------------------------

    def _mark_ready(self) -> None:
        run_dir = self.worker.run_dir
        if run_dir is None or self._ready_marker is not None:
            return
        marker = run_dir / f"ready-{self.worker.index}"
        try:
            marker.write_text(str(os.getpid()))
            self._ready_marker = marker
        except OSError as exc:
            log.warning("cannot write the ready marker %s: %s", marker, exc)

    def is_ready(self) -> bool:
        if self.stopping or self.traffic is None or self.traffic.primary.current is None:
            return False
        if self.worker.count <= 1 or self.worker.run_dir is None:
            return True
        if not self._all_ready:
            markers = list(self.worker.run_dir.glob("ready-*"))
            self._all_ready = len(markers) >= self.worker.count
        return self._all_ready

    def status(self) -> dict[str, Any]:
        """What this process serves and how (``/admin/status``)."""
        assert self.traffic is not None
        return {
            "model": self.model_ref,
            "ready": self.is_ready(),
            "worker": {"index": self.worker.index, "count": self.worker.count, "pid": os.getpid()},
            "uptime_s": round(time.time() - self.started_at, 1),
            "traffic": self.traffic.describe(),
            "prediction_log": None if self.log_writer is None else self.log_writer.stats.to_dict(),
            "settings": {
                "max_batch_size": self.serve.max_batch_size,
                "max_wait_ms": self.serve.max_wait_ms,
                "max_body_bytes": self.serve.max_body_bytes,
                "poll_interval_s": self.serve.poll_interval_s,
                "auth": self.serve.auth,
            },
        }


def create_app(
    settings: Settings,
    serve: ServeSettings | None = None,
    *,
    model: str,
    canary: str | None = None,
    shadow: str | None = None,
    sticky_key: str | None = None,
    worker: WorkerInfo | None = None,
    stores: Stores | None = None,
) -> Starlette:
    """The app serving ``model`` (``NAME@ALIAS``, ``NAME/VERSION`` or ``NAME``).

    ``serve`` defaults to the project's ``[serve]`` settings. ``canary`` is
    ``MODEL@ALIAS:PERCENT``; ``shadow`` is ``MODEL@ALIAS`` (optionally ``:PERCENT``).
    ``stores`` lets a caller share already-open stores (they are then not closed).
    The :class:`ServerApp` is ``app.state.loopline``.
    """
    from loopline.serve.settings import load_serve_settings

    state = ServerApp(
        settings,
        serve or load_serve_settings(settings),
        model=model,
        canary=canary,
        shadow=shadow,
        sticky_key=sticky_key,
        worker=worker,
        stores=stores,
    )
    routes = state.routes()
    app = ServeStarlette(routes=routes, lifespan=state.lifespan, hot=hot_paths(routes))
    app.state.loopline = state
    return app


class ServeStarlette(Starlette):
    """Starlette, with a shortcut for the prediction routes: a ``POST`` to one of the
    ``hot`` paths goes straight to that route's app (its request middleware included),
    past Starlette's error and exception middleware and the matching of every route.
    Those add nothing there: the route's :class:`~loopline.serve.middleware.RequestMiddleware`
    already answers every exception, and its endpoint raises no Starlette exception.
    Anything else (another method, another path, a ``root_path``) takes the usual way."""

    def __init__(self, *args: Any, hot: dict[str, ASGIApp] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hot: dict[str, ASGIApp] = dict(hot or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            route = self.hot.get(scope["path"])
            if route is not None:
                scope["app"] = self
                await route(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _freeze_heap() -> None:
    """Move everything alive now (modules, the loaded model) out of the garbage collector's
    view: a full collection then scans only what requests allocate, instead of pausing
    every request for tens of milliseconds to walk the whole heap of numpy, pandas and
    scikit-learn."""
    import gc

    gc.unfreeze()  # after a swap, let the old version's cyclic garbage be collected
    gc.collect()
    gc.freeze()
