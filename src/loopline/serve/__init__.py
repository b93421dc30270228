"""Model serving: ``create_app(settings)`` gives a Starlette app that answers predictions.

Routes: ``POST /predict`` (loopline's JSON, CSV and Parquet bodies), ``POST /invocations``
(MLflow's scoring protocol), ``/v2/...`` (the Open Inference Protocol, KServe V2),
``POST /feedback``, health, ``/metrics`` (Prometheus) and ``/docs``. Requests are
validated against the model's signature, gathered into micro-batches, answered by the
model version the alias points at (swapped without downtime when it moves), and logged.
``loopline serve MODEL@ALIAS`` runs it on uvicorn, one SO_REUSEPORT socket per worker.
See docs/serving.md.

Importing this package is cheap: Starlette, uvicorn, numpy and the registry are imported
when an app is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopline.serve.app import create_app
    from loopline.serve.settings import ServeSettings, load_serve_settings

__all__ = ["ServeSettings", "create_app", "load_serve_settings"]

_LAZY = {
    "create_app": "loopline.serve.app",
    "ServeSettings": "loopline.serve.settings",
    "load_serve_settings": "loopline.serve.settings",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopline.serve' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
