"""``create_app``: the Starlette application of one server process.

The app owns, for its process: the stores, the registry, the traffic plan (primary slot
and candidates), one inference thread shared by the micro-batchers, the prediction log
writer, the API-key cache and the metrics. Its lifespan starts them (the model loads in
the background: ``/health/live`` answers at once, ``/health/ready`` once the model is
loaded) and stops them in order on a graceful stop: in-flight requests finish, queued
batches are answered, then the log is flushed, so nothing answered is lost.

HTTP statuses are decided here and only here: 400 malformed bodies, 401/403 auth,
404 unknown model, 413 too large, 415 content type, 422 rows that do not match the
signature, 503 not loaded yet (or its load failed, and why). A 500 means a bug; values
quoted back in errors are cut by depth and size (:func:`~loopline.echo.echo`), so
no input can break the error report itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import secrets
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from loopline.echo import echo_text
from loopline.errors import LooplineError
from loopline.serve.batching import Arrivals, BatcherClosed, Job
from loopline.serve.bodies import (
    HTTPProblem,
    decode_invocations,
    decode_predict,
    parse_json,
    read_body,
)
from loopline.serve.deployment import (
    JobResult,
    ModelSlot,
    ServedModel,
    ServeOptions,
    Split,
    Traffic,
    parse_split,
)
from loopline.serve.errors import ServeError
from loopline.serve.keys import role_allows
from loopline.serve.metrics import CONTENT_TYPE, ServeMetrics
from loopline.serve.settings import ServeSettings

if TYPE_CHECKING:
    from loopline.config import Settings
    from loopline.monitor.predictions import PredictionLogWriter
    from loopline.registry import ModelVersion, Registry
    from loopline.registry.validation import InputValidator, ValidationResult
    from loopline.serve.keys import KeyStore
    from loopline.store.stores import Stores

log = logging.getLogger("loopline.serve")

_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_EMPTY: frozenset[str] = frozenset()
_JSON = "application/json"


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


@dataclass
class _Ctx:
    """One request in flight."""

    request_id: str
    t0: float
    arrived: float
    arrivals: Arrivals
    route: str = "-"
    left: bool = False
    version: str = "-"

    def leave(self) -> None:
        if not self.left:
            self.left = True
            self.arrivals.leave()


@dataclass
class _AuthCache:
    entries: dict[str, tuple[str | None, float]] = field(default_factory=dict)


class ServerApp:
    """The state and the route handlers of one server process."""

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
        self.keys: KeyStore | None = None
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
        self.traffic: Traffic | None = None
        self._auth = _AuthCache()
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
        self._id_prefix = secrets.token_hex(8)
        self._counter = 0
        self._children: dict[tuple[str, int, str], tuple[Any, Any]] = {}

    # -- lifecycle ------------------------------------------------------------------------

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
        self.keys = KeyStore(stores.db)
        if self.serve.log_predictions:
            self.log_writer = PredictionLogWriter(
                stores.objects,
                flush_interval_s=self.serve.log_flush_s,
                flush_rows=self.serve.log_flush_rows,
                max_buffer_rows=self.serve.log_max_buffer_rows,
                index=PredictionIndex(stores.db).add,
                writer_id=f"{os.getpid()}w{self.worker.index}",
            ).start()
        primary = self._make_slot(self.model_ref, "primary")
        self.traffic = Traffic(
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
        if self._ready_marker is not None:
            with contextlib.suppress(OSError):
                self._ready_marker.unlink()
        self.infer_executor.shutdown(wait=True)
        self.load_executor.shutdown(wait=False, cancel_futures=True)
        self.io_executor.shutdown(wait=True)
        if self._own_stores and self.stores is not None:
            self.stores.close()

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
            self._auth.entries.clear()
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

    # -- the request wrapper --------------------------------------------------------------

    async def _handle(
        self,
        request: Request,
        route: str,
        fn: Callable[[Request, _Ctx], Awaitable[Response]],
        *,
        style: str = "loopline",
        batched: bool = False,
    ) -> Response:
        t0 = time.perf_counter()
        header_id = request.headers.get("x-request-id")
        rid = header_id if header_id and _ID_RE.fullmatch(header_id) else self._new_id()
        ctx = _Ctx(rid, t0, time.time(), self.arrivals, route, left=not batched)
        if batched:
            self.arrivals.enter()
        try:
            response = await fn(request, ctx)
        except HTTPProblem as problem:
            response = _problem_response(problem, ctx.request_id, style)
        except Exception:
            log.exception("request %s on %s failed", rid, route)
            response = _problem_response(
                HTTPProblem(500, "internal_error", "The server failed; this is a bug"), rid, style
            )
        finally:
            ctx.leave()
        response.headers["x-request-id"] = ctx.request_id
        self._count(route, response.status_code, ctx.version, time.perf_counter() - t0)
        return response

    def _new_id(self) -> str:
        """A unique request id: this process's random prefix and a counter (cheaper than
        uuid4 on every request, and as unique)."""
        self._counter += 1
        return f"{self._id_prefix}{self._counter:08x}"

    def _count(self, route: str, status: int, version: str, seconds: float) -> None:
        key = (route, status, version)
        children = self._children.get(key)
        if children is None:
            m = self.metrics
            children = (
                m.requests.labels(route=route, status=str(status), version=version),
                m.latency.labels(route=route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    async def _authorize(self, request: Request, need: str) -> None:
        if not self.serve.auth:
            return
        header = request.headers.get("authorization")
        challenge = {"www-authenticate": 'Bearer realm="loopline"'}
        if not header:
            raise HTTPProblem(
                401,
                "unauthorized",
                "This server needs an API key: send Authorization: Bearer <key>",
                headers=challenge,
            )
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HTTPProblem(
                401,
                "unauthorized",
                "Send the API key as Authorization: Bearer <key>",
                headers=challenge,
            )
        role = await self._role_of(token)
        if role is None:
            raise HTTPProblem(401, "unauthorized", "Unknown or revoked API key", headers=challenge)
        if not role_allows(role, need):
            raise HTTPProblem(
                403,
                "forbidden",
                f"This key's role is {role!r}; this route needs {need!r}",
            )

    async def _role_of(self, token: str) -> str | None:
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        now = time.monotonic()
        cached = self._auth.entries.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        assert self.keys is not None
        loop = asyncio.get_running_loop()
        key = await loop.run_in_executor(self.io_executor, self.keys.verify, token)
        role = None if key is None else key.role
        if len(self._auth.entries) > 10_000:
            self._auth.entries.clear()
        ttl = (
            self.serve.poll_interval_s if role is not None else min(1.0, self.serve.poll_interval_s)
        )
        self._auth.entries[digest] = (role, now + ttl)
        return role

    # -- prediction -----------------------------------------------------------------------

    def _drop(self, served: ServedModel) -> frozenset[str]:
        assert self.traffic is not None
        keys = self.traffic.sticky_keys
        if not keys:
            return _EMPTY
        return frozenset(k for k in keys if k not in served.names)

    def _sticky(self, request: Request, decoded_sticky: Callable[[str], str | None]) -> str | None:
        assert self.traffic is not None
        header = request.headers.get("x-sticky-key")
        if header:
            return header
        for key in self.traffic.sticky_keys:
            value = decoded_sticky(key)
            if value is not None:
                return value
        return None

    async def _infer(
        self,
        ctx: _Ctx,
        validate: Callable[[InputValidator, frozenset[str]], ValidationResult],
        sticky: str | None,
        *,
        version: int | None = None,
    ) -> tuple[ServedModel, JobResult]:
        traffic = self.traffic
        if traffic is None:
            raise self._not_loaded()
        slot = traffic.choose(sticky) if version is None else self._slot_for(version)
        for _ in range(5):
            served = slot.current
            if served is None:
                if slot is not traffic.primary:
                    slot = traffic.primary
                    continue
                raise self._not_loaded()
            if version is not None and served.version != version:
                slot = self._slot_for(version)
                continue
            result = validate(served.validator, self._drop(served))
            if not result.ok:
                self.metrics.validation_failures.labels(route=ctx.route).inc()
                raise HTTPProblem.invalid(result)
            job = Job(result.columns, result.n_rows, ctx.request_id, ctx.arrived, ctx.t0)
            try:
                fut = served.batcher.submit_nowait(job)
            except BatcherClosed:
                continue  # swapped between validation and submission: use the new version
            ctx.leave()
            try:
                answer: JobResult = await fut
            except Exception as exc:
                raise HTTPProblem(
                    422,
                    "model_error",
                    f"Model {served.ref} could not predict these rows: {exc}",
                ) from None
            ctx.version = str(answer.version)
            if version is None:
                self._shadow(ctx, validate, result, served, sticky)
            return served, answer
        raise HTTPProblem(
            503, "swapping", "The model is being swapped; retry", headers={"retry-after": "1"}
        )

    def _not_loaded(self) -> HTTPProblem:
        """503 while the primary is not loaded: still loading (retry shortly), or its load
        failed (and why: retrying would not help)."""
        primary = None if self.traffic is None else self.traffic.primary
        if primary is None:
            return HTTPProblem(
                503, "not_ready", "The server is starting", headers={"retry-after": "1"}
            )
        if primary.last_error:
            return HTTPProblem(
                503,
                "load_failed",
                f"Model {self.model_ref} could not be loaded: {primary.last_error}",
            )
        return HTTPProblem(
            503,
            "not_ready",
            f"Model {self.model_ref} is still loading; retry shortly",
            headers={"retry-after": "1"},
        )

    def _slot_for(self, version: int) -> ModelSlot:
        assert self.traffic is not None
        for slot in (self.traffic.primary, *self.traffic.slots.values()):
            if slot is not None and slot.current is not None and slot.current.version == version:
                return slot
        raise HTTPProblem(
            404, "unknown_version", f"Version {version} of {self.parsed.name} is not served here"
        )

    def _shadow(
        self,
        ctx: _Ctx,
        validate: Callable[[InputValidator, frozenset[str]], ValidationResult],
        result: ValidationResult,
        primary: ServedModel,
        sticky: str | None,
    ) -> None:
        assert self.traffic is not None
        slot = self.traffic.shadow(sticky)
        if slot is None:
            return
        served = slot.current
        if served is None or served is primary or served.batcher.depth > 10_000:
            self.metrics.shadow_errors.inc()
            return
        if served.signature != primary.signature:
            result = validate(served.validator, self._drop(served))
            if not result.ok:
                self.metrics.shadow_errors.inc()
                return
        job = Job(result.columns, result.n_rows, ctx.request_id, ctx.arrived, ctx.t0)
        try:
            fut = served.batcher.submit_nowait(job)
        except BatcherClosed:
            return
        fut.add_done_callback(self._shadow_done)

    def _shadow_done(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self.metrics.shadow_errors.inc()

    # -- routes: predictions --------------------------------------------------------------

    async def predict(self, request: Request) -> Response:
        return await self._handle(request, "predict", self._predict, batched=True)

    async def _predict(self, request: Request, ctx: _Ctx) -> Response:
        await self._authorize(request, "predict")
        body = await read_body(request, self.serve.max_body_bytes)
        decoded = decode_predict(request.headers.get("content-type"), body)
        served, answer = await self._infer(
            ctx, decoded.validate, self._sticky(request, decoded.sticky)
        )
        out = answer.outputs
        payload: dict[str, Any] = {
            "request_id": ctx.request_id,
            "model": served.name,
            "version": answer.version,
            "role": served.role,
            "predictions": _jsonable(out.predictions),
        }
        if out.probabilities is not None:
            payload["probabilities"] = _jsonable(out.probabilities)
            payload["classes"] = served.classes
        return _json(payload, served)

    async def invocations(self, request: Request) -> Response:
        return await self._handle(
            request, "invocations", self._invocations, style="mlflow", batched=True
        )

    async def _invocations(self, request: Request, ctx: _Ctx) -> Response:
        await self._authorize(request, "predict")
        body = await read_body(request, self.serve.max_body_bytes)
        decoded = decode_invocations(request.headers.get("content-type"), body)
        method = decoded.params.get("predict_method") or request.query_params.get("method")
        if method not in (None, "predict", "predict_proba"):
            raise HTTPProblem(
                400,
                "bad_request",
                f"predict_method {echo_text(method)} is not one of predict, predict_proba",
            )
        served, answer = await self._infer(
            ctx, decoded.validate, self._sticky(request, decoded.sticky)
        )
        out = answer.outputs
        if method == "predict_proba":
            if out.probabilities is None:
                raise HTTPProblem(
                    400, "bad_request", f"Model {served.ref} is not a classifier: no predict_proba"
                )
            predictions = _jsonable(out.probabilities)
        else:
            predictions = _jsonable(out.predictions)
        return _json({"predictions": predictions}, served)

    # -- routes: Open Inference Protocol (V2) ---------------------------------------------

    async def v2_infer(self, request: Request) -> Response:
        return await self._handle(request, "v2_infer", self._v2_infer, style="v2", batched=True)

    async def _v2_infer(self, request: Request, ctx: _Ctx) -> Response:
        from loopline.serve import v2

        await self._authorize(request, "predict")
        name = request.path_params["name"]
        version_text = request.path_params.get("version")
        self._check_name(name)
        version = _version_number(version_text)
        body = await read_body(request, self.serve.max_body_bytes)
        parsed = v2.parse_infer(body, request.headers.get(v2.HEADER_LENGTH))
        if parsed.id is not None and _ID_RE.fullmatch(parsed.id):
            ctx.request_id = parsed.id

        def validate(v: InputValidator, drop: frozenset[str]) -> ValidationResult:
            return v.validate_columns(v2.to_columns(parsed, v.signature))

        served, answer = await self._infer(ctx, validate, None, version=version)
        out = answer.outputs
        label_type = v2.label_datatype(served.signature.output.dtype)
        if served.signature.output.kind != "classifier":
            label_type = "FP64" if out.predictions.dtype.kind in "fiu" else "BYTES"
        tensors = v2.output_tensors(out.predictions, out.probabilities, label_type, parsed.outputs)
        header = {"model_name": served.name, "model_version": str(answer.version)}
        if parsed.id is not None:
            header["id"] = parsed.id
        data, headers = v2.encode_response(header, tensors, parsed.outputs, parsed.binary_default)
        return Response(data, headers={**headers, **_model_headers(served)})

    def _check_name(self, name: str) -> None:
        if name != self.parsed.name:
            raise HTTPProblem(
                404,
                "unknown_model",
                f"Model {echo_text(name)} is not served here; this server serves "
                f"{self.parsed.name!r}",
            )

    async def v2_server(self, request: Request) -> Response:
        async def fn(request: Request, ctx: _Ctx) -> Response:
            from loopline import __version__

            await self._authorize(request, "read")
            return _json(
                {"name": "loopline", "version": __version__, "extensions": ["binary_tensor_data"]}
            )

        return await self._handle(request, "v2_metadata", fn, style="v2")

    async def v2_model(self, request: Request) -> Response:
        async def fn(request: Request, ctx: _Ctx) -> Response:
            from loopline.serve import v2

            await self._authorize(request, "read")
            name = request.path_params["name"]
            self._check_name(name)
            wanted = _version_number(request.path_params.get("version"))
            served = self._served(wanted)
            versions = sorted(self._versions())
            return _json(
                v2.model_metadata(
                    name,
                    [served.version] if wanted is not None else versions,
                    served.signature,
                    f"loopline_{served.loaded.flavor}",
                )
            )

        return await self._handle(request, "v2_metadata", fn, style="v2")

    async def v2_model_ready(self, request: Request) -> Response:
        async def fn(request: Request, ctx: _Ctx) -> Response:
            await self._authorize(request, "read")
            self._check_name(request.path_params["name"])
            self._served(_version_number(request.path_params.get("version")))
            return _json({"name": self.parsed.name, "ready": True})

        return await self._handle(request, "v2_metadata", fn, style="v2")

    def _versions(self) -> set[int]:
        assert self.traffic is not None
        out = set()
        for slot in (self.traffic.primary, *self.traffic.slots.values()):
            if slot is not None and slot.current is not None:
                out.add(slot.current.version)
        return out

    def _served(self, version: int | None) -> ServedModel:
        if self.traffic is None or self.traffic.primary.current is None:
            raise HTTPProblem(404, "not_ready", self._not_loaded().message)
        if version is None:
            return self.traffic.primary.current
        served = self._slot_for(version).current
        assert served is not None
        return served

    # -- routes: feedback -----------------------------------------------------------------

    async def feedback(self, request: Request) -> Response:
        return await self._handle(request, "feedback", self._feedback)

    async def _feedback(self, request: Request, ctx: _Ctx) -> Response:
        from functools import partial

        from loopline.monitor.errors import FeedbackError
        from loopline.monitor.feedback import FeedbackStore, parse_feedback
        from loopline.serve.bodies import JSON_TYPES, media_type

        await self._authorize(request, "predict")
        kind = media_type(request.headers.get("content-type"))
        if kind and kind not in JSON_TYPES:
            raise HTTPProblem(
                415,
                "unsupported_media_type",
                f"Content-Type {echo_text(kind)}: send application/json",
            )
        body = await read_body(request, self.serve.max_body_bytes)
        try:
            items, invalid = parse_feedback(parse_json(body))
        except FeedbackError as exc:
            raise HTTPProblem(400, "bad_feedback", str(exc)) from None
        assert self.stores is not None
        writer = self.log_writer
        store = FeedbackStore(
            self.stores.db, pending=None if writer is None else writer.has_request
        )
        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(
            self.io_executor, partial(store.record, items, invalid=invalid, source="api")
        )
        for status, count in report.counts.items():
            if count and status != "late":
                self.metrics.feedback.labels(status=status).inc(count)
        return _json(report.to_dict(), status=200 if report.accepted else 422)

    # -- routes: health, metrics, docs, admin ---------------------------------------------

    async def health_live(self, request: Request) -> Response:
        return _json({"live": True})

    async def health_ready(self, request: Request) -> Response:
        ready = self.is_ready()
        body: dict[str, Any] = {"ready": ready}
        if self.traffic is not None:
            current = self.traffic.primary.current
            body["model"] = self.model_ref
            body["version"] = None if current is None else current.version
            if not ready and self.traffic.primary.last_error:
                body["error"] = self.traffic.primary.last_error
        return _json(body, status=200 if ready else 503)

    async def metrics_route(self, request: Request) -> Response:
        async def fn(request: Request, ctx: _Ctx) -> Response:
            await self._authorize(request, "read")
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(self.io_executor, self.metrics.exposition)
            return Response(data, media_type=CONTENT_TYPE)

        return await self._handle(request, "metrics", fn)

    def schema(self) -> dict[str, Any]:
        from loopline.serve.openapi import openapi_schema

        current = None if self.traffic is None else self.traffic.primary.current
        return openapi_schema(
            None if current is None else current.signature,
            model=self.model_ref,
            version=None if current is None else current.version,
            auth=self.serve.auth,
        )

    async def openapi(self, request: Request) -> Response:
        return _json(self.schema())

    async def docs(self, request: Request) -> Response:
        from loopline.serve.openapi import docs_page

        return HTMLResponse(docs_page(self.schema()))

    async def admin_status(self, request: Request) -> Response:
        async def fn(request: Request, ctx: _Ctx) -> Response:
            await self._authorize(request, "admin")
            return _json(self.status())

        return await self._handle(request, "admin", fn)

    async def admin_reload(self, request: Request) -> Response:
        async def fn(request: Request, ctx: _Ctx) -> Response:
            await self._authorize(request, "admin")
            result = await self.refresh()
            if self.worker.supervisor_pid:
                with contextlib.suppress(OSError):
                    os.kill(self.worker.supervisor_pid, signal.SIGUSR1)
            return _json({**result, "status": self.status()})

        return await self._handle(request, "admin", fn)

    def status(self) -> dict[str, Any]:
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

    def routes(self) -> list[Route]:
        return [
            Route("/predict", self.predict, methods=["POST"]),
            Route("/invocations", self.invocations, methods=["POST"]),
            Route("/feedback", self.feedback, methods=["POST"]),
            Route("/health/live", self.health_live, methods=["GET"]),
            Route("/health/ready", self.health_ready, methods=["GET"]),
            Route("/ping", self.health_ready, methods=["GET"]),
            Route("/v2/health/live", self.health_live, methods=["GET"]),
            Route("/v2/health/ready", self.health_ready, methods=["GET"]),
            Route("/v2", self.v2_server, methods=["GET"]),
            Route("/v2/models/{name}", self.v2_model, methods=["GET"]),
            Route("/v2/models/{name}/ready", self.v2_model_ready, methods=["GET"]),
            Route("/v2/models/{name}/infer", self.v2_infer, methods=["POST"]),
            Route("/v2/models/{name}/versions/{version}", self.v2_model, methods=["GET"]),
            Route(
                "/v2/models/{name}/versions/{version}/ready", self.v2_model_ready, methods=["GET"]
            ),
            Route("/v2/models/{name}/versions/{version}/infer", self.v2_infer, methods=["POST"]),
            Route("/metrics", self.metrics_route, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/docs", self.docs, methods=["GET"]),
            Route("/admin/status", self.admin_status, methods=["GET"]),
            Route("/admin/reload", self.admin_reload, methods=["POST"]),
        ]


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
    app = Starlette(routes=state.routes(), lifespan=state.lifespan)
    app.state.loopline = state
    return app


# -- responses ------------------------------------------------------------------------------


def _freeze_heap() -> None:
    """Move everything alive now (modules, the loaded model) out of the garbage collector's
    view: a full collection then scans only what requests allocate, instead of pausing
    every request for tens of milliseconds to walk the whole heap of numpy, pandas and
    scikit-learn."""
    import gc

    gc.unfreeze()  # after a swap, let the old version's cyclic garbage be collected
    gc.collect()
    gc.freeze()


def _jsonable(arr: Any) -> Any:
    """A numpy array orjson can write directly when possible, else a list."""
    kind = getattr(getattr(arr, "dtype", None), "kind", "O")
    if kind in "biuf" and arr.flags.c_contiguous:
        return arr
    return arr.tolist() if hasattr(arr, "tolist") else arr


def _model_headers(served: ServedModel) -> dict[str, str]:
    return {
        "x-model-name": served.name,
        "x-model-version": str(served.version),
        "x-served-by": served.role,
    }


def _json(payload: Any, served: ServedModel | None = None, status: int = 200) -> Response:
    try:
        data = orjson.dumps(payload, option=_NUMPY)
    except TypeError:
        data = orjson.dumps(payload, option=_NUMPY, default=_fallback)
    headers = None if served is None else _model_headers(served)
    return Response(data, status_code=status, media_type=_JSON, headers=headers)


def _fallback(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return str(value)


def _problem_response(problem: HTTPProblem, request_id: str, style: str) -> Response:
    body: dict[str, Any]
    if style == "mlflow":
        code = {400: "BAD_REQUEST", 422: "INVALID_PARAMETER_VALUE"}.get(
            problem.status, problem.code.upper()
        )
        body = {"error_code": code, "message": problem.message}
    elif style == "v2":
        body = {"error": problem.message, "code": problem.code}
    else:
        body = {"error": problem.code, "message": problem.message}
    if problem.problems is not None:
        body["problems"] = problem.problems
        if problem.more_problems:
            body["more_problems"] = problem.more_problems
    body["request_id"] = request_id
    try:
        data = orjson.dumps(body, default=_fallback)
    except Exception as exc:  # orjson refuses it (too deep, an integer too large...)
        # The error path of the error path: still JSON, without the detailed report.
        log.warning("request %s: answering without its problem report (%s)", request_id, exc)
        body.pop("problems", None)
        body.pop("more_problems", None)
        try:
            data = orjson.dumps(body, default=str)
        except Exception:
            data = orjson.dumps({"error": problem.code, "request_id": request_id})
    return Response(data, status_code=problem.status, media_type=_JSON, headers=problem.headers)


def _version_number(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit()):  # not "²", which str.isdigit accepts
        raise HTTPProblem(
            404, "unknown_version", f"Version {echo_text(text)} is not a version number"
        )
    return int(text)
