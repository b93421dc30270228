"""Query parameters and form fields of the pages, read with clear errors."""

from __future__ import annotations

from typing import Any

from loopline.ui.errors import PageArgumentError


def integer(params: Any, name: str, default: int, *, low: int, high: int) -> int:
    """``params[name]`` as an int in [low, high] (``default`` when absent or empty)."""
    raw = params.get(name)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise PageArgumentError(
            f"{name} must be a whole number, not {raw!r}", argument=name, value=raw
        ) from None
    if not low <= value <= high:
        raise PageArgumentError(
            f"{name} must be between {low} and {high}, not {value}", argument=name, value=value
        )
    return value


def text(params: Any, name: str) -> str | None:
    """``params[name]`` stripped, or None when absent or empty."""
    raw = params.get(name)
    if raw is None:
        return None
    value = str(raw).strip()
    return value or None


def texts(params: Any, name: str) -> list[str]:
    """Every non-empty value of a repeated parameter (``?run=a&run=b``); a value may also
    hold several, one per line (a text area of filters) or separated by commas (runs)."""
    getlist = getattr(params, "getlist", None)
    values = getlist(name) if getlist is not None else [params.get(name)]
    out: list[str] = []
    for value in values:
        if value is None:
            continue
        for line in str(value).splitlines():
            if line.strip():
                out.append(line.strip())
    return out


def required(form: Any, name: str) -> str:
    value = text(form, name)
    if value is None:
        raise PageArgumentError(f"the form needs a value for {name!r}", argument=name)
    return value
