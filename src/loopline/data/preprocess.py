"""A default preprocessing for a dataset, built from its schema out of scikit-learn parts.

:func:`default_preprocessor` returns an unfitted ``ColumnTransformer`` made only of
scikit-learn estimators (no custom classes or functions), so a fitted one can be saved
with skops inside a model package and loaded without trusting any code:

- integer and float columns: median imputation, then standard scaling;
- text columns with a category set (see :mod:`loopline.data.schema`): missing values
  become the category ``"__missing__"``, then one-hot encoding with
  ``handle_unknown="ignore"`` (a category unseen in training encodes as all zeros);
- boolean columns: one-hot encoding (a missing value is a category of its own);
- other columns (free text, ids, dates, binary) and the target are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from loopline.data.errors import DataArgumentError
from loopline.data.schema import DatasetSchema

MISSING_CATEGORY = "__missing__"


def feature_columns(
    schema: DatasetSchema, target: str | None = None, drop: Iterable[str] = ()
) -> dict[str, list[str]]:
    """The columns each part of the default preprocessing uses: numeric, categorical,
    boolean, and dropped."""
    skip = set(drop)
    if target is not None:
        if target not in schema.names:
            raise DataArgumentError(
                f"target {target!r} is not a column of the schema; columns: "
                f"{', '.join(schema.names)}"
            )
        skip.add(target)
    unknown = sorted(set(drop) - set(schema.names))
    if unknown:
        raise DataArgumentError(
            f"drop names no column {unknown[0]!r}; columns: {', '.join(schema.names)}"
        )
    parts: dict[str, list[str]] = {"numeric": [], "categorical": [], "boolean": [], "dropped": []}
    for c in schema.columns:
        if c.name in skip:
            parts["dropped"].append(c.name)
        elif c.dtype in ("integer", "float"):
            parts["numeric"].append(c.name)
        elif c.dtype == "string" and c.categories is not None:
            parts["categorical"].append(c.name)
        elif c.dtype == "boolean":
            parts["boolean"].append(c.name)
        else:
            parts["dropped"].append(c.name)
    return parts


def default_preprocessor(
    schema: DatasetSchema, target: str | None = None, *, drop: Iterable[str] = ()
) -> Any:
    """An unfitted ``sklearn.compose.ColumnTransformer`` for the columns of ``schema``.

    Fit it on a DataFrame with the dataset's columns (the target and dropped columns may
    be present; they are ignored). Output is a dense float array.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = feature_columns(schema, target, drop)
    transformers: list[tuple[str, Any, list[str]]] = []
    if parts["numeric"]:
        numeric = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
        transformers.append(("numeric", numeric, parts["numeric"]))
    if parts["categorical"]:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", categorical, parts["categorical"]))
    if parts["boolean"]:
        boolean = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        transformers.append(("boolean", boolean, parts["boolean"]))
    if not transformers:
        raise DataArgumentError(
            "the schema has no column the default preprocessing can use (numbers, "
            f"categorical text, booleans); columns: {', '.join(schema.names)}",
            hint="Build a ColumnTransformer for these columns yourself",
        )
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
