"""Answering a request's rows: which served version answers (the primary, the canary's
share, or the version a V2 route names), validating the rows against its signature,
queueing them on its micro-batcher, and sending a copy to the shadow.

A request's side of a canary or shadow split is chosen by its sticky key when it has one:
the ``X-Sticky-Key`` header, or the value of a sticky-key field in its first row (a field
the model does not take, dropped before validation). A version swapped out between the
validation and the queueing of a request is retried on the new version, so a hot swap
fails no request. A canary that cannot answer a request (its signature refuses the rows,
or its model raises) does not fail it either: the primary answers, and the failure is
counted against the canary's version, where the monitor (and a rollout's bake) sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loopline.serve.batching import BatcherClosed, Job
from loopline.serve.bodies import HTTPProblem

if TYPE_CHECKING:
    from starlette.requests import Request

    from loopline.monitor.failures import FailureLog
    from loopline.registry.validation import InputValidator, ValidationResult
    from loopline.serve.deployment import JobResult, ModelSlot, ServedModel, Traffic
    from loopline.serve.metrics import ServeMetrics
    from loopline.serve.middleware import RequestContext

    #: Validates a request's rows for one served version: (its validator, the sticky-key
    #: fields to drop) -> the validated columns, or the problems.
    Validate = Callable[[InputValidator, frozenset[str]], ValidationResult]

_EMPTY: frozenset[str] = frozenset()
#: Tries before a request gives up on a version that keeps being swapped out (503).
_TRIES = 5
#: A shadow with more requests queued than this gets no more copies.
_SHADOW_MAX_DEPTH = 10_000


class Inference:
    """The versions a server answers with, and how a request reaches one of them."""

    def __init__(self, metrics: ServeMetrics, *, model_ref: str, model_name: str) -> None:
        self.metrics = metrics
        self.model_ref = model_ref
        self.model_name = model_name
        #: The traffic plan, from the server's start on.
        self.traffic: Traffic | None = None
        #: Counts failed requests per version and role for the monitor (when logging).
        self.failures: FailureLog | None = None
        self._shadow_served: dict[asyncio.Future[Any], tuple[ServedModel, int]] = {}

    def sticky(self, request: Request, decoded_sticky: Callable[[str], str | None]) -> str | None:
        """The request's sticky key: its ``X-Sticky-Key`` header, or the first sticky-key
        field its body has."""
        assert self.traffic is not None
        header = request.headers.get("x-sticky-key")
        if header:
            return header
        for key in self.traffic.sticky_keys:
            value = decoded_sticky(key)
            if value is not None:
                return value
        return None

    async def infer(
        self,
        ctx: RequestContext,
        validate: Validate,
        sticky: str | None,
        *,
        version: int | None = None,
    ) -> tuple[ServedModel, JobResult]:
        """The served version that answered and its answer; ``version`` asks for that
        version (then no split applies and no shadow gets a copy)."""
        traffic = self.traffic
        if traffic is None:
            raise self.not_loaded()
        slot = traffic.choose(sticky) if version is None else self.slot_for(version)
        for _ in range(_TRIES):
            served = slot.current
            if served is None:
                if slot is not traffic.primary:
                    slot = traffic.primary
                    continue
                raise self.not_loaded()
            if version is not None and served.version != version:
                slot = self.slot_for(version)
                continue
            #: A canary's failure falls back to the primary (never for a pinned version).
            fallback = version is None and slot is not traffic.primary
            result = validate(served.validator, self._drop(served))
            if not result.ok:
                self._failed(served, "invalid", result, ctx)
                if fallback:
                    self.metrics.canary_fallbacks.labels(version=str(served.version)).inc()
                    slot = traffic.primary
                    continue
                self.metrics.validation_failures.labels(route=ctx.route).inc()
                raise HTTPProblem.invalid(result)
            job = Job.of(result, ctx.request_id, ctx.arrived, ctx.t0)
            try:
                fut = served.batcher.submit_nowait(job)
            except BatcherClosed:
                continue  # swapped between validation and submission: use the new version
            ctx.leave()
            try:
                answer: JobResult = await fut
            except Exception as exc:
                self._failed(served, "model_error", result, ctx)
                if fallback:
                    self.metrics.canary_fallbacks.labels(version=str(served.version)).inc()
                    slot = traffic.primary
                    continue
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

    def _failed(
        self, served: ServedModel, kind: str, result: ValidationResult, ctx: RequestContext
    ) -> None:
        if self.failures is None:
            return
        column = ""
        problems = getattr(result, "problems", None) or ()
        for problem in problems:
            column = str(getattr(problem, "column", "") or "")
            if column:
                break
        self.failures.add(
            served.version, served.role, kind, column=column, rows=result.n_rows, at=ctx.arrived
        )

    def not_loaded(self) -> HTTPProblem:
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

    def slot_for(self, version: int) -> ModelSlot:
        """The slot serving ``version`` now, or 404."""
        assert self.traffic is not None
        for slot in (self.traffic.primary, *self.traffic.slots.values()):
            if slot is not None and slot.current is not None and slot.current.version == version:
                return slot
        raise HTTPProblem(
            404, "unknown_version", f"Version {version} of {self.model_name} is not served here"
        )

    def served(self, version: int | None) -> ServedModel:
        """The version that answers for ``version`` (None: the primary's), or 404."""
        if self.traffic is None or self.traffic.primary.current is None:
            raise HTTPProblem(404, "not_ready", self.not_loaded().message)
        if version is None:
            return self.traffic.primary.current
        served = self.slot_for(version).current
        assert served is not None
        return served

    def versions(self) -> set[int]:
        """Every version served now (primary and candidates)."""
        assert self.traffic is not None
        out = set()
        for slot in (self.traffic.primary, *self.traffic.slots.values()):
            if slot is not None and slot.current is not None:
                out.add(slot.current.version)
        return out

    def _drop(self, served: ServedModel) -> frozenset[str]:
        assert self.traffic is not None
        keys = self.traffic.sticky_keys
        if not keys:
            return _EMPTY
        return frozenset(k for k in keys if k not in served.names)

    def _shadow(
        self,
        ctx: RequestContext,
        validate: Validate,
        result: ValidationResult,
        primary: ServedModel,
        sticky: str | None,
    ) -> None:
        assert self.traffic is not None
        slot = self.traffic.shadow(sticky)
        if slot is None:
            return
        served = slot.current
        if served is None or served is primary or served.batcher.depth > _SHADOW_MAX_DEPTH:
            self.metrics.shadow_errors.inc()
            return
        if served.signature != primary.signature:
            result = validate(served.validator, self._drop(served))
            if not result.ok:
                self.metrics.shadow_errors.inc()
                self._failed(served, "invalid", result, ctx)
                return
        job = Job.of(result, ctx.request_id, ctx.arrived, ctx.t0)
        try:
            fut = served.batcher.submit_nowait(job)
        except BatcherClosed:
            return
        self._shadow_served[fut] = (served, result.n_rows)
        fut.add_done_callback(self._shadow_done)

    def _shadow_done(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self.metrics.shadow_errors.inc()
            served = self._shadow_served.pop(fut, None)
            if served is not None and self.failures is not None:
                self.failures.add(served[0].version, served[0].role, "model_error", rows=served[1])
        else:
            self._shadow_served.pop(fut, None)
