"""The controller's own HTTP routes: health, metrics, and Alertmanager's webhook.

``GET /health``         200 with what the controller is doing (``leader`` or ``standby``),
                        503 when its last tick is older than three ticks plus the lease
``GET /metrics``        the Prometheus text format: the controller's counters, rollouts by
                        state, alarm states, and the monitored values of the models it
                        watches (``loopline_monitor_value``)
``POST /alertmanager``  an Alertmanager webhook payload (version 4): each firing or
                        resolved alert whose ``loopline_alarm`` label (or ``alertname``)
                        names an alarm moves it, and runs its actions

With ``[serve] auth`` on, ``/metrics`` needs a key of role ``read`` and ``/alertmanager``
one of role ``admin`` (Alertmanager sends it with ``http_config.authorization``); bodies
above 1 MiB are refused.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from loopline.loop.controller import Controller

MAX_BODY = 1 << 20
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def controller_app(controller: Controller) -> Starlette:
    from concurrent.futures import ThreadPoolExecutor

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from loopline.monitor.gauges import MonitorGauges
    from loopline.serve.settings import load_serve_settings

    serve = load_serve_settings(controller.settings)
    io = ThreadPoolExecutor(2, thread_name_prefix="loopline-loop-http")
    gauges = {
        model: MonitorGauges(controller.stores, model, ttl_s=max(1.0, controller.config.tick_s))
        for model in sorted(controller.monitors)
    }

    def problem(status: int, code: str, message: str) -> Response:
        return JSONResponse({"error": code, "message": message}, status_code=status)

    async def allowed(request: Request, need: str) -> Response | None:
        if not serve.auth:
            return None
        from loopline.serve.keys import KeyStore, role_allows

        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return problem(401, "unauthorized", "Send an API key: Authorization: Bearer <key>")
        loop = asyncio.get_running_loop()
        key = await loop.run_in_executor(io, KeyStore(controller.stores.db).verify, token.strip())
        if key is None:
            return problem(401, "unauthorized", "Unknown or revoked API key")
        if not role_allows(key.role, need):
            return problem(403, "forbidden", f"This key's role is {key.role!r}; needs {need!r}")
        return None

    async def health(request: Request) -> Response:
        stats = controller.stats
        age = None if stats.last_tick_at is None else time.time() - stats.last_tick_at
        stale = age is None or age > 3 * controller.config.tick_s + controller.config.lease_s
        body = {
            "status": "stale" if stale else ("leader" if stats.leader else "standby"),
            "holder": controller.holder,
            "last_tick_age_s": None if age is None else round(age, 3),
            "stats": stats.to_dict(),
        }
        return JSONResponse(body, status_code=503 if stale else 200)

    async def metrics(request: Request) -> Response:
        refused = await allowed(request, "read")
        if refused is not None:
            return refused
        loop = asyncio.get_running_loop()
        text = await loop.run_in_executor(io, controller_metrics, controller)
        for g in gauges.values():
            text += await loop.run_in_executor(io, g.text)
        return Response(text, media_type=CONTENT_TYPE)

    async def alertmanager(request: Request) -> Response:
        refused = await allowed(request, "admin")
        if refused is not None:
            return refused
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            return problem(413, "too_large", f"The body is over {MAX_BODY} bytes")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return problem(413, "too_large", f"The body is over {MAX_BODY} bytes")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return problem(400, "invalid_json", f"The body is not JSON: {exc}")
        if not isinstance(payload, dict):
            return problem(400, "invalid_payload", "Expected an Alertmanager webhook object")
        from loopline.errors import LooplineError

        loop = asyncio.get_running_loop()
        try:
            applied = await loop.run_in_executor(
                io, controller.engine.receive_alertmanager, payload
            )
        except LooplineError as exc:
            return problem(400, "invalid_payload", exc.message)
        await loop.run_in_executor(io, controller.runner.dispatch)
        return JSONResponse({"alerts": applied})

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/alertmanager", alertmanager, methods=["POST"]),
        ]
    )


def controller_metrics(controller: Controller) -> bytes:
    """The controller's own metrics, in the Prometheus text format."""
    import sqlalchemy as sa

    from loopline.alarm.delivery import STATUSES as DELIVERY_STATUSES
    from loopline.alarm.delivery import delivery_counts
    from loopline.alarm.rules import STATES as ALARM_STATES
    from loopline.loop.rollout import STATES
    from loopline.loop.tables import rollouts

    s = controller.stats
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{{{labels}}} {value!r}" if labels else f"{name} {value!r}")

    metric(
        "loopline_loop_leader",
        "gauge",
        "1 while this controller holds the lease.",
        [("", float(s.leader))],
    )
    metric(
        "loopline_loop_ticks_total",
        "counter",
        "Ticks since the controller started.",
        [("", float(s.ticks))],
    )
    metric(
        "loopline_loop_last_tick_seconds",
        "gauge",
        "When the last tick started.",
        [("", float(s.last_tick_at or 0.0))],
    )
    metric(
        "loopline_loop_monitor_runs_total",
        "counter",
        "Scheduled monitor runs done.",
        [("", float(s.monitor_runs))],
    )
    metric(
        "loopline_loop_monitor_failures_total",
        "counter",
        "Scheduled monitor runs failed.",
        [("", float(s.monitor_failures))],
    )
    metric(
        "loopline_loop_errors_total",
        "counter",
        "Errors of the controller's ticks.",
        [("", float(s.errors))],
    )
    with controller.stores.db.read() as conn:
        counts = conn.execute(
            sa.select(rollouts.c.model, rollouts.c.state, sa.func.count()).group_by(
                rollouts.c.model, rollouts.c.state
            )
        ).all()
    models = sorted({m for m, _, _ in counts} | set(controller.loops))
    found = {(m, st): int(n) for m, st, n in counts}
    metric(
        "loopline_loop_rollouts",
        "gauge",
        "Rollouts of each model by state (the active states are 0 or 1).",
        [
            (f'model="{m}",state="{st}"', float(found.get((m, st), 0)))
            for m in models
            for st in STATES
        ],
    )
    states = controller.engine.states()
    metric(
        "loopline_alarm_state",
        "gauge",
        "1 for the state each alarm is in.",
        [
            (
                f'alarm="{name}",state="{st}"',
                float(states[name].state == st if name in states else st == "insufficient_data"),
            )
            for name in sorted(controller.alarms)
            for st in ALARM_STATES
        ],
    )
    deliveries = delivery_counts(controller.stores)
    subscribers = sorted({name for name, _ in deliveries} | set(controller.delivery.hooks))
    metric(
        "loopline_event_deliveries",
        "gauge",
        "Deliveries of events to each [events] webhook, by status.",
        [
            (f'subscriber="{name}",status="{st}"', float(deliveries.get((name, st), 0)))
            for name in subscribers
            for st in DELIVERY_STATUSES
        ],
    )
    return ("\n".join(lines) + "\n").encode()


class ControllerServer:
    """The routes served by uvicorn in a thread beside the controller's loop."""

    def __init__(self, controller: Controller, host: str, port: int) -> None:
        import uvicorn

        self.config = uvicorn.Config(
            controller_app(controller),
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(
            target=self.server.run, name="loopline-loop-http", daemon=True
        )

    def start(self, timeout_s: float = 10.0) -> int:
        """Start serving; the port it listens on."""
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                from loopline.loop.errors import LoopError

                raise LoopError(
                    f"The controller cannot listen on {self.config.host}:{self.config.port} "
                    "(in use?)",
                    hint="Set [controller] port to a free port (0: any)",
                )
            time.sleep(0.02)
        sockets = self.server.servers[0].sockets if self.server.servers else []
        return int(sockets[0].getsockname()[1]) if sockets else self.config.port

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


__all__ = ["ControllerServer", "controller_app", "controller_metrics"]
