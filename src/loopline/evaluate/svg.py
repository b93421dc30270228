"""Small SVG charts for evaluation reports: lines, scatter, heatmap, horizontal bars.

Hand-written so a report needs no plotting library and renders in a millisecond. Each
function returns one ``<svg>`` element (no ``xmlns``: it is meant to be inlined in
HTML5) that scales to its container through its ``viewBox``. All text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = (
    "#2563eb",
    "#dc2626",
    "#16a34a",
    "#9333ea",
    "#ea580c",
    "#0891b2",
    "#ca8a04",
    "#db2777",
    "#4b5563",
    "#65a30d",
)

WIDTH, HEIGHT = 440, 330
LEFT, RIGHT, TOP, BOTTOM = 58, 16, 34, 48


@dataclass
class Series:
    """One line: ``y`` may hold ``None`` where the value is undefined (a gap)."""

    name: str
    x: Sequence[float]
    y: Sequence[float | None]


@dataclass
class _Frame:
    x0: float
    x1: float
    y0: float
    y1: float
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = RIGHT

    def px(self, x: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (x - self.x0) / span * (self.width - self.left - self.right)

    def py(self, y: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.height - BOTTOM - (y - self.y0) / span * (self.height - TOP - BOTTOM)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def fmt(value: float) -> str:
    """A compact tick or value label."""
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4g}"


def _open(title: str, width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    return [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
        f'<text x="{width / 2:.1f}" y="18" text-anchor="middle" font-size="13" '
        f'font-weight="600" fill="#111827">{escape(title)}</text>',
    ]


def _axes(frame: _Frame, x_label: str, y_label: str) -> list[str]:
    parts = []
    bottom, top = frame.py(frame.y0), frame.py(frame.y1)
    left, right = frame.px(frame.x0), frame.px(frame.x1)
    for tick in nice_ticks(frame.y0, frame.y1):
        y = frame.py(tick)
        parts.append(
            f'<line x1="{left:.1f}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" '
            'stroke="#e5e7eb"/>'
            f'<text x="{left - 6:.1f}" y="{y + 3.5:.1f}" text-anchor="end" '
            f'fill="#4b5563">{fmt(tick)}</text>'
        )
    for tick in nice_ticks(frame.x0, frame.x1):
        x = frame.px(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{bottom:.1f}" x2="{x:.1f}" y2="{bottom + 4:.1f}" '
            'stroke="#6b7280"/>'
            f'<text x="{x:.1f}" y="{bottom + 16:.1f}" text-anchor="middle" '
            f'fill="#4b5563">{fmt(tick)}</text>'
        )
    parts.append(
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{right - left:.1f}" '
        f'height="{bottom - top:.1f}" fill="none" stroke="#9ca3af"/>'
    )
    parts.append(
        f'<text x="{(left + right) / 2:.1f}" y="{frame.height - 10}" text-anchor="middle" '
        f'fill="#111827">{escape(x_label)}</text>'
    )
    cy = (top + bottom) / 2
    parts.append(
        f'<text x="14" y="{cy:.1f}" text-anchor="middle" fill="#111827" '
        f'transform="rotate(-90 14 {cy:.1f})">{escape(y_label)}</text>'
    )
    return parts


def _range(values: Sequence[float], pad: float = 0.05) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if lo == hi:
        return lo - 1.0, hi + 1.0
    margin = (hi - lo) * pad
    return lo - margin, hi + margin


def _legend(names: Sequence[str], frame: _Frame) -> list[str]:
    parts = []
    x = frame.px(frame.x1) - 8
    shown = names[:10]
    widest = max(len(n) for n in shown) * 6.3 + 22
    y_top = frame.py(frame.y0) - 10 - 14 * (len(shown) - 1) - 11
    parts.append(
        f'<rect x="{x - widest:.1f}" y="{y_top:.1f}" width="{widest + 4:.1f}" '
        f'height="{14 * len(shown) + 4}" fill="#ffffff" fill-opacity="0.85" rx="3"/>'
    )
    for i, name in enumerate(shown):
        y = frame.py(frame.y0) - 10 - 14 * (len(names[:10]) - 1 - i)
        color = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<rect x="{x - 10:.1f}" y="{y - 8:.1f}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x - 14:.1f}" y="{y + 1:.1f}" text-anchor="end" fill="#111827">'
            f"{escape(name)}</text>"
        )
    return parts


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
    markers: bool = False,
    vline: float | None = None,
) -> str:
    """Lines (``None`` values leave gaps); ``diagonal`` draws y = x, ``vline`` a marker."""
    xs = [float(v) for s in series for v in s.x]
    ys = [float(v) for s in series for v in s.y if v is not None]
    frame = _Frame(*(x_range or _range(xs)), *(y_range or _range(ys)))
    parts = _open(title) + _axes(frame, x_label, y_label)
    if diagonal:
        lo, hi = max(frame.x0, frame.y0), min(frame.x1, frame.y1)
        parts.append(
            f'<line x1="{frame.px(lo):.1f}" y1="{frame.py(lo):.1f}" x2="{frame.px(hi):.1f}" '
            f'y2="{frame.py(hi):.1f}" stroke="#9ca3af" stroke-dasharray="4 4"/>'
        )
    if vline is not None and frame.x0 <= vline <= frame.x1:
        x = frame.px(vline)
        parts.append(
            f'<line x1="{x:.1f}" y1="{frame.py(frame.y0):.1f}" x2="{x:.1f}" '
            f'y2="{frame.py(frame.y1):.1f}" stroke="#111827" stroke-dasharray="2 3"/>'
        )
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for x, y in zip(s.x, s.y, strict=False):
            if y is None or not math.isfinite(y):
                runs.append([])
                continue
            runs[-1].append(f"{frame.px(x):.1f},{frame.py(y):.1f}")
        for run in runs:
            if len(run) > 1:
                parts.append(
                    f'<polyline points="{" ".join(run)}" fill="none" stroke="{color}" '
                    'stroke-width="2" stroke-linejoin="round"/>'
                )
            if markers or len(run) == 1:
                parts += [
                    f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="3" fill="{color}"/>'
                    for p in run
                ]
    if len(series) > 1 or (series and series[0].name):
        parts += _legend([s.name for s in series], frame)
    parts.append("</svg>")
    return "\n".join(parts)


def scatter_chart(
    x: Sequence[float],
    y: Sequence[float],
    *,
    title: str,
    x_label: str,
    y_label: str,
    hline: float | None = None,
    diagonal: bool = False,
) -> str:
    """Points, with an optional horizontal reference line or the y = x diagonal."""
    if diagonal:
        lo, hi = _range(list(x) + list(y))
        frame = _Frame(lo, hi, lo, hi)
    else:
        frame = _Frame(*_range(x), *_range(list(y) + ([hline] if hline is not None else [])))
    parts = _open(title) + _axes(frame, x_label, y_label)
    if hline is not None:
        yy = frame.py(hline)
        parts.append(
            f'<line x1="{frame.px(frame.x0):.1f}" y1="{yy:.1f}" x2="{frame.px(frame.x1):.1f}" '
            f'y2="{yy:.1f}" stroke="#6b7280" stroke-dasharray="4 4"/>'
        )
    if diagonal:
        parts.append(
            f'<line x1="{frame.px(frame.x0):.1f}" y1="{frame.py(frame.y0):.1f}" '
            f'x2="{frame.px(frame.x1):.1f}" y2="{frame.py(frame.y1):.1f}" stroke="#6b7280" '
            'stroke-dasharray="4 4"/>'
        )
    parts.append(f'<g fill="{PALETTE[0]}" fill-opacity="0.45">')
    parts += [
        f'<circle cx="{frame.px(a):.1f}" cy="{frame.py(b):.1f}" r="2.5"/>'
        for a, b in zip(x, y, strict=False)
    ]
    parts += ["</g>", "</svg>"]
    return "\n".join(parts)


def heatmap(
    matrix: Sequence[Sequence[int]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    *,
    title: str,
    x_label: str = "predicted",
    y_label: str = "true",
) -> str:
    """A count matrix as shaded cells, each labelled with its count and row share."""
    n_rows, n_cols = len(matrix), len(col_labels)
    cell = max(22.0, min(70.0, 340.0 / max(n_rows, n_cols, 1)))
    label_width = min(120, 12 + 7 * max((len(s) for s in row_labels), default=1))
    grid_width = label_width + 28 + cell * n_cols
    width = int(max(grid_width + 16, WIDTH))
    height = int(TOP + 20 + cell * n_rows + 44)
    top = TOP + 20
    left = (width - grid_width) / 2 + label_width + 28
    peak = max((v for row in matrix for v in row), default=0) or 1
    parts = _open(title, width, height)
    for j, label in enumerate(col_labels):
        parts.append(
            f'<text x="{left + cell * (j + 0.5):.1f}" y="{top - 6}" text-anchor="middle" '
            f'fill="#4b5563">{escape(_short(label))}</text>'
        )
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        y = top + cell * i
        parts.append(
            f'<text x="{left - 6:.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="end" '
            f'fill="#4b5563">{escape(_short(row_labels[i]))}</text>'
        )
        for j, value in enumerate(row):
            shade = value / peak
            fill = _blend(shade)
            ink = "#ffffff" if shade > 0.55 else "#111827"
            x = left + cell * j
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" height="{cell:.1f}" '
                f'fill="{fill}" stroke="#ffffff"><title>true {escape(row_labels[i])}, '
                f"predicted {escape(col_labels[j])}: {value}</title></rect>"
            )
            if cell >= 30:
                parts.append(
                    f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 1:.1f}" '
                    f'text-anchor="middle" fill="{ink}">{value}</text>'
                    f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 12:.1f}" '
                    f'text-anchor="middle" fill="{ink}" font-size="9">'
                    f"{100 * value / total:.0f}%</text>"
                )
    bottom = top + cell * n_rows
    parts.append(
        f'<text x="{left + cell * n_cols / 2:.1f}" y="{bottom + 22:.1f}" '
        f'text-anchor="middle" fill="#111827">{escape(x_label)}</text>'
    )
    cy = top + cell * n_rows / 2
    parts.append(
        f'<text x="{left - label_width - 16:.1f}" y="{cy:.1f}" text-anchor="middle" '
        f'fill="#111827" transform="rotate(-90 {left - label_width - 16:.1f} {cy:.1f})">'
        f"{escape(y_label)}</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    value_label: str,
    annotations: Sequence[str] | None = None,
) -> str:
    """Horizontal bars, one per label; ``None`` shows as "n/a" (no bar)."""
    label_width = min(160, 14 + 7 * max((len(s) for s in labels), default=1))
    bar_h = 20
    width = WIDTH + 60
    height = TOP + 10 + (bar_h + 6) * len(labels) + 40
    finite = [v for v in values if v is not None and math.isfinite(v)]
    lo = min([0.0, *finite])
    hi = max([0.0, *finite]) or 1.0
    frame = _Frame(lo, hi, 0, 1, width=width, height=height, left=label_width + 10, right=110)
    parts = _open(title, width, height)
    base = frame.px(0.0)
    for i, (label, value) in enumerate(zip(labels, values, strict=False)):
        y = TOP + 10 + (bar_h + 6) * i
        note = annotations[i] if annotations else ""
        parts.append(
            f'<text x="{label_width + 4:.1f}" y="{y + bar_h / 2 + 4:.1f}" text-anchor="end" '
            f'fill="#374151">{escape(_short(label, 24))}</text>'
        )
        if value is None or not math.isfinite(value):
            parts.append(
                f'<text x="{base + 4:.1f}" y="{y + bar_h / 2 + 4:.1f}" fill="#9ca3af">'
                f"n/a {escape(note)}</text>"
            )
            continue
        x0, x1 = sorted((base, frame.px(value)))
        parts.append(
            f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" height="{bar_h}" '
            f'fill="{PALETTE[0]}" rx="2"><title>{escape(label)}: {fmt(value)}</title></rect>'
            f'<text x="{x1 + 4:.1f}" y="{y + bar_h / 2 + 4:.1f}" fill="#111827">'
            f"{fmt(value)} {escape(note)}</text>"
        )
    axis_y = TOP + 10 + (bar_h + 6) * len(labels) + 4
    for tick in nice_ticks(lo, hi, 4):
        x = frame.px(tick)
        parts.append(
            f'<text x="{x:.1f}" y="{axis_y + 10}" text-anchor="middle" fill="#6b7280">'
            f"{fmt(tick)}</text>"
        )
    parts.append(
        f'<text x="{(frame.px(lo) + frame.px(hi)) / 2:.1f}" y="{height - 8}" '
        f'text-anchor="middle" fill="#111827">{escape(value_label)}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _short(text: str, limit: int = 16) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _blend(share: float) -> str:
    """White to the palette's blue, by ``share`` in [0, 1]."""
    r0, g0, b0 = 0xEF, 0xF6, 0xFF
    r1, g1, b1 = 0x1E, 0x40, 0xAF
    share = min(max(share, 0.0), 1.0)
    r, g, b = (round(lo + (hi - lo) * share) for lo, hi in ((r0, r1), (g0, g1), (b0, b1)))
    return f"#{r:02x}{g:02x}{b:02x}"
