"""Turning what callers pass (lists, arrays, Series, DataFrames) into checked numpy arrays.

Every function here imports numpy lazily and raises :class:`EvaluationError` naming the
argument, what was found and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from loopline.evaluate.errors import EvaluationInputError

#: A class label as it appears in JSON: what scikit-learn's ``classes_`` usually holds.
Label = str | int | float | bool

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[str, ...] = ("auto", "binary", "multiclass", "regression")

#: Above this many distinct integer values, ``task="auto"`` treats an integer target as
#: a regression target.
MAX_AUTO_CLASSES = 20


def to_label(value: Any) -> Label:
    """A plain Python label (numpy scalars become ``int``/``float``/``str``/``bool``)."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def as_1d(values: Any, name: str) -> Any:
    """A one-dimensional numpy array (a single column is flattened)."""
    import numpy as np

    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise EvaluationInputError(
            f"{name} must be one-dimensional (one value per row), got shape {arr.shape}",
            argument=name,
        )
    return arr


def as_float(values: Any, name: str) -> Any:
    """A 1-D float array without NaN or infinity."""
    import numpy as np

    arr = as_1d(values, name)
    try:
        arr = arr.astype(float)
    except (TypeError, ValueError) as exc:
        raise EvaluationInputError(
            f"{name} must be numeric, got values like {arr[:3].tolist()!r}",
            argument=name,
        ) from exc
    bad = int((~np.isfinite(arr)).sum())
    if bad:
        raise EvaluationInputError(
            f"{name} has {bad} missing or infinite value{'s' if bad > 1 else ''} "
            f"of {len(arr)}; drop or impute them before evaluating",
            argument=name,
        )
    return arr


def check_length(n_rows: int, arr: Any, name: str) -> None:
    if len(arr) != n_rows:
        raise EvaluationInputError(
            f"{name} has {len(arr)} rows but y_true has {n_rows}; they must be aligned row by row",
            argument=name,
        )


def as_proba(proba: Any, n_rows: int) -> Any:
    """A float array of probabilities: 1-D (positive class) or 2-D (one column per class)."""
    import numpy as np

    if hasattr(proba, "to_numpy"):
        proba = proba.to_numpy()
    arr = np.asarray(proba, dtype=float)
    if arr.ndim not in (1, 2):
        raise EvaluationInputError(
            f"proba must be 1-D (positive class) or 2-D (rows x classes), got shape {arr.shape}",
            argument="proba",
        )
    check_length(n_rows, arr, "proba")
    if not np.isfinite(arr).all():
        raise EvaluationInputError("proba has missing or infinite values", argument="proba")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise EvaluationInputError(
            f"proba must hold probabilities in [0, 1], found values from {arr.min():.4g} "
            f"to {arr.max():.4g}; pass predict_proba's output, not decision_function's",
            argument="proba",
        )
    return arr


def sorted_labels(*arrays: Any) -> list[Label]:
    """The distinct labels of the arrays, sorted like scikit-learn's ``classes_``."""
    import numpy as np

    present = [a for a in arrays if a is not None and len(a)]
    if not present:
        return []
    try:
        values = np.unique(np.concatenate([np.asarray(a) for a in present]))
    except TypeError as exc:
        raise EvaluationInputError(
            "the labels mix types (for example numbers and text) and cannot be ordered; "
            "pass classes= explicitly",
            argument="classes",
        ) from exc
    return [to_label(v) for v in values]


def infer_task(y_true: Any, classes: Sequence[Any] | None, proba: Any, y_pred: Any = None) -> Task:
    """``binary``/``multiclass`` when classes or probabilities are known or the target
    looks categorical (text, booleans, a few integer values predicted as such);
    otherwise ``regression``."""
    import numpy as np

    if classes is None and proba is None:
        if y_pred is not None and y_pred.dtype.kind == "f":
            finite = y_pred[np.isfinite(y_pred)]
            if not bool(np.all(np.equal(np.mod(finite, 1), 0))):
                return "regression"
        kind = y_true.dtype.kind
        if kind == "f":
            finite = y_true[np.isfinite(y_true)]
            integral = bool(np.all(np.equal(np.mod(finite, 1), 0)))
            if not integral or len(np.unique(finite)) > MAX_AUTO_CLASSES:
                return "regression"
        elif kind in "iu" and len(np.unique(y_true)) > MAX_AUTO_CLASSES:
            return "regression"
    if classes is not None:
        n_classes = len(classes)
    elif proba is not None and getattr(proba, "ndim", 1) == 2:
        n_classes = proba.shape[1]
    else:
        n_classes = len(sorted_labels(y_true))
    return "multiclass" if n_classes > 2 else "binary"


def get_column(data: Any, name: str) -> Any:
    """Column ``name`` of a DataFrame-like object (pandas, polars, a mapping of columns)."""
    columns: list[str] | None = None
    if hasattr(data, "columns"):
        columns = [str(c) for c in data.columns]
    elif isinstance(data, Mapping):
        columns = [str(c) for c in data]
    if columns is None:
        raise EvaluationInputError(
            f"cannot take slice column {name!r} from a {type(data).__name__}; pass the "
            "columns as a DataFrame or a mapping of column name to values (slice_data=...)",
            argument=name,
        )
    if name not in columns:
        shown = ", ".join(columns[:20]) + (", ..." if len(columns) > 20 else "")
        raise EvaluationInputError(
            f"no column {name!r} to slice by; the data has columns: {shown}",
            hint="Pass slice_data= with the columns to slice by if the model's input lacks them",
            argument=name,
        )
    return as_1d(data[name], f"slice column {name!r}")
