"""Deployments: per model alias, the versions serving it with their traffic shares
(primary, canary, shadow), and each one's request rate, latency percentiles and error
share: from the prediction log (requests in the last hour) and the monitor's series
(``health.*`` of the newest windows)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from loopline.ui import charts
from loopline.ui.render import Page

if TYPE_CHECKING:
    from loopline.registry import ModelSummary, Registry, TrafficSplit
    from loopline.store.stores import Stores
    from loopline.ui.app import Call

HEALTH = (
    "health.requests",
    "health.request_rate",
    "health.latency_p50_ms",
    "health.latency_p95_ms",
    "health.latency_p99_ms",
    "health.error_share",
)
#: Windows of the health charts.
WINDOWS = 48
RECENT = timedelta(hours=1)


def deployments_page(call: Call) -> Page:
    ui = call.ui
    models = [m for m in ui.registry.list_models() if m.aliases]
    data = {"models": [_model(ui.stores, ui.registry, m) for m in models]}
    figures = {m["name"]: _figures(ui.stores, m["name"]) for m in data["models"]}
    return Page("deployments.html", data, title="Deployments", extra={"figures": figures})


def _model(stores: Stores, reg: Registry, summary: ModelSummary) -> dict[str, Any]:
    from loopline.monitor.predictions import PredictionIndex
    from loopline.monitor.series import latest_values

    name = summary.name
    splits = {s.alias: s for s in reg.traffic_splits(name)}
    health: dict[tuple[int, str], dict[str, Any]] = {}
    for p in latest_values(stores, name, list(HEALTH)):
        entry = health.setdefault((p.version, p.role), {"window_end": None})
        entry[p.metric.removeprefix("health.")] = p.value
        end = p.window_end.isoformat()
        if entry["window_end"] is None or end > entry["window_end"]:
            entry["window_end"] = end
    logged = {
        (t["version"], t["role"]): t for t in PredictionIndex(stores.db).traffic(name, RECENT)
    }
    aliases = []
    for alias, version in sorted(summary.aliases.items()):
        serving = _shares(reg, name, version, splits.get(alias))
        for s in serving:
            key = (s["version"], s["role"])
            s["health"] = health.get(key)
            seen = logged.get(key)
            s["requests_last_hour"] = 0 if seen is None else seen["requests"]
            s["last_request_at"] = None if seen is None else seen["last_at"]
        split = splits.get(alias)
        aliases.append(
            {
                "alias": alias,
                "version": version,
                "split": None if split is None else split.to_dict(),
                "serving": serving,
            }
        )
    return {"name": name, "aliases": aliases}


def _shares(
    reg: Registry, name: str, version: int, split: TrafficSplit | None
) -> list[dict[str, Any]]:
    """Who answers ``name@alias``: the primary's share and the candidate's (a canary's
    requests are taken from the primary; a shadow gets copies, the primary answers all)."""
    if split is None:
        return [{"version": version, "role": "primary", "share": 100.0}]
    try:
        candidate = reg.resolve(split.candidate).version
    except Exception:  # the candidate's alias was removed: the server serves the primary
        return [{"version": version, "role": "primary", "share": 100.0}]
    primary = 100.0 - split.percent if split.mode == "canary" else 100.0
    return [
        {"version": version, "role": "primary", "share": primary},
        {"version": candidate, "role": split.mode, "share": split.percent},
    ]


def _figures(stores: Stores, name: str) -> list[dict[str, Any]]:
    from loopline.monitor.series import read_series

    points = read_series(stores, name, metric="health.*", last=WINDOWS)
    out = []
    for metric, title in (
        ("health.request_rate", "requests per second"),
        ("health.latency_p95_ms", "latency p95 (ms)"),
        ("health.error_share", "error share"),
    ):
        groups: dict[tuple[int, str], list[Any]] = {}
        for p in points:
            if p.metric == metric:
                groups.setdefault((p.version, p.role), []).append(p)
        if not groups:
            continue
        traces = [
            charts.line(
                f"v{v} {role}", [p.window_end.isoformat() for p in pts], [p.value for p in pts]
            )
            for (v, role), pts in sorted(groups.items())
        ]
        out.append(charts.figure(traces, title=title, x_type="date", height=230, legend=True))
    return out


ROUTES = [("/deployments", deployments_page, "GET", "read")]
