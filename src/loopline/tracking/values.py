"""What may be logged: keys, param values (stored as text), metric values, steps, times.

Validation happens in the logging call, so a bad value fails where it was written and
never reaches the buffer or the database.
"""

from __future__ import annotations

import enum
import math
import numbers
import operator
import os
from collections.abc import Mapping
from typing import Any

from loopline.tracking.errors import InvalidMetricError, TrackingArgumentError

MAX_KEY_LENGTH = 255
_INT64 = (-(2**63), 2**63 - 1)


def check_key(what: str, key: object) -> str:
    """``key`` if it can name a param, metric or tag; a TrackingError naming it otherwise."""
    if not isinstance(key, str):
        reason = f"expected a string, got {type(key).__name__}"
    elif not key:
        reason = "it is empty"
    elif len(key) > MAX_KEY_LENGTH:
        reason = f"it is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}"
    elif key != key.strip():
        reason = "it starts or ends with whitespace"
    elif not key.isprintable():
        reason = "it holds control characters"
    else:
        return key
    if what == "metric":
        raise InvalidMetricError(key, key, f"a metric key ({reason})")
    raise TrackingArgumentError(f"Invalid {what} key {key!r}: {reason}", argument=what, value=key)


def param_text(value: object) -> str:
    """How a param value is stored: strings as they are, numbers in their shortest exact
    form, estimators and classes by class name, containers element by element."""
    if isinstance(value, str):
        return value
    return _render(value, top=True)


def _render(value: object, *, top: bool = False) -> str:
    if isinstance(value, str):
        return value if top else repr(value)
    if value is None or isinstance(value, bool):
        return str(value)
    if isinstance(value, enum.Enum):
        return str(value.name)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value) if top else repr(os.fspath(value))
    if isinstance(value, type):
        return value.__qualname__
    if _is_estimator(value):
        return type(value).__name__
    if isinstance(value, tuple):
        inner = ", ".join(_render(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(sorted(_render(v) for v in value)) + "}"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_render(k)}: {_render(v)}" for k, v in value.items()) + "}"
    if callable(value) and hasattr(value, "__qualname__"):
        return str(value.__qualname__)
    return str(value)


def _is_estimator(value: object) -> bool:
    # Duck-typed like scikit-learn's own checks, so that sklearn is never imported here.
    return hasattr(value, "get_params") and hasattr(value, "fit")


def metric_value(key: str, value: Any) -> float:
    """``value`` as a float. NaN and infinities are allowed; text, None and containers
    are not."""
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            raise InvalidMetricError(key, value, "a number that fits a float") from None
    if value is None or isinstance(value, str | bytes | bytearray):
        raise InvalidMetricError(key, value, "a number (int, float or a numpy scalar)")
    if hasattr(kind, "__float__") or hasattr(kind, "__index__"):
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):
            pass
    raise InvalidMetricError(key, value, "a number (int, float or a numpy scalar)")


def metric_step(key: str, step: Any) -> int:
    if type(step) is int:
        result: int = step
    elif isinstance(step, bool):
        raise InvalidMetricError(key, step, "an integer step")
    else:
        try:
            result = operator.index(step)
        except TypeError:
            raise InvalidMetricError(key, step, "an integer step") from None
    if not _INT64[0] <= result <= _INT64[1]:
        raise InvalidMetricError(key, step, "a step that fits a 64-bit integer")
    return result


def metric_timestamp(key: str, timestamp: Any) -> float:
    if isinstance(timestamp, bool) or not isinstance(timestamp, numbers.Real):
        raise InvalidMetricError(key, timestamp, "a timestamp in seconds since the epoch")
    result = float(timestamp)
    if not math.isfinite(result):
        raise InvalidMetricError(key, timestamp, "a finite timestamp")
    return result
