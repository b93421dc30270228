"""``monitor report``: one self-contained HTML page of a model's monitoring.

Inline SVG and CSS only: the file opens anywhere, with no network. It shows, for the
window just computed: the verdict and its alerts; per feature the reference and current
distributions side by side with the test, the statistic and its threshold; data quality;
multivariate drift; the most anomalous requests; prediction drift; realized and estimated
performance; service health. And from the stored series: drift over the last windows as
a heatmap (windows x features, each cell the deciding statistic against its threshold)
and realized vs estimated performance over time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopline.monitor.drift import FeatureDrift
    from loopline.monitor.runner import GroupResult, MonitorReport
    from loopline.monitor.series import Point

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;color:#111827;margin:24px;
max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#e5e7eb;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.muted{color:#6b7280}.pill{display:inline-block;padding:1px 8px;border-radius:10px;
font-weight:600;font-size:12px}.ok{background:#dcfce7;color:#166534}.drift{background:#fee2e2;
color:#991b1b}.alert{background:#fef3c7;color:#92400e}.insufficient_data{background:#e5e7eb;
color:#374151}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 10px;border-bottom:1px solid
#f3f4f6;text-align:left;vertical-align:middle}th{font-weight:600;background:#f9fafb}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
.card{border:1px solid #e5e7eb;border-radius:8px;padding:10px}
"""
_REF, _CUR = "#2563eb", "#f97316"


