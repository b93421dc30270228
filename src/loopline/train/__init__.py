"""Training: fit an estimator inside a step, tracked, and search its hyperparameters.

    from loopline.train import Choice, FloatRange, IntRange, fit, search

    result = fit(ctx.run, RandomForestClassifier(), X, y, X_valid=Xv, y_valid=yv)

    best = search(ctx.stores, objective, {"max_depth": IntRange(2, 10), ...},
                  study="churn-rf", n_trials=40, run=ctx.run)

Modules: ``fitting`` (:func:`fit`), ``space`` (search spaces), ``search`` (Optuna studies,
trials as child runs, resume, several workers), ``storage`` (Optuna's RDB storage in the
project database), ``progress`` (a Rich progress bar over trials). Importing this
package imports neither Optuna nor scikit-learn: they load when a search or fit runs.
"""

from __future__ import annotations

from loopline.train.fitting import FitResult, fit, infer_task
from loopline.train.progress import search_progress
from loopline.train.search import (
    Objective,
    Report,
    SearchProgress,
    SearchResult,
    load_search,
    search,
)
from loopline.train.space import Choice, FloatRange, IntRange, SearchSpace

__all__ = [
    "Choice",
    "FitResult",
    "FloatRange",
    "IntRange",
    "Objective",
    "Report",
    "SearchProgress",
    "SearchResult",
    "SearchSpace",
    "fit",
    "infer_task",
    "load_search",
    "search",
    "search_progress",
]
