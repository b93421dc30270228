"""Fitting an estimator inside a step, tracked in the step's run.

Any object with ``fit`` and ``predict`` works: scikit-learn estimators and pipelines, and
the scikit-learn interfaces of XGBoost and LightGBM::

    result = fit(ctx.run, XGBClassifier(n_estimators=200), X_train, y_train,
                 X_valid=X_valid, y_valid=y_valid)

logs the estimator's params (``get_params(deep=True)``, through
:mod:`loopline.tracking.autolog`), its class, the fit time (``fit_time_s``) and a few
training metrics: ``train_accuracy`` and ``train_log_loss`` for classifiers,
``train_rmse`` and ``train_r2`` for regressors, and the same with ``valid_`` when a
validation set is given. A metric the estimator cannot give (no ``predict_proba``, one
row for R²...) is left out. Full evaluation (slices, calibration, gates) is the job of
``loopline.evaluate``; these numbers are for comparing runs at a glance.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from loopline.tracking.autolog import FIT_TIME_METRIC, log_estimator_params
from loopline.train.errors import TrainArgumentError

if TYPE_CHECKING:
    from loopline.tracking import Run

E = TypeVar("E")
Task = Literal["classification", "regression"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult(Generic[E]):
    """The fitted estimator, how long ``fit`` took, and the metrics that were logged."""

    estimator: E
    fit_seconds: float
    train_metrics: dict[str, float] = field(default_factory=dict)
    task: Task | None = None


def fit(
    run: Run,
    estimator: E,
    X: Any,
    y: Any = None,
    *,
    X_valid: Any = None,
    y_valid: Any = None,
    prefix: str = "",
    task: Task | None = None,
    log_params: bool = True,
    **fit_kwargs: Any,
) -> FitResult[E]:
    """Fit ``estimator`` on ``X, y`` (passing ``fit_kwargs`` to its ``fit``) and log it to
    ``run``: params, class, fit time and training metrics (see the module docstring).

    ``task`` is inferred from the estimator (scikit-learn's ``is_classifier``); give it
    for estimators that do not declare one. ``prefix`` keeps several estimators in one
    run apart. ``log_params=False`` skips the params (for an estimator refitted in the
    same run with other params, which would otherwise conflict).
    """
    for method in ("fit", "predict"):
        if not callable(getattr(estimator, method, None)):
            raise TrainArgumentError(
                f"Cannot fit a {type(estimator).__name__}: it has no {method}() method",
                hint="Pass a scikit-learn compatible estimator (scikit-learn, XGBoost, "
                "LightGBM...)",
                argument="estimator",
            )
    if (X_valid is None) != (y_valid is None):
        raise TrainArgumentError(
            "Give both X_valid and y_valid (or neither) to compute validation metrics",
            argument="X_valid",
        )
    if task is not None and task not in ("classification", "regression"):
        raise TrainArgumentError(
            f"task must be 'classification' or 'regression', not {task!r}",
            argument="task",
            value=task,
        )
    if log_params:
        log_estimator_params(run, estimator, prefix=prefix)
    args = (X,) if y is None else (X, y)
    started = time.perf_counter()
    returned = estimator.fit(*args, **fit_kwargs)  # type: ignore[attr-defined]
    seconds = time.perf_counter() - started
    fitted: E = estimator if returned is None else returned
    metrics: dict[str, float] = {prefix + FIT_TIME_METRIC: seconds}
    kind = task or infer_task(fitted)
    if kind is not None and y is not None:
        metrics.update(_metrics(fitted, kind, X, y, prefix=f"{prefix}train_"))
        if X_valid is not None:
            metrics.update(_metrics(fitted, kind, X_valid, y_valid, prefix=f"{prefix}valid_"))
    run.log_metrics(metrics)
    return FitResult(fitted, seconds, metrics, kind)


def infer_task(estimator: Any) -> Task | None:
    """``classification`` or ``regression`` as the estimator declares it, else None."""
    try:
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(estimator):
            return "classification"
        if is_regressor(estimator):
            return "regression"
        return None
    except (ImportError, AttributeError, TypeError):
        # Not a scikit-learn estimator (no __sklearn_tags__): the older convention.
        kind = getattr(estimator, "_estimator_type", None)
        if kind == "classifier":
            return "classification"
        if kind == "regressor":
            return "regression"
        return None


def training_metrics(estimator: Any, X: Any, y: Any, task: Task) -> dict[str, float]:
    """The metrics :func:`fit` logs, for one data set, without a prefix."""
    return _metrics(estimator, task, X, y, prefix="")


def _metrics(estimator: Any, task: Task, X: Any, y: Any, *, prefix: str) -> dict[str, float]:
    from sklearn import metrics as skm

    out: dict[str, float] = {}
    predicted = estimator.predict(X)
    n_rows = len(y)
    if task == "classification":
        out[prefix + "accuracy"] = float(skm.accuracy_score(y, predicted))
        predict_proba = getattr(estimator, "predict_proba", None)
        if callable(predict_proba):
            try:
                proba = predict_proba(X)
                labels = getattr(estimator, "classes_", None)
                out[prefix + "log_loss"] = float(skm.log_loss(y, proba, labels=labels))
            except (ValueError, AttributeError, NotImplementedError) as exc:
                # e.g. labels in y the model never saw, or probabilities switched off
                log.debug("no %slog_loss: %s", prefix, exc)
    else:
        out[prefix + "rmse"] = math.sqrt(float(skm.mean_squared_error(y, predicted)))
        if n_rows >= 2:
            out[prefix + "r2"] = float(skm.r2_score(y, predicted))
    return out
