"""A dataset's schema: inferred from its first version, kept with the dataset, and the
contract every later version is validated against.

Per column it records the logical dtype (see :data:`loopline.data.content.LOGICAL_DTYPES`),
whether nulls were seen, the numeric range (min, max) and, for text and boolean columns
with few distinct values, the set of categories. A text column counts as categorical when
it has at most :data:`CATEGORY_MAX` distinct values and each appears twice on average;
otherwise (names, ids, free text) no category set is kept.

Schema-level settings change how validation judges data:

- ``range_tolerance``: values may leave [min, max] by this fraction of the range before
  they are reported (default 0: the observed range);
- ``severity``: per rule, ``"error"``, ``"warning"`` or ``"info"`` instead of the default
  (see :data:`loopline.data.validate.DEFAULT_SEVERITY`);
- ``check_duplicates``: also report duplicate rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from loopline.data.errors import DataArgumentError

#: At most this many distinct values make a text column categorical.
CATEGORY_MAX = 50
SCHEMA_FORMAT = 1


def arrow_type_for(dtype: str) -> Any:
    """The canonical Arrow type of a logical dtype, or None for dtypes without one."""
    import pyarrow as pa

    return {
        "integer": pa.int64(),
        "float": pa.float64(),
        "boolean": pa.bool_(),
        "string": pa.large_string(),
        "binary": pa.large_binary(),
        "datetime": pa.timestamp("us"),
        "date": pa.date32(),
    }.get(dtype)


@dataclass(frozen=True)
class ColumnSchema:
    name: str
    dtype: str
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    #: The allowed values of a categorical column (sorted), or None for any value.
    categories: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "nullable": self.nullable,
            "min": self.min,
            "max": self.max,
            "categories": self.categories,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ColumnSchema:
        cats = d.get("categories")
        return cls(
            name=str(d["name"]),
            dtype=str(d["dtype"]),
            nullable=bool(d.get("nullable", True)),
            min=d.get("min"),
            max=d.get("max"),
            categories=[str(c) for c in cats] if cats is not None else None,
        )


@dataclass(frozen=True)
class DatasetSchema:
    columns: list[ColumnSchema]
    range_tolerance: float = 0.0
    severity: dict[str, str] = field(default_factory=dict)
    check_duplicates: bool = False
    format: int = SCHEMA_FORMAT

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSchema:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"no column {name!r} in the schema; columns: {', '.join(self.names)}")

    def without(self, names: Iterable[str]) -> DatasetSchema:
        """A copy without the columns ``names`` (a label column, to validate features)."""
        drop = set(names)
        unknown = sorted(drop - set(self.names))
        if unknown:
            raise KeyError(
                f"no column {unknown[0]!r} in the schema; columns: {', '.join(self.names)}"
            )
        return replace(self, columns=[c for c in self.columns if c.name not in drop])

    def with_column(self, column: ColumnSchema) -> DatasetSchema:
        """A copy with ``column`` replacing the column of the same name (or appended)."""
        cols = [column if c.name == column.name else c for c in self.columns]
        if column.name not in self.names:
            cols.append(column)
        return replace(self, columns=cols)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "columns": [c.to_dict() for c in self.columns],
            "range_tolerance": self.range_tolerance,
            "severity": dict(self.severity),
            "check_duplicates": self.check_duplicates,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DatasetSchema:
        schema = cls(
            columns=[ColumnSchema.from_dict(c) for c in d["columns"]],
            range_tolerance=float(d.get("range_tolerance", 0.0)),
            severity=dict(d.get("severity", {})),
            check_duplicates=bool(d.get("check_duplicates", False)),
            format=int(d.get("format", SCHEMA_FORMAT)),
        )
        schema.check()
        return schema

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON: equal schemas have equal fingerprints."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def check(self) -> None:
        """Raise DataArgumentError if a setting is out of its domain."""
        from loopline.data.content import LOGICAL_DTYPES
        from loopline.data.validate import DEFAULT_SEVERITY, SEVERITIES

        if self.range_tolerance < 0:
            raise DataArgumentError(
                f"range_tolerance must be >= 0 (a fraction of the range), "
                f"not {self.range_tolerance}"
            )
        for rule, level in self.severity.items():
            if rule not in DEFAULT_SEVERITY:
                raise DataArgumentError(
                    f"unknown validation rule {rule!r} in severity; rules: "
                    f"{', '.join(sorted(DEFAULT_SEVERITY))}"
                )
            if level not in SEVERITIES:
                raise DataArgumentError(
                    f"severity of {rule!r} must be one of {', '.join(SEVERITIES)}, not {level!r}"
                )
        for c in self.columns:
            if c.dtype not in LOGICAL_DTYPES:
                raise DataArgumentError(
                    f"column {c.name!r} has dtype {c.dtype!r}; expected one of "
                    f"{', '.join(LOGICAL_DTYPES)}"
                )


def infer_schema(table: Any, profile: Any) -> DatasetSchema:
    """The schema of a canonical table, from its profile (computed from the same table).

    Only the table's schema is read (``table.schema``), not its columns."""
    from loopline.data.content import logical_dtype

    columns = []
    for column in table.schema:
        name = column.name
        p = profile.column(name)
        dtype = logical_dtype(column.type)
        lo = hi = None
        cats = None
        if p.numeric is not None:
            lo, hi = p.numeric.min, p.numeric.max
        if p.categorical is not None and dtype == "string":
            k = p.categorical
            non_null = p.count - p.nulls
            if 0 < k.distinct <= CATEGORY_MAX and k.distinct * 2 <= non_null:
                cats = sorted(v for v, _ in k.top)
        columns.append(
            ColumnSchema(
                name=name,
                dtype=dtype,
                nullable=p.nulls > 0 or dtype == "null",
                min=lo,
                max=hi,
                categories=cats,
            )
        )
    return DatasetSchema(columns=columns)
