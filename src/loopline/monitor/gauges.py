"""The newest stored monitor values as Prometheus gauges.

``loopline_monitor_value{model, version, role, metric, feature}`` is the newest value of
each series of the versions given (a server: the versions it serves now), read from the
database at most every ``ttl_s`` seconds whatever the scrape rate. Prometheus alerting
rules written by ``loopline alarms export-prometheus`` are over this gauge, so an
Alertmanager setup sees what loopline's own alarms see. ``loopline_monitor_window_end``
says how fresh each (version, role) is.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopline.store.stores import Stores

GAUGE = "loopline_monitor_value"
FRESHNESS = "loopline_monitor_window_end_seconds"
#: Per-feature metrics exported (model-level ones are all exported).
FEATURE_METRICS = ("feature_drift.score", "feature_drift.psi", "quality.null_share")


class MonitorGauges:
    """The gauges of one model, for the versions ``versions()`` returns."""

    def __init__(
        self,
        stores: Stores,
        model: str,
        versions: Callable[[], Iterable[int]] | None = None,
        *,
        ttl_s: float = 10.0,
    ) -> None:
        self.stores = stores
        self.model = model
        self.versions = versions
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._text = b""
        self._at = -math.inf

    def invalidate(self) -> None:
        """Read the database again at the next scrape (``POST /admin/reload`` does)."""
        with self._lock:
            self._at = -math.inf

    def text(self) -> bytes:
        """The exposition text of the gauges (cached for ``ttl_s``)."""
        with self._lock:
            if time.monotonic() - self._at < self.ttl_s:
                return self._text
            try:
                self._text = self._render()
            except Exception:  # a scrape never fails for want of the database
                pass
            self._at = time.monotonic()
            return self._text

    def _render(self) -> bytes:
        from loopline.monitor.series import latest_values

        wanted = None if self.versions is None else set(self.versions())
        points = [
            p
            for p in latest_values(self.stores, self.model)
            if (wanted is None or p.version in wanted)
            and p.value is not None
            and (p.feature == "" or p.metric in FEATURE_METRICS)
        ]
        lines = [
            f"# HELP {GAUGE} The newest monitored value of each series (window, version, role).",
            f"# TYPE {GAUGE} gauge",
        ]
        fresh: dict[tuple[int, str], float] = {}
        for p in sorted(points, key=lambda p: (p.version, p.role, p.metric, p.feature)):
            labels = _labels(
                model=self.model,
                version=str(p.version),
                role=p.role,
                metric=p.metric,
                feature=p.feature,
            )
            lines.append(f"{GAUGE}{{{labels}}} {_number(p.value)}")
            end = p.window_end.timestamp()
            key = (p.version, p.role)
            fresh[key] = max(fresh.get(key, end), end)
        lines += [
            f"# HELP {FRESHNESS} When the newest monitored window of each version ended.",
            f"# TYPE {FRESHNESS} gauge",
        ]
        for (version, role), end in sorted(fresh.items()):
            labels = _labels(model=self.model, version=str(version), role=role)
            lines.append(f"{FRESHNESS}{{{labels}}} {end:.3f}")
        return ("\n".join(lines) + "\n").encode()


def _labels(**values: str) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in values.items())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float | None) -> str:
    if value is None:
        return "NaN"
    return repr(float(value))
