"""Monitors: the stored series of each monitored model over its newest windows.

Drift as a heatmap (windows x features, each cell the deciding statistic against its
threshold), drift share, data quality, anomalies, realized against estimated
performance, and what the model answered (positive rate, mean score, prediction drift);
one feature's statistics over time on its own page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from loopline.ui import charts
from loopline.ui.errors import PageNotFoundError
from loopline.ui.query import integer, text
from loopline.ui.render import Page

if TYPE_CHECKING:
    from loopline.monitor.series import Point
    from loopline.ui.app import Call

WINDOWS = 24
MAX_WINDOWS = 500
DRIFT = "feature_drift.score"


def monitors_page(call: Call) -> Page:
    from loopline.monitor.series import monitored_models

    data = {"models": monitored_models(call.ui.stores)}
    return Page("monitors.html", data, title="Monitors")


def _points(call: Call, model: str) -> tuple[list[Point], int, str, int | None]:
    from loopline.monitor.series import read_series

    windows = integer(call.query, "windows", WINDOWS, low=1, high=MAX_WINDOWS)
    role = text(call.query, "role") or "primary"
    raw_version = text(call.query, "version")
    version = None if raw_version is None else integer(call.query, "version", 0, low=1, high=10**9)
    points = read_series(call.ui.stores, model, version=version, last=windows)
    if not points:
        raise PageNotFoundError(
            f"No monitored windows of {model!r}: run loopline monitor run {model}@ALIAS"
        )
    return points, windows, role, version


def monitor_page(call: Call) -> Page:
    from loopline.monitor.series import runs

    model = call.arg("model")
    points, windows, role, version = _points(call, model)
    mine = [p for p in points if p.role == role]
    heat = heatmap(mine)
    latest_run = next(iter(runs(call.ui.stores, model, limit=1)), None)
    ends = sorted({p.window_end for p in mine})
    newest = ends[-1] if ends else None
    quality = [
        {
            "feature": p.feature,
            "metric": p.metric.removeprefix("quality."),
            "value": p.value,
            "threshold": p.threshold,
            "status": p.status,
        }
        for p in mine
        if p.window_end == newest and p.metric.startswith("quality.") and p.feature
    ]
    data = {
        "model": model,
        "role": role,
        "version": version,
        "windows": windows,
        "roles": sorted({p.role for p in points}),
        "versions": sorted({p.version for p in points}),
        "heatmap": heat,
        "series": _series(mine),
        "quality_latest": quality,
        "anomalies": _anomalies(latest_run, role),
        "latest_run": latest_run,
    }
    figures = _figures(mine)
    return Page("monitor.html", data, title=f"Monitor {model}", extra={"figures": figures})


def heatmap(points: Sequence[Point]) -> dict[str, Any]:
    """Windows x features of the drift score: ``cells[feature][window]`` is the window's
    value, threshold and status (None where that window has no value for it)."""
    cells_of = [p for p in points if p.metric == DRIFT]
    windows = sorted({p.window_end for p in cells_of})
    features = sorted({p.feature for p in cells_of})
    grid: dict[tuple[Any, str], Point] = {}
    for point in sorted(cells_of, key=lambda p: p.version):  # the newest version wins
        grid[(point.window_end, point.feature)] = point
    cells = []
    for feature in features:
        row = []
        for end in windows:
            cell = grid.get((end, feature))
            row.append(
                None
                if cell is None
                else {
                    "value": cell.value,
                    "threshold": cell.threshold,
                    "status": cell.status,
                    "version": cell.version,
                }
            )
        cells.append(row)
    return {
        "windows": [w.isoformat() for w in windows],
        "features": features,
        "cells": cells,
        "drifted": sum(1 for row in cells for c in row if c and c["status"] == "drift"),
    }


def _series(points: Sequence[Point]) -> dict[str, list[dict[str, Any]]]:
    """The model-wide series (feature ""), by metric: one entry per version and window."""
    out: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        if p.feature:
            continue
        out.setdefault(p.metric, []).append(
            {
                "version": p.version,
                "window_end": p.window_end.isoformat(),
                "value": p.value,
                "threshold": p.threshold,
                "status": p.status,
                "rows": p.rows,
            }
        )
    return out


def _anomalies(run: dict[str, Any] | None, role: str) -> list[Any]:
    if run is None:
        return []
    for group in (run.get("summary") or {}).get("groups") or []:
        if group.get("role") == role and group.get("anomalies"):
            return list(group["anomalies"])
    return []


def _lines(
    points: Sequence[Point], metrics: Sequence[tuple[str, str]], *, dash_second: bool = False
) -> list[dict[str, Any]]:
    traces = []
    for index, (metric, label) in enumerate(metrics):
        by_version: dict[int, list[Point]] = {}
        for p in points:
            if p.metric == metric and not p.feature:
                by_version.setdefault(p.version, []).append(p)
        for version, pts in sorted(by_version.items()):
            traces.append(
                charts.line(
                    f"{label} v{version}" if len(by_version) > 1 else label,
                    [p.window_end.isoformat() for p in pts],
                    [p.value for p in pts],
                    dash="dot" if dash_second and index % 2 else None,
                )
            )
    return traces


def _figures(points: Sequence[Point]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    drift = _lines(points, [("drift.share", "share of drifted features")])
    if drift:
        figures["drift"] = charts.figure(drift, title="Drift share", x_type="date")
    quality = _lines(
        points,
        [
            ("quality.null_share", "null share (worst feature)"),
            ("quality.out_of_range_share", "out of range (worst)"),
            ("quality.unseen_share", "unseen categories (worst)"),
            ("quality.rejected_share", "rejected requests"),
        ],
    )
    if quality:
        figures["quality"] = charts.figure(quality, title="Data quality", x_type="date")
    anomaly = _lines(points, [("anomaly.share", "anomalous rows")])
    if anomaly:
        figures["anomaly"] = charts.figure(anomaly, title="Anomalies", x_type="date")
    names = sorted(
        {p.metric.split(".", 1)[1] for p in points if p.metric.startswith("estimated.")}
        | {
            p.metric.split(".", 1)[1]
            for p in points
            if p.metric.startswith("performance.") and p.metric != "performance.labels"
        }
    )
    perf = _lines(
        points,
        [m for n in names for m in ((f"performance.{n}", f"{n}"), (f"estimated.{n}", f"{n} est."))],
        dash_second=True,
    )
    if perf:
        figures["performance"] = charts.figure(
            perf, title="Performance: realized (labels) and estimated (dotted)", x_type="date"
        )
    outputs = _lines(
        points,
        [
            ("prediction.positive_rate", "positive rate"),
            ("prediction.mean_score", "mean score"),
            ("prediction_drift.score", "prediction drift"),
        ],
    )
    if outputs:
        figures["predictions"] = charts.figure(outputs, title="Predictions", x_type="date")
    return figures


def feature_page(call: Call) -> Page:
    model = call.arg("model")
    feature = call.arg("feature")
    points, windows, role, version = _points(call, model)
    mine = [p for p in points if p.role == role and p.feature == feature]
    if not mine:
        raise PageNotFoundError(f"No monitored values of feature {feature!r} of {model!r}")
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for p in mine:
        by_metric.setdefault(p.metric, []).append(
            {
                "version": p.version,
                "window_end": p.window_end.isoformat(),
                "value": p.value,
                "threshold": p.threshold,
                "status": p.status,
                "rows": p.rows,
            }
        )
    figures = [
        charts.figure(
            [
                charts.line(
                    metric, [e["window_end"] for e in entries], [e["value"] for e in entries]
                ),
                *(
                    [
                        charts.line(
                            "threshold",
                            [e["window_end"] for e in entries],
                            [e["threshold"] for e in entries],
                            markers=False,
                            dash="dash",
                        )
                    ]
                    if any(e["threshold"] is not None for e in entries)
                    else []
                ),
            ],
            title=metric,
            x_type="date",
            height=230,
        )
        for metric, entries in sorted(by_metric.items())
    ]
    data = {
        "model": model,
        "feature": feature,
        "role": role,
        "version": version,
        "windows": windows,
        "metrics": by_metric,
    }
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for metric, entries in by_metric.items():
        for e in entries:
            key = (e["window_end"], e["version"])
            rows.setdefault(key, {"window_end": key[0], "version": key[1], "values": {}})
            rows[key]["values"][metric] = e["value"]
    table = [rows[k] for k in sorted(rows)]
    title = f"{feature} of {model}"
    return Page("feature.html", data, title=title, extra={"figures": figures, "table": table})


ROUTES = [
    ("/monitors", monitors_page, "GET", "read"),
    ("/monitors/{model}", monitor_page, "GET", "read"),
    ("/monitors/{model}/features/{feature}", feature_page, "GET", "read"),
]
