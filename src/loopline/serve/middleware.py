"""What every counted request gets, in one place: an id, its count and latency in the
metrics, and its errors turned into problem bodies.

:class:`RequestMiddleware` is a pure ASGI middleware (it only wraps ``send``: no request
or response objects, no task per request), put on each counted route by
:meth:`RequestTracker.counted`, which names the route in the metrics, sets its problem
style and says whether it is *batched* (its requests feed a micro-batcher). For each
request it:

- takes the client's ``X-Request-Id`` when it is a valid id, or makes one, and keeps it
  in a :class:`RequestContext` in the request's ASGI state (``scope["state"]``), where the
  handler reads it and may replace it (a V2 request's ``id``) and records the model
  version that answered;
- for a batched route, counts the request among the arrivals from its start until its
  rows are queued for a model call (or it is answered), so that batchers wait for it
  (see :mod:`loopline.serve.batching`);
- answers an :class:`~loopline.serve.bodies.HTTPProblem` the handler raised with a
  problem body in the route's style, and any other exception (a bug) with a 500 problem
  body, after logging it;
- when the response starts: adds ``x-request-id`` and counts the request by route,
  status and model version, with its latency.

Routes that are not counted (health, the API docs) get none of this, and neither do
paths no route matches, or a method a route does not take (Starlette's 404 and 405).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.middleware import Middleware

from loopline.serve.bodies import HTTPProblem
from loopline.serve.responses import ProblemStyle, problem_response

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from loopline.serve.batching import Arrivals
    from loopline.serve.metrics import ServeMetrics

log = logging.getLogger("loopline.serve")

#: What a request id may be (a client's ``X-Request-Id``, a V2 request's ``id``).
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_HEADER = b"x-request-id"
#: The request's :class:`RequestContext` in ``scope["state"]``.
_STATE_KEY = "loopline.request"


@dataclass(slots=True)
class RequestContext:
    """One counted request in flight."""

    request_id: str
    #: ``time.perf_counter()`` at arrival, for latencies.
    t0: float
    #: Wall-clock arrival (seconds since the epoch), for the prediction log.
    arrived: float
    arrivals: Arrivals
    route: str = "-"
    #: Whether the request no longer counts among the arrivals (always, when not batched).
    left: bool = False
    #: The model version that answered (its metrics label), once one has.
    version: str = "-"

    def leave(self) -> None:
        """No longer among the arrivals (its rows are queued, or it is answered)."""
        if not self.left:
            self.left = True
            self.arrivals.leave()


def request_context(request: Request) -> RequestContext:
    """The context :class:`RequestMiddleware` made for ``request``."""
    ctx: RequestContext = request.scope["state"][_STATE_KEY]
    return ctx


class RequestTracker:
    """Request ids and request metrics, shared by the counted routes of one server."""

    def __init__(self, metrics: ServeMetrics, arrivals: Arrivals) -> None:
        self.metrics = metrics
        self.arrivals = arrivals
        self._id_prefix = secrets.token_hex(8)
        self._counter = 0
        self._children: dict[tuple[str, int, str], tuple[Any, Any]] = {}

    def counted(
        self, route: str, *, style: ProblemStyle = "loopline", batched: bool = False
    ) -> list[Middleware]:
        """The middleware of a counted route (``Route(..., middleware=...)``)."""
        return [
            Middleware(RequestMiddleware, tracker=self, route=route, style=style, batched=batched)
        ]

    def new_id(self) -> str:
        """A unique request id: this process's random prefix and a counter (cheaper than
        uuid4 on every request, and as unique)."""
        self._counter += 1
        return f"{self._id_prefix}{self._counter:08x}"

    def count(self, route: str, status: int, version: str, seconds: float) -> None:
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


class RequestMiddleware:
    """The request id, metrics and error answers of one counted route (see the module)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tracker: RequestTracker,
        route: str,
        style: ProblemStyle = "loopline",
        batched: bool = False,
    ) -> None:
        self.app = app
        self.tracker = tracker
        self.route = route
        self.style: ProblemStyle = style
        self.batched = batched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        tracker = self.tracker
        route = self.route
        rid = _client_id(scope["headers"]) or tracker.new_id()
        ctx = RequestContext(rid, t0, time.time(), tracker.arrivals, route, left=not self.batched)
        state = scope.get("state")
        if state is None:
            scope["state"] = state = {}
        state[_STATE_KEY] = ctx
        if self.batched:
            tracker.arrivals.enter()
        started = False

        async def answer(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                ctx.leave()
                message["headers"] = [
                    *message.get("headers", ()),
                    (_HEADER, ctx.request_id.encode("latin-1")),
                ]
                status: int = message["status"]
                tracker.count(route, status, ctx.version, time.perf_counter() - t0)
            await send(message)

        try:
            await self.app(scope, receive, answer)
        except HTTPProblem as problem:
            if started:
                raise
            await problem_response(problem, ctx.request_id, self.style)(scope, receive, answer)
        except Exception:
            if started:
                raise
            log.exception("request %s on %s failed", ctx.request_id, route)
            bug = HTTPProblem(500, "internal_error", "The server failed; this is a bug")
            await problem_response(bug, ctx.request_id, self.style)(scope, receive, answer)
        finally:
            ctx.leave()


def _client_id(headers: Any) -> str | None:
    """The client's ``X-Request-Id`` (its first one) when it is a valid id."""
    for key, value in headers:
        if key == _HEADER:
            text: str = value.decode("latin-1")
            return text if REQUEST_ID.fullmatch(text) else None
    return None