def render(report: MonitorReport, history: Sequence[Point] = ()) -> str:
    """The page for ``report`` (the window just computed) and ``history`` (stored points)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>loopline monitor: {escape(report.target)}</title><style>{_CSS}</style>",
        "</head><body>",
        f"<h1>{escape(report.target)} <span class='pill {report.status}'>"
        f"{escape(report.status)}</span></h1>",
        f"<div class='muted'>window {escape(report.window.label)} · {report.rows:,} rows from "
        f"{report.files} log files · run {escape(report.run_id[:12])} · "
        f"{report.seconds:.2f} s</div>",
    ]
    if report.alerts:
        parts.append("<h2>Alerts</h2><ul>")
        parts += [f"<li>{escape(a)}</li>" for a in report.alerts]
        parts.append("</ul>")
    if history:
        parts.append(_history_section(history))
    for group in report.groups:
        parts.append(_group_section(group))
    parts.append("</body></html>")
    return "\n".join(parts)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}g}"
    return escape(str(value))


def _pct(value: float | None) -> str:
    return "&ndash;" if value is None else f"{100 * value:.1f}%"


def _group_section(g: GroupResult) -> str:
    out = [
        f"<h2>Version {g.version} ({escape(g.role)}) <span class='pill {g.status}'>"
        f"{escape(g.status)}</span></h2>",
        f"<div class='muted'>{g.rows:,} rows, {g.requests:,} requests · reference: "
        f"{escape(g.baseline)}</div>",
    ]
    share = "&ndash;" if g.drift_share is None else f"{g.drift_share:.2f}"
    drifted = sum(d.drifted for d in g.drift)
    out.append(f"<p><b>{drifted}</b> of {len(g.drift)} features drifted · drift share {share}</p>")
    out.append("<h3>Features</h3><div class='grid'>")
    for d in sorted(g.drift, key=lambda d: (not d.drifted, d.feature)):
        dist = g.distributions.get(d.feature)
        q = g.quality.get(d.feature, {})
        verdict = "drift" if d.drifted else d.status
        chart = _bars(dist) if dist else ""
        rule = "<" if d.direction == "below" else ">"
        out.append(
            f"<div class='card'><b>{escape(d.feature)}</b> <span class='pill {verdict}'>"
            f"{escape(verdict)}</span><div class='muted'>{escape(d.kind)} · {escape(d.test)}"
            f" {_fmt(d.statistic)} (drift if {rule} {_fmt(d.threshold)}) · {d.n_current:,} "
            f"rows · nulls {_pct(q.get('null_share'))}</div>{chart}</div>"
        )
    out.append("</div>")
    out.append(_quality_table(g))
    if g.multivariate is not None:
        m = g.multivariate
        state = "drift" if m["drifted"] else "ok"
        out.append(
            "<h3>Multivariate drift</h3>"
            f"<p>PCA reconstruction error {_fmt(m['reconstruction_error'])} "
            f"(reference {_fmt(m['reference_error'])}, expected within "
            f"[{_fmt(m['low'])}, {_fmt(m['high'])}], {m['components']} components) "
            f"<span class='pill {state}'>{state}</span></p>"
        )
    if g.anomaly is not None:
        a = g.anomaly
        out.append(
            f"<h3>Anomalies</h3><p>{_pct(a['share'])} of rows are anomalous "
            f"({a['rows']:,}); alert above {_pct(a['threshold'])}.</p>"
        )
        if a["top"]:
            out.append("<table><tr><th>request id</th><th>row</th><th>score</th></tr>")
            for item in a["top"]:
                score = "unseen category" if item["score"] is None else _fmt(item["score"])
                out.append(
                    f"<tr><td><code>{escape(item['request_id'])}</code></td>"
                    f"<td class='num'>{item['row']}</td><td class='num'>{score}</td></tr>"
                )
            out.append("</table>")
    if g.prediction is not None or g.score_drift is not None:
        out.append(
            "<h3>Prediction drift</h3><table><tr><th>of</th><th>test</th><th>"
            "statistic</th><th>threshold</th><th>status</th></tr>"
        )
        outputs: list[tuple[str, FeatureDrift | None]] = [
            ("predicted classes", g.prediction),
            ("scores", g.score_drift),
        ]
        for what, pd_ in outputs:
            if pd_ is not None:
                out.append(
                    f"<tr><td>{what}</td><td>{escape(pd_.test)}</td><td class='num'>"
                    f"{_fmt(pd_.statistic)}</td><td class='num'>{_fmt(pd_.threshold)}</td>"
                    f"<td><span class='pill {pd_.status}'>{escape(pd_.status)}</span></td></tr>"
                )
        out.append("</table>")
    out.append(_performance_table(g))
    out.append(_health_table(g))
    if g.notes:
        out.append(
            "<ul class='muted'>" + "".join(f"<li>{escape(n)}</li>" for n in g.notes) + "</ul>"
        )
    return "\n".join(out)


def _bars(dist: dict[str, Any]) -> str:
    """Reference (blue) and current (orange) shares per bucket as paired bars."""
    labels = dist["labels"]
    ref, cur = dist["reference"], dist["current"]
    n = len(labels)
    if not n:
        return ""
    width, height, left, bottom = 340, 130, 8, 26
    peak = max([*ref, *cur, 1e-9])
    slot = (width - 2 * left) / n
    bar = max(slot / 2 - 1, 1.0)
    svg = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"role='img' aria-label='reference and current distributions'>"
    ]
    for i in range(n):
        x = left + i * slot
        for j, (share, color) in enumerate(((ref[i], _REF), (cur[i], _CUR))):
            h = (height - bottom - 6) * share / peak
            svg.append(
                f"<rect x='{x + j * (bar + 1):.1f}' y='{height - bottom - h:.1f}' "
                f"width='{bar:.1f}' height='{h:.1f}' fill='{color}'><title>"
                f"{escape(str(labels[i]))}: {'reference' if j == 0 else 'current'} "
                f"{100 * share:.1f}%</title></rect>"
            )
    first, last = escape(str(labels[0])), escape(str(labels[-1]))
    svg.append(
        f"<text x='{left}' y='{height - 10}' font-size='10' fill='#6b7280'>{first}</text>"
        f"<text x='{width - left}' y='{height - 10}' font-size='10' fill='#6b7280' "
        f"text-anchor='end'>{last}</text>"
        f"<text x='{width / 2:.0f}' y='{height - 1}' font-size='10' text-anchor='middle'>"
        f"<tspan fill='{_REF}'>■ reference</tspan> <tspan fill='{_CUR}'>■ current</tspan></text>"
    )
    svg.append("</svg>")
    return "".join(svg)


def _quality_table(g: GroupResult) -> str:
    rows = []
    for feature, q in sorted(g.quality.items()):
        rows.append(
            f"<tr><td>{escape(feature)}</td><td class='num'>{_pct(q.get('null_share'))}</td>"
            f"<td class='num'>{_pct(q.get('out_of_range_share'))}</td>"
            f"<td class='num'>{_pct(q.get('unseen_share'))}</td>"
            f"<td class='num'>{_pct(q.get('nonfinite_share'))}</td></tr>"
        )
    missing = (
        f"<p>Missing from the log: {escape(', '.join(g.missing_columns))}</p>"
        if g.missing_columns
        else ""
    )
    return (
        "<h3>Data quality</h3><table><tr><th>feature</th><th>nulls</th><th>out of range</th>"
        "<th>unseen categories</th><th>non-finite</th></tr>" + "".join(rows) + "</table>" + missing
    )


def _performance_table(g: GroupResult) -> str:
    names = sorted(set(g.realized) | set(g.estimated))
    if not names:
        return ""
    rows = "".join(
        f"<tr><td>{escape(n)}</td><td class='num'>{_fmt(g.realized.get(n))}</td>"
        f"<td class='num'>{_fmt(g.estimated.get(n))}</td></tr>"
        for n in names
    )
    return (
        f"<h3>Performance</h3><p class='muted'>{g.labels:,} labels joined to this window's "
        "predictions; estimated without labels from the calibrated scores.</p>"
        "<table><tr><th>metric</th><th>realized</th><th>estimated</th></tr>" + rows + "</table>"
    )


def _health_table(g: GroupResult) -> str:
    h = g.health
    cells = [
        ("requests", _fmt(h.get("requests"), 9)),
        ("rows", _fmt(h.get("rows"), 9)),
        ("requests/s", _fmt(h.get("request_rate"))),
        ("p50 latency", f"{_fmt(h.get('latency_p50_ms'), 3)} ms"),
        ("p95 latency", f"{_fmt(h.get('latency_p95_ms'), 3)} ms"),
        ("p99 latency", f"{_fmt(h.get('latency_p99_ms'), 3)} ms"),
        ("rejected", _pct(h.get("error_share"))),
    ]
    return (
        "<h3>Service health</h3><table><tr>"
        + "".join(f"<th>{k}</th>" for k, _ in cells)
        + "</tr><tr>"
        + "".join(f"<td class='num'>{v}</td>" for _, v in cells)
        + "</tr></table>"
    )


def drift_heatmap(points: Sequence[Point], *, role: str = "primary") -> tuple[str, int]:
    """Windows x features of ``feature_drift.score`` as an SVG heatmap: a cell's colour is
    its statistic against its threshold (red: drift). Returns (svg, number of cells)."""
    cells = [p for p in points if p.metric == "feature_drift.score" and p.role == role]
    windows = sorted({p.window_end for p in cells})
    features = sorted({p.feature for p in cells})
    if not windows or not features:
        return "", 0
    grid = {(p.window_end, p.feature): p for p in cells}
    cw, ch, left, top = max(14, min(40, 760 // max(len(windows), 1))), 18, 150, 30
    width = left + cw * len(windows) + 10
    height = top + ch * len(features) + 40
    svg = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        "role='img' aria-label='drift over windows and features' class='heatmap'>"
    ]
    count = 0
    for j, feature in enumerate(features):
        y = top + j * ch
        svg.append(
            f"<text x='{left - 6}' y='{y + 13}' font-size='11' text-anchor='end'>"
            f"{escape(feature[:22])}</text>"
        )
        for i, end in enumerate(windows):
            p = grid.get((end, feature))
            fill, tip = "#f3f4f6", "no data"
            if p is not None:
                fill = {"drift": "#dc2626", "ok": "#86efac"}.get(p.status, "#d1d5db")
                tip = f"{_fmt(p.value)} (threshold {_fmt(p.threshold)}): {p.status}"
            svg.append(
                f"<rect class='cell' x='{left + i * cw}' y='{y}' width='{cw - 1}' "
                f"height='{ch - 1}' fill='{fill}'><title>{escape(feature)} · "
                f"{end.strftime('%Y-%m-%d %H:%M')}: {escape(tip)}</title></rect>"
            )
            count += 1
    svg.append(
        f"<text x='{left}' y='{height - 12}' font-size='11' fill='#6b7280'>"
        f"{windows[0].strftime('%m-%d %H:%M')}</text><text x='{width - 10}' y='{height - 12}' "
        f"font-size='11' fill='#6b7280' text-anchor='end'>{windows[-1].strftime('%m-%d %H:%M')}"
        "</text>"
    )
    svg.append("</svg>")
    return "".join(svg), count


def _history_section(points: Sequence[Point]) -> str:
    from loopline.evaluate.svg import Series, line_chart

    heat, cells = drift_heatmap(points)
    out = ["<h2>Over the last windows</h2>"]
    if heat:
        out.append(f"<p class='muted'>Drift per feature and window ({cells} cells).</p>{heat}")
    realized = [p for p in points if p.metric == "performance.accuracy" and p.role == "primary"]
    estimated = [p for p in points if p.metric == "estimated.accuracy" and p.role == "primary"]
    if realized or estimated:
        base = min(p.window_end for p in [*realized, *estimated]).timestamp()
        series = []
        for name, pts in (("realized accuracy", realized), ("estimated accuracy", estimated)):
            if pts:
                series.append(
                    Series(
                        name,
                        [(p.window_end.timestamp() - base) / 3600 for p in pts],
                        [p.value for p in pts],
                    )
                )
        out.append(
            line_chart(
                series,
                title="Accuracy: realized (labels) and estimated (no labels)",
                x_label="hours since the first window",
                y_label="accuracy",
                markers=True,
            )
        )
    return "\n".join(out)
