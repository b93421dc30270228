"""Client values shown back in errors, bounded so that no value can break the error.

A value quoted in a message or a problem report (a bad cell, a V2 field, a feedback
entry) may be nested thousands of levels deep or megabytes long: :func:`echo` copies it
cut to a few levels, a few items per level and a few hundred characters, as JSON-ready
data; :func:`echo_text` as text for a message. Every layer that quotes input uses them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import islice
from typing import Any

#: A client's value echoed in an error keeps this many levels of lists and objects, this
#: many items of each, this many characters of a text, and about this many characters in all.
ECHO_DEPTH = 3
ECHO_ITEMS = 5
ECHO_TEXT = 200
ECHO_TOTAL = 1000


def echo(value: Any) -> Any:
    """A JSON-ready copy of a client's ``value`` that is small enough to send back in an
    error: at most :data:`ECHO_DEPTH` levels deep (deeper lists and objects become
    ``"[...]"`` and ``"{...}"``), :data:`ECHO_ITEMS` items per level, :data:`ECHO_TEXT`
    characters per text and about :data:`ECHO_TOTAL` characters in all."""
    return _echo(value, 0, [ECHO_TOTAL])


def echo_text(value: Any) -> str:
    """:func:`echo` as text for a message (``repr`` style: strings quoted)."""
    return repr(echo(value))


def _echo(value: Any, depth: int, budget: list[int]) -> Any:
    if budget[0] <= 0:
        return "..."
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        try:
            value = value.item()  # a numpy scalar
        except (TypeError, ValueError):
            pass
    if value is None or isinstance(value, bool):
        budget[0] -= 5
        return value
    if isinstance(value, int):
        budget[0] -= 8
        return value if -(2**63) <= value < 2**64 else _cut(str(value), budget)
    if isinstance(value, float):
        budget[0] -= 8
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _cut(value, budget)
    if isinstance(value, bytes | bytearray):
        return _cut(bytes(value[: ECHO_TEXT * 4]).decode("utf-8", "replace"), budget)
    if isinstance(value, Mapping):
        if depth >= ECHO_DEPTH:
            budget[0] -= 5
            return "{...}"
        out: dict[str, Any] = {}
        for k, v in islice(value.items(), ECHO_ITEMS):
            out[_cut(_text(k), budget)] = _echo(v, depth + 1, budget)
        if len(value) > ECHO_ITEMS:
            out["..."] = f"{len(value) - ECHO_ITEMS} more"
        return out
    if isinstance(value, list | tuple) or getattr(value, "ndim", 0) >= 1:
        if depth >= ECHO_DEPTH:
            budget[0] -= 5
            return "[...]"
        try:
            head = list(value[: ECHO_ITEMS + 1])
        except Exception:
            return _cut(_text(value), budget)
        items = [_echo(v, depth + 1, budget) for v in head[:ECHO_ITEMS]]
        if len(head) > ECHO_ITEMS:
            items.append("...")
        return items
    return _cut(_text(value), budget)


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a recursive or broken __str__
        return f"<{type(value).__name__}>"


def _cut(text: str, budget: list[int]) -> str:
    keep = max(0, min(ECHO_TEXT, budget[0]))
    budget[0] -= min(len(text), keep) + 2
    return text if len(text) <= keep else text[: max(0, keep - 3)] + "..."
