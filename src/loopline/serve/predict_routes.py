"""The prediction routes of loopline's own format and of MLflow's scoring protocol.

``POST /predict`` takes JSON records, one record, JSON columns, CSV or Parquet and answers
``{"request_id", "model", "version", "role", "predictions"}`` (and, for a classifier,
``probabilities`` and ``classes``). ``POST /invocations`` takes the bodies ``mlflow models
serve`` takes and answers ``{"predictions": [...]}`` as it does: labels, or probabilities
with ``predict_method = "predict_proba"`` (in ``params``, or ``?method=``); its problems
are in MLflow's style. Both need the ``predict`` role, and both are batched.

Both are plain ASGI endpoints (no response object: the JSON is written with its headers in
two messages) and :func:`hot_paths` names them for the app's dispatcher, which sends a
``POST`` to them straight away, past the router and Starlette's middleware
(see :class:`loopline.serve.app.ServeStarlette`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.routing import Route

from loopline.echo import echo_text
from loopline.serve.bodies import HTTPProblem, decode_invocations, decode_predict, read_body
from loopline.serve.middleware import request_context
from loopline.serve.responses import JSONEndpoint, jsonable

if TYPE_CHECKING:
    from loopline.serve.app import ServerApp
    from loopline.serve.deployment import ServedModel

    #: A prediction handler: the request -> (the JSON payload, the version that answered).
    Handler = Callable[[Request], Awaitable[tuple[Any, ServedModel]]]

_METHODS = (None, "predict", "predict_proba")
#: The paths of the prediction routes (what :func:`hot_paths` gives the dispatcher).
HOT_PATHS = ("/predict", "/invocations")


def hot_paths(routes: list[Any]) -> dict[str, Any]:
    """``{path: ASGI app}`` of the prediction routes among ``routes`` (their middleware
    included), for a ``POST`` to be sent there without matching every route first."""
    return {
        route.path: route.app
        for route in routes
        if isinstance(route, Route) and route.path in HOT_PATHS
    }


def _query_method(request: Request) -> str | None:
    """``?method=`` (the last one, as Starlette's ``query_params`` reads it), parsing the
    query string only when there is one."""
    query: bytes = request.scope.get("query_string", b"")
    if not query:
        return None
    value: str | None = None
    for key, item in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key == "method":
            value = item
    return value


class PredictRoutes:
    """``/predict`` and ``/invocations`` of one server."""

    def __init__(self, server: ServerApp) -> None:
        self.auth = server.auth
        self.inference = server.inference
        self.max_body_bytes = server.serve.max_body_bytes
        self.tracker = server.tracker

    def routes(self) -> list[Route]:
        counted = self.tracker.counted
        return [
            Route(
                "/predict",
                JSONEndpoint(self.predict),
                methods=["POST"],
                middleware=counted("predict", batched=True),
            ),
            Route(
                "/invocations",
                JSONEndpoint(self.invocations),
                methods=["POST"],
                middleware=counted("invocations", style="mlflow", batched=True),
            ),
        ]

    async def predict(self, request: Request) -> tuple[Any, ServedModel]:
        ctx = request_context(request)
        await self.auth.require(request, "predict")
        body = await read_body(request, self.max_body_bytes)
        decoded = decode_predict(request.headers.get("content-type"), body)
        inference = self.inference
        served, answer = await inference.infer(
            ctx, decoded.validate, inference.sticky(request, decoded.sticky)
        )
        out = answer.outputs
        payload: dict[str, Any] = {
            "request_id": ctx.request_id,
            "model": served.name,
            "version": answer.version,
            "role": served.role,
            "predictions": jsonable(out.predictions),
        }
        if out.probabilities is not None:
            payload["probabilities"] = jsonable(out.probabilities)
            payload["classes"] = served.classes
        return payload, served

    async def invocations(self, request: Request) -> tuple[Any, ServedModel]:
        ctx = request_context(request)
        await self.auth.require(request, "predict")
        body = await read_body(request, self.max_body_bytes)
        decoded = decode_invocations(request.headers.get("content-type"), body)
        method = decoded.params.get("predict_method") or _query_method(request)
        if method not in _METHODS:
            raise HTTPProblem(
                400,
                "bad_request",
                f"predict_method {echo_text(method)} is not one of predict, predict_proba",
            )
        inference = self.inference
        served, answer = await inference.infer(
            ctx, decoded.validate, inference.sticky(request, decoded.sticky)
        )
        out = answer.outputs
        if method == "predict_proba":
            if out.probabilities is None:
                raise HTTPProblem(
                    400, "bad_request", f"Model {served.ref} is not a classifier: no predict_proba"
                )
            predictions = jsonable(out.probabilities)
        else:
            predictions = jsonable(out.predictions)
        return {"predictions": predictions}, served
