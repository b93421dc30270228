"""Experiment tracking: runs with params, metrics, tags, inputs and artifacts.

A run is a handle returned by :meth:`Tracker.start_run` and passed explicitly; there is no
global "active run" (:func:`current_run` is a ``ContextVar`` convenience, set inside the
run's ``with`` block)::

    from loopline.tracking import Tracker

    tracker = Tracker(stores)
    with tracker.start_run("churn", params={"C": 0.5}) as run:
        for epoch in range(10):
            run.log_metric("loss", loss, step=epoch)

Modules: ``tracker`` (start, read, search, reap), ``run`` (the handle, buffering, the
keeper thread), ``signals`` (SIGTERM/SIGINT while a run is open), ``search`` (filters and
sort keys), ``tables``, ``records``, ``values`` (what may be logged), ``gitinfo``,
``autolog`` (scikit-learn).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopline.tracking.records import (
        MetricPoint,
        MetricSummary,
        RunArtifact,
        RunInput,
        RunRecord,
    )
    from loopline.tracking.run import Run, current_run
    from loopline.tracking.signals import Terminated
    from loopline.tracking.tracker import Tracker

#: Where each name lives. They are imported on first use, so that importing a submodule
#: (``loopline.tracking.listing`` for ``loopline runs ls``) does not import SQLAlchemy.
_EXPORTS = {
    "MetricPoint": "records",
    "MetricSummary": "records",
    "Run": "run",
    "RunArtifact": "records",
    "RunInput": "records",
    "RunRecord": "records",
    "Terminated": "signals",
    "Tracker": "tracker",
    "current_run": "run",
}

__all__ = [
    "MetricPoint",
    "MetricSummary",
    "Run",
    "RunArtifact",
    "RunInput",
    "RunRecord",
    "Terminated",
    "Tracker",
    "current_run",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
