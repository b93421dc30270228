"""A model's signature: the input columns it expects and the output it gives.

Inferred from a sample of the training data (and the fitted model) when a model is
registered, stored in the package manifest and on the version row, and read by serving to
validate requests. It is plain data: :meth:`Signature.to_dict` gives JSON, and
:meth:`Signature.from_dict` reads it back.

Each input column has a *kind* (``integer``, ``float``, ``boolean``, ``string``,
``category``, ``datetime``, or ``object`` for mixed values), the pandas dtype it had, whether
the sample held nulls, and its range (numbers and datetimes). Two fields list values:

- ``categories``: the declared categories of a ``category`` column, a closed set (a value
  outside it becomes a missing value when cast to the column's dtype);
- ``observed``: the distinct values a ``string`` column had in the sample, when there were
  at most :data:`MAX_OBSERVED_CATEGORIES` (``None`` beyond that). This is *not* a closed
  set: a new value in production is legitimate (e.g. ``OneHotEncoder(handle_unknown=
  "ignore")``); it is what to compare against for drift or a warning.

pandas is imported inside :meth:`Signature.infer` only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: A string column with more distinct values than this records no categories.
MAX_OBSERVED_CATEGORIES = 100

KINDS = ("integer", "float", "boolean", "string", "category", "datetime", "object")
OUTPUT_KINDS = ("classifier", "regressor", "unknown")


@dataclass(frozen=True)
class ColumnSpec:
    """One input column."""

    name: str
    kind: str
    dtype: str
    nullable: bool
    min: int | float | str | None = None
    max: int | float | str | None = None
    #: The declared categories of a ``category`` column (a closed set).
    categories: tuple[Any, ...] | None = None
    #: Distinct values a ``string`` column had in the sample (not a closed set).
    observed: tuple[Any, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "nullable": self.nullable,
            "min": self.min,
            "max": self.max,
            "categories": None if self.categories is None else list(self.categories),
            "observed": None if self.observed is None else list(self.observed),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSpec:
        cats = data.get("categories")
        observed = data.get("observed")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            dtype=str(data.get("dtype", "")),
            nullable=bool(data.get("nullable", False)),
            min=data.get("min"),
            max=data.get("max"),
            categories=None if cats is None else tuple(cats),
            observed=None if observed is None else tuple(observed),
        )


@dataclass(frozen=True)
class OutputSpec:
    """What ``predict`` returns, and for classifiers the columns of ``predict_proba``."""

    kind: str = "unknown"
    dtype: str | None = None
    classes: tuple[Any, ...] | None = None
    proba_columns: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dtype": self.dtype,
            "classes": None if self.classes is None else list(self.classes),
            "proba_columns": None if self.proba_columns is None else list(self.proba_columns),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputSpec:
        classes = data.get("classes")
        proba = data.get("proba_columns")
        return cls(
            kind=str(data.get("kind", "unknown")),
            dtype=data.get("dtype"),
            classes=None if classes is None else tuple(classes),
            proba_columns=None if proba is None else tuple(str(p) for p in proba),
        )


@dataclass(frozen=True)
class Signature:
    """The input columns in the order the model takes them, and the output."""

    inputs: tuple[ColumnSpec, ...]
    output: OutputSpec = OutputSpec()

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.inputs]

    def column(self, name: str) -> ColumnSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def __iter__(self) -> Iterator[ColumnSpec]:
        return iter(self.inputs)

    def __len__(self) -> int:
        return len(self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [c.to_dict() for c in self.inputs], "output": self.output.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        return cls(
            inputs=tuple(ColumnSpec.from_dict(c) for c in data.get("inputs", [])),
            output=OutputSpec.from_dict(data.get("output") or {}),
        )

    @classmethod
    def infer(cls, X: Any, y: Any = None, model: Any = None) -> Signature:
        """Infer the signature from a sample DataFrame ``X`` (training rows are best).

        The output comes from ``model`` when given (a classifier is a model with
        ``predict_proba`` and ``classes_``), else from the targets ``y`` (floats make a
        regressor, anything else a classifier over its distinct values).
        """
        import pandas as pd

        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"Signature.infer expects a pandas DataFrame of input rows, "
                f"not {type(X).__module__}.{type(X).__qualname__}"
            )
        inputs = tuple(_column_spec(str(name), X[name]) for name in X.columns)
        if len(set(c.name for c in inputs)) != len(inputs):
            raise ValueError("The sample has duplicate column names")
        return cls(inputs=inputs, output=_output_spec(model, y, X))


def _column_spec(name: str, col: Any) -> ColumnSpec:
    import pandas as pd

    dtype = col.dtype
    nullable = bool(col.isna().any())
    values = col.dropna()
    kind = _kind(dtype, values)
    lo: int | float | str | None = None
    hi: int | float | str | None = None
    categories: tuple[Any, ...] | None = None
    observed: tuple[Any, ...] | None = None
    if kind in ("integer", "float") and len(values):
        lo, hi = _number(values.min(), kind), _number(values.max(), kind)
    elif kind == "datetime" and len(values):
        lo, hi = pd.Timestamp(values.min()).isoformat(), pd.Timestamp(values.max()).isoformat()
    elif kind == "category":
        categories = tuple(json_scalar(v) for v in dtype.categories)
    elif kind == "string":
        distinct = values.unique()
        if len(distinct) <= MAX_OBSERVED_CATEGORIES:
            observed = tuple(sorted(str(v) for v in distinct))
    return ColumnSpec(name, kind, str(dtype), nullable, lo, hi, categories, observed)


def _kind(dtype: Any, values: Any) -> str:
    import pandas as pd
    from pandas.api import types as pdt

    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pdt.is_bool_dtype(dtype):
        return "boolean"
    if pdt.is_integer_dtype(dtype):
        return "integer"
    if pdt.is_float_dtype(dtype):
        return "float"
    if pdt.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pdt.is_string_dtype(dtype) or pdt.is_object_dtype(dtype):
        inferred = pdt.infer_dtype(values, skipna=True)
        return {
            "string": "string",
            "empty": "string",
            "boolean": "boolean",
            "integer": "integer",
            "floating": "float",
            "mixed-integer-float": "float",
            "datetime": "datetime",
            "datetime64": "datetime",
        }.get(inferred, "object")
    return "object"


def _output_spec(model: Any, y: Any, X: Any) -> OutputSpec:
    import numpy as np

    classes = getattr(model, "classes_", None) if model is not None else None
    if model is not None and classes is not None and hasattr(model, "predict_proba"):
        arr = np.asarray(classes)
        return _classifier([json_scalar(c) for c in arr], str(arr.dtype))
    if model is not None and y is None:
        return OutputSpec(kind="regressor", dtype=_predict_dtype(model, X))
    if y is None:
        return OutputSpec()
    arr = np.asarray(y)
    if arr.dtype.kind == "f":
        return OutputSpec(kind="regressor", dtype=str(arr.dtype))
    values = {json_scalar(v) for v in arr.ravel().tolist()}
    distinct = sorted(values, key=lambda v: (str(type(v)), v))
    return _classifier(distinct, str(arr.dtype))


def _predict_dtype(model: Any, X: Any) -> str:
    """The dtype of a regressor's predictions, from a few sample rows."""
    import numpy as np

    try:
        return str(np.asarray(model.predict(X.head(5))).dtype)
    except Exception:  # a model that cannot predict on the sample fails later, not here
        return "float64"


def _classifier(classes: Sequence[Any], dtype: str) -> OutputSpec:
    return OutputSpec(
        kind="classifier",
        dtype=dtype,
        classes=tuple(classes),
        proba_columns=tuple(f"proba_{c}" for c in classes),
    )


def _number(value: Any, kind: str) -> int | float | None:
    if kind == "integer":
        return int(value)
    f = float(value)
    return f if math.isfinite(f) else None


def json_scalar(value: Any) -> Any:
    """``value`` as a JSON-native scalar (numpy scalars unwrapped, NaN and infinities to None)."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, str | bytes):
        try:
            value = item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
