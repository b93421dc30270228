"""The routes around the predictions: feedback, health, metrics, the API docs and admin.

- ``POST /feedback`` (role ``predict``): ground-truth labels for earlier requests, stored
  by :class:`~loopline.monitor.feedback.FeedbackStore`; 200 when any item was accepted,
  422 when none was.
- ``GET /health/live`` (also ``/v2/health/live``): the process answers.
  ``GET /health/ready`` (also ``/ping``, as MLflow, and ``/v2/health/ready``): 200 once
  every worker has loaded the model, else 503 (with the load error, if any).
- ``GET /metrics`` (role ``read``): the Prometheus text format, merged over workers.
- ``GET /openapi.json`` and ``GET /docs``: the API, built from the served signature.
- ``GET /admin/status`` and ``POST /admin/reload`` (role ``admin``): what is served, and
  follow the alias, traffic split and keys now (in every worker).

Health and docs stay open with auth on, and are not counted in the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from loopline.echo import echo_text
from loopline.serve.bodies import HTTPProblem, parse_json, read_body
from loopline.serve.metrics import CONTENT_TYPE
from loopline.serve.responses import json_response

if TYPE_CHECKING:
    from starlette.requests import Request

    from loopline.serve.app import ServerApp


class ServiceRoutes:
    """Feedback, health, metrics, docs and admin routes of one server."""

    def __init__(self, server: ServerApp) -> None:
        self.server = server
        self.auth = server.auth

    def routes(self) -> list[Route]:
        counted = self.server.tracker.counted
        return [
            Route("/feedback", self.feedback, methods=["POST"], middleware=counted("feedback")),
            Route("/health/live", self.health_live, methods=["GET"]),
            Route("/health/ready", self.health_ready, methods=["GET"]),
            Route("/ping", self.health_ready, methods=["GET"]),
            Route("/v2/health/live", self.health_live, methods=["GET"]),
            Route("/v2/health/ready", self.health_ready, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"], middleware=counted("metrics")),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/docs", self.docs, methods=["GET"]),
            Route("/admin/status", self.admin_status, methods=["GET"], middleware=counted("admin")),
            Route(
                "/admin/reload", self.admin_reload, methods=["POST"], middleware=counted("admin")
            ),
        ]

    # -- feedback -----------------------------------------------------------------------

    async def feedback(self, request: Request) -> Response:
        from functools import partial

        from loopline.monitor.errors import FeedbackError
        from loopline.monitor.feedback import FeedbackStore, parse_feedback
        from loopline.serve.bodies import JSON_TYPES, media_type

        server = self.server
        await self.auth.require(request, "predict")
        kind = media_type(request.headers.get("content-type"))
        if kind and kind not in JSON_TYPES:
            raise HTTPProblem(
                415,
                "unsupported_media_type",
                f"Content-Type {echo_text(kind)}: send application/json",
            )
        body = await read_body(request, server.serve.max_body_bytes)
        try:
            items, invalid = parse_feedback(parse_json(body))
        except FeedbackError as exc:
            raise HTTPProblem(400, "bad_feedback", str(exc)) from None
        assert server.stores is not None
        writer = server.log_writer
        store = FeedbackStore(
            server.stores.db, pending=None if writer is None else writer.has_request
        )
        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(
            server.io_executor, partial(store.record, items, invalid=invalid, source="api")
        )
        for status, count in report.counts.items():
            if count and status != "late":
                server.metrics.feedback.labels(status=status).inc(count)
        return json_response(report.to_dict(), status=200 if report.accepted else 422)

    # -- health, metrics ----------------------------------------------------------------

    async def health_live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def health_ready(self, request: Request) -> Response:
        server = self.server
        ready = server.is_ready()
        body: dict[str, Any] = {"ready": ready}
        traffic = server.traffic
        if traffic is not None:
            current = traffic.primary.current
            body["model"] = server.model_ref
            body["version"] = None if current is None else current.version
            if not ready and traffic.primary.last_error:
                body["error"] = traffic.primary.last_error
        return json_response(body, status=200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        await self.auth.require(request, "read")
        loop = asyncio.get_running_loop()
        server = self.server
        data = await loop.run_in_executor(server.io_executor, server.metrics.exposition)
        if server.monitor_gauges is not None:
            data += await loop.run_in_executor(server.io_executor, server.monitor_gauges.text)
        return Response(data, media_type=CONTENT_TYPE)

    # -- the API docs -------------------------------------------------------------------

    def schema(self) -> dict[str, Any]:
        """The OpenAPI document for the model as served now."""
        from loopline.serve.openapi import openapi_schema

        server = self.server
        current = None if server.traffic is None else server.traffic.primary.current
        return openapi_schema(
            None if current is None else current.signature,
            model=server.model_ref,
            version=None if current is None else current.version,
            auth=server.serve.auth,
        )

    async def openapi(self, request: Request) -> Response:
        return json_response(self.schema())

    async def docs(self, request: Request) -> Response:
        from loopline.serve.openapi import docs_page

        return HTMLResponse(docs_page(self.schema()))

    # -- admin --------------------------------------------------------------------------

    async def admin_status(self, request: Request) -> Response:
        await self.auth.require(request, "admin")
        return json_response(self.server.status())

    async def admin_reload(self, request: Request) -> Response:
        await self.auth.require(request, "admin")
        server = self.server
        result = await server.refresh()
        if server.monitor_gauges is not None:
            server.monitor_gauges.invalidate()  # the next scrape reads the newest values
        supervisor = server.worker.supervisor_pid
        if supervisor:
            with contextlib.suppress(OSError):
                os.kill(supervisor, signal.SIGUSR1)
        return json_response({**result, "status": server.status()})
