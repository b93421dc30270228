"""Autologging for scikit-learn estimators: their params and how long fitting took.

Everything is duck-typed on the estimator protocol (``get_params``, ``fit``), so this
module never imports scikit-learn itself; the estimator brought it in already::

    from loopline.tracking import autolog

    with tracker.start_run("churn") as run:
        model = autolog.fit(run, make_pipeline(StandardScaler(), LogisticRegression()), X, y)

logs ``standardscaler__with_mean``, ``logisticregression__C``... (scikit-learn's own
``step__param`` names from ``get_params(deep=True)``), the fit time as the metric
``fit_time_s`` and the estimator's class as the tag ``estimator.class``.
"""

from __future__ import annotations

import time
from typing import Any, TypeVar

from loopline.tracking.errors import TrackingArgumentError
from loopline.tracking.run import Run
from loopline.tracking.values import param_text

E = TypeVar("E")

FIT_TIME_METRIC = "fit_time_s"
CLASS_TAG = "estimator.class"


def estimator_params(estimator: Any, *, prefix: str = "") -> dict[str, str]:
    """``get_params(deep=True)`` as text: nested estimators by class name, numbers in
    their shortest exact form, containers element by element. Sorted by name."""
    get_params = getattr(estimator, "get_params", None)
    if not callable(get_params):
        raise TrackingArgumentError(
            f"Cannot log the params of a {type(estimator).__name__}: it has no get_params() "
            "(expected a scikit-learn estimator)",
            argument="estimator",
        )
    raw: dict[str, Any] = get_params(deep=True)
    return {f"{prefix}{key}": param_text(value) for key, value in sorted(raw.items())}


def log_estimator_params(run: Run, estimator: Any, *, prefix: str = "") -> dict[str, str]:
    """Log the estimator's params (see :func:`estimator_params`) and its class as a tag.

    ``prefix`` keeps the params of several estimators in one run apart. Returns what was
    logged. Logging a differently configured estimator into the same run (with the same
    prefix) raises ParamConflictError: params are immutable.
    """
    values = estimator_params(estimator, prefix=prefix)
    run.log_params(values)
    cls = type(estimator)
    run.set_tag(prefix + CLASS_TAG, f"{cls.__module__}.{cls.__qualname__}")
    return values


def fit(run: Run, estimator: E, X: Any, y: Any = None, *, prefix: str = "", **fit_kwargs: Any) -> E:
    """Log the estimator's params, fit it on ``X, y`` and log the fit time; return the
    fitted estimator (what ``fit`` returned, as scikit-learn's ``fit`` returns ``self``).

    The params are logged before fitting, so a fit that fails still records what was
    tried (the run then ends ``failed`` when its ``with`` block sees the exception).
    """
    log_estimator_params(run, estimator, prefix=prefix)
    started = time.perf_counter()
    method: Any = getattr(estimator, "fit", None)
    if not callable(method):
        raise TrackingArgumentError(
            f"Cannot fit a {type(estimator).__name__}: it has no fit() method", argument="estimator"
        )
    args = (X,) if y is None else (X, y)
    fitted = method(*args, **fit_kwargs)
    run.log_metric(prefix + FIT_TIME_METRIC, time.perf_counter() - started)
    result: E = estimator if fitted is None else fitted
    return result
