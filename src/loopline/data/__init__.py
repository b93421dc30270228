"""Versioned datasets: ingest, validate, profile, split.

::

    from loopline.data import Datasets
    from loopline.store.stores import Stores

    with Stores.open(settings) as stores:
        ds = Datasets(stores)
        v = ds.add("churn", "data/churn.csv")        # v.version, v.digest, v.created
        frame = ds.load("churn")                     # latest version, as pandas
        split = ds.split("churn", stratify="churned", seed=42)

or, in a project folder, ``loopline.data.add("churn", "data/churn.csv")``.

Importing this package is cheap: the names below load their modules (and pandas,
pyarrow, scikit-learn) on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopline.data.datasets import DatasetInfo, Datasets, DatasetVersion
    from loopline.data.ingest import Ingested, read_source
    from loopline.data.preprocess import default_preprocessor, feature_columns
    from loopline.data.profile import ColumnProfile, Profile, compute_profile
    from loopline.data.schema import ColumnSchema, DatasetSchema, infer_schema
    from loopline.data.splits import Split, SplitRecord
    from loopline.data.validate import Finding, ValidationReport, validate_table

_LAZY = {
    "Datasets": "loopline.data.datasets",
    "DatasetVersion": "loopline.data.datasets",
    "DatasetInfo": "loopline.data.datasets",
    "Ingested": "loopline.data.ingest",
    "read_source": "loopline.data.ingest",
    "default_preprocessor": "loopline.data.preprocess",
    "feature_columns": "loopline.data.preprocess",
    "Profile": "loopline.data.profile",
    "ColumnProfile": "loopline.data.profile",
    "compute_profile": "loopline.data.profile",
    "DatasetSchema": "loopline.data.schema",
    "ColumnSchema": "loopline.data.schema",
    "infer_schema": "loopline.data.schema",
    "Split": "loopline.data.splits",
    "SplitRecord": "loopline.data.splits",
    "Finding": "loopline.data.validate",
    "ValidationReport": "loopline.data.validate",
    "validate_table": "loopline.data.validate",
}

__all__ = [
    "ColumnProfile",
    "ColumnSchema",
    "DatasetInfo",
    "DatasetSchema",
    "DatasetVersion",
    "Datasets",
    "Finding",
    "Ingested",
    "Profile",
    "Split",
    "SplitRecord",
    "ValidationReport",
    "add",
    "compute_profile",
    "default_preprocessor",
    "feature_columns",
    "infer_schema",
    "load",
    "read_source",
    "validate_table",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loopline.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def add(
    name: str,
    source: Any = None,
    *,
    sql: str | None = None,
    description: str | None = None,
    allow_invalid: bool = False,
    project_dir: str | Path | None = None,
    **options: Any,
) -> DatasetVersion:
    """Add ``source`` as a version of dataset ``name`` in the project around the working
    directory (or ``project_dir``). See :meth:`Datasets.add` for the arguments."""
    from loopline.config import load_settings
    from loopline.data.datasets import Datasets
    from loopline.store.stores import Stores

    settings = load_settings(Path(project_dir) if project_dir is not None else None)
    with Stores.open(settings) as stores:
        return Datasets(stores).add(
            name,
            source,
            sql=sql,
            description=description,
            allow_invalid=allow_invalid,
            **options,
        )


def load(
    name: str,
    version: int | str | None = None,
    *,
    project_dir: str | Path | None = None,
) -> Any:
    """A version of dataset ``name`` (default: the latest) as a pandas DataFrame, from the
    project around the working directory (or ``project_dir``)."""
    from loopline.config import load_settings
    from loopline.data.datasets import Datasets
    from loopline.store.stores import Stores

    settings = load_settings(Path(project_dir) if project_dir is not None else None)
    with Stores.open(settings) as stores:
        return Datasets(stores).load(name, version)
