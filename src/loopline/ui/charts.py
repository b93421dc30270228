"""Charts as plotly figure documents (plain dicts), drawn in the browser by plotly.js.

The server never imports plotly: a figure is JSON (``{"data": [...], "layout": {...}}``)
placed in the page, and ``static/ui.js`` hands it to the ``plotly.min.js`` that the plotly
package ships (served by :mod:`loopline.ui.static`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_FONT = {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12}


def figure(
    traces: Sequence[dict[str, Any]],
    *,
    title: str = "",
    x_title: str = "",
    y_title: str = "",
    height: int = 280,
    x_type: str | None = None,
    legend: bool | None = None,
) -> dict[str, Any]:
    """One chart: its traces and a compact layout."""
    layout: dict[str, Any] = {
        "title": {"text": title, "font": {"size": 13}, "x": 0, "xanchor": "left"},
        "height": height,
        "margin": {"l": 56, "r": 16, "t": 36 if title else 12, "b": 44},
        "font": _FONT,
        "xaxis": {"title": {"text": x_title}, "automargin": True},
        "yaxis": {"title": {"text": y_title}, "automargin": True},
        "showlegend": len(traces) > 1 if legend is None else legend,
        "legend": {"orientation": "h", "y": -0.25},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "#fafafa",
    }
    if x_type:
        layout["xaxis"]["type"] = x_type
    return {"data": list(traces), "layout": layout}


def line(
    name: str,
    x: Sequence[Any],
    y: Sequence[Any],
    *,
    markers: bool = True,
    shape: str | None = None,
    dash: str | None = None,
    text: Sequence[Any] | None = None,
) -> dict[str, Any]:
    trace: dict[str, Any] = {
        "type": "scatter",
        "mode": "lines+markers" if markers else "lines",
        "name": name,
        "x": list(x),
        "y": [None if isinstance(v, str) else v for v in y],
        "line": {"width": 2},
    }
    if shape:
        trace["line"]["shape"] = shape
    if dash:
        trace["line"]["dash"] = dash
    if text is not None:
        trace["text"] = list(text)
    return trace


def points(
    name: str, x: Sequence[Any], y: Sequence[Any], *, text: Sequence[Any] | None = None
) -> dict[str, Any]:
    """Markers only (with a label next to each when ``text`` is given)."""
    trace: dict[str, Any] = {
        "type": "scatter",
        "mode": "markers+text" if text is not None else "markers",
        "name": name,
        "x": list(x),
        "y": list(y),
        "marker": {"size": 10},
    }
    if text is not None:
        trace["text"] = list(text)
        trace["textposition"] = "top center"
    return trace


def bars(
    name: str, x: Sequence[Any], y: Sequence[Any], *, color: str | None = None
) -> dict[str, Any]:
    trace: dict[str, Any] = {"type": "bar", "name": name, "x": list(x), "y": list(y)}
    if color:
        trace["marker"] = {"color": color}
    return trace
