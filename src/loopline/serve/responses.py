"""Responses: JSON bodies (numpy arrays written as they are), the headers that name the
model version that answered, and problem bodies in each protocol's style.

A problem body has the style of the protocol its route speaks:

- ``loopline``: ``{"error": code, "message": ...}``;
- ``mlflow``: ``{"error_code": "BAD_REQUEST" | "INVALID_PARAMETER_VALUE" | CODE, "message": ...}``,
  as ``mlflow models serve`` answers;
- ``v2``: ``{"error": message, "code": code}``, the Open Inference Protocol's ``error``.

Each also lists the ``problems`` (and ``more_problems``) of a validation failure and the
``request_id``. No value can break the report: when the body cannot be written as JSON
(a value too deep, an integer too large), the answer drops the detailed report but stays
JSON with the same status.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import Response

from loopline.serve.bodies import HTTPProblem

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

    from loopline.serve.deployment import ServedModel

log = logging.getLogger("loopline.serve")

#: How a route writes its problems: the protocol it speaks.
ProblemStyle = Literal["loopline", "mlflow", "v2"]

JSON = "application/json"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_MLFLOW_CODES = {400: "BAD_REQUEST", 422: "INVALID_PARAMETER_VALUE"}


def jsonable(arr: Any) -> Any:
    """A numpy array orjson can write directly when possible, else a list."""
    kind = getattr(getattr(arr, "dtype", None), "kind", "O")
    if kind in "biuf" and arr.flags.c_contiguous:
        return arr
    return arr.tolist() if hasattr(arr, "tolist") else arr


def model_header_pairs(served: ServedModel) -> list[tuple[bytes, bytes]]:
    """:func:`model_headers` as ASGI header pairs."""
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in model_headers(served).items()]


def model_headers(served: ServedModel) -> dict[str, str]:
    """The model, version and role that answered (``x-model-name``, ``x-model-version``,
    ``x-served-by``)."""
    return {
        "x-model-name": served.name,
        "x-model-version": str(served.version),
        "x-served-by": served.role,
    }


def json_response(payload: Any, served: ServedModel | None = None, status: int = 200) -> Response:
    """``payload`` as JSON (numpy arrays and scalars included), with the model headers of
    ``served`` when given."""
    headers = None if served is None else model_headers(served)
    return Response(dumps(payload), status_code=status, media_type=JSON, headers=headers)


def dumps(payload: Any) -> bytes:
    """``payload`` as JSON bytes (numpy arrays and scalars included)."""
    try:
        return orjson.dumps(payload, option=_NUMPY)
    except TypeError:
        return orjson.dumps(payload, option=_NUMPY, default=_fallback)


_CONTENT_TYPE = (b"content-type", JSON.encode())


class JSONEndpoint:
    """A plain ASGI endpoint around ``handler(request) -> (payload, served)``: answers 200
    with the payload as JSON and the model headers of the version that answered, in two
    ASGI messages (no response object, no task). What the handler raises is the caller's
    (the route's :class:`~loopline.serve.middleware.RequestMiddleware` answers it)."""

    def __init__(self, handler: Callable[[Request], Awaitable[tuple[Any, ServedModel]]]) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        payload, served = await self.handler(Request(scope, receive, send))
        data = dumps(payload)
        headers = [(b"content-length", b"%d" % len(data)), _CONTENT_TYPE, *served.header_pairs]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})


def _fallback(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return str(value)


def problem_response(problem: HTTPProblem, request_id: str, style: ProblemStyle) -> Response:
    """The answer to a refused request, in the problem style of its route."""
    body: dict[str, Any]
    if style == "mlflow":
        code = _MLFLOW_CODES.get(problem.status, problem.code.upper())
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
    return Response(data, status_code=problem.status, media_type=JSON, headers=problem.headers)
