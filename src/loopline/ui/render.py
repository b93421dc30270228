"""Turning a page's data into HTML (Jinja2, autoescaped) or into its JSON twin.

A page is a function returning a :class:`Page`: the name of its template and ``data``, a
JSON-ready dict. The HTML is rendered from that same dict, so the JSON twin holds the
numbers the page shows. Floats that JSON cannot hold (NaN, infinities) become the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, as in ``loopline runs ... --json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import jinja2

#: What a missing value shows as (an en dash).
NONE = "\u2013"


@dataclass
class Page:
    """What a page handler returns."""

    template: str
    data: dict[str, Any]
    #: Shown in the browser's title bar and the heading.
    title: str = ""
    status: int = 200
    #: Only for the HTML page (charts, form state); not part of the JSON twin.
    extra: dict[str, Any] = field(default_factory=dict)


def wants_json(path: str, accept: str) -> bool:
    """The JSON twin: an ``/api/...`` path, or a request that accepts JSON and not HTML."""
    if path == "/api" or path.startswith("/api/"):
        return True
    return "application/json" in accept and "text/html" not in accept


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO 8601 and non-finite floats as strings."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def dumps(value: Any) -> bytes:
    """JSON bytes of ``value``; only a document holding a non-finite float is walked."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=_default)
    except ValueError:
        text = json.dumps(jsonable(value), separators=(",", ":"), allow_nan=False)
    return text.encode()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# -- formatting, as Jinja filters -------------------------------------------------------------


def fmt_number(value: Any, digits: int = 4) -> str:
    """A number as the pages show it: 4 significant digits, integers whole, a dash for none."""
    if value is None or value == "":
        return NONE
    if isinstance(value, str):
        if value in ("NaN", "Infinity", "-Infinity"):
            return value.lower().replace("infinity", "inf")
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.{digits}g}"
    return str(value)


def fmt_percent(value: Any) -> str:
    if value is None or isinstance(value, str):
        return NONE
    return f"{100 * float(value):.1f}%"


def fmt_when(value: Any) -> str:
    """An ISO 8601 time (or a datetime) as ``2026-01-31 14:05:09`` UTC."""
    if value is None or value == "":
        return NONE
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: Any) -> str:
    if seconds is None:
        return NONE
    s = float(seconds)
    if s < 60:
        return f"{s:.2f} s" if s < 10 else f"{s:.0f} s"
    minutes, secs = divmod(round(s), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def fmt_size(n: Any) -> str:
    if n is None:
        return NONE
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def with_query(pairs: Sequence[tuple[str, str]], **changes: Any) -> str:
    """The query string of the current request with ``changes`` applied (None removes a
    parameter, a list repeats it): for sorting and paging links."""
    out = [(k, v) for k, v in pairs if k not in changes]
    for key, value in changes.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            out += [(key, str(v)) for v in value]
        else:
            out.append((key, str(value)))
    return "?" + urlencode(out)


def environment() -> jinja2.Environment:
    """The templates of :mod:`loopline.ui`, autoescaped (every name a user chose, a run
    name or a tag, is text, never markup)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("loopline.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=fmt_number,
        pct=fmt_percent,
        when=fmt_when,
        dur=fmt_duration,
        size=fmt_size,
        short=lambda text, n=12: NONE if not text else str(text)[:n],
    )
    env.globals.update(with_query=with_query)
    return env
