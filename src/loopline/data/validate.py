"""Validation of a table against a dataset's schema: a report, never an exception.

Every check is vectorised (Arrow compute or numpy over whole columns). Each finding names
the rule, the column, how many rows broke it and the first few (row, value) examples;
rows are 0-based positions in the table.

Rules and their default severity (a schema's ``severity`` setting overrides them):

=====================  ========  =====================================================
rule                   severity  finding
=====================  ========  =====================================================
``missing_column``     error     a column of the schema is absent
``dtype``              error     a column's logical dtype differs (integers are valid
                                 floats; floats with whole values are valid integers)
``not_null``           error     nulls in a column that had none
``unexpected_column``  warning   a column the schema does not know
``below_min``          warning   numbers below the schema's min (less its tolerance)
``above_max``          warning   numbers above the schema's max (plus its tolerance)
``unseen_category``    warning   values outside a categorical column's categories
``duplicate_rows``     warning   rows equal to an earlier row (only when asked for)
=====================  ========  =====================================================

Errors make the report fail (``report.ok`` is False): a dataset add is refused unless
forced. Warnings and infos are kept with the version and shown, but do not block.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass, field
from typing import Any

from loopline.data.schema import DatasetSchema

SEVERITIES = ("error", "warning", "info")
DEFAULT_SEVERITY = {
    "missing_column": "error",
    "dtype": "error",
    "not_null": "error",
    "unexpected_column": "warning",
    "below_min": "warning",
    "above_max": "warning",
    "unseen_category": "warning",
    "duplicate_rows": "warning",
}
#: How many (row, value) examples a finding keeps.
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    column: str | None
    #: Rows that broke the rule (0 for rules about whole columns).
    count: int
    message: str
    expected: str | None = None
    #: The first offending cells as (row, value); rows are 0-based.
    examples: list[tuple[int, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "column": self.column,
            "count": self.count,
            "message": self.message,
            "expected": self.expected,
            "examples": [{"row": r, "value": jsonable(v)} for r, v in self.examples],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        return cls(
            rule=d["rule"],
            severity=d["severity"],
            column=d.get("column"),
            count=int(d.get("count", 0)),
            message=d["message"],
            expected=d.get("expected"),
            examples=[(int(e["row"]), e["value"]) for e in d.get("examples", [])],
        )


@dataclass
class ValidationReport:
    """What validating one table against a schema found."""

    dataset: str | None
    rows: int
    columns: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when nothing of severity "error" was found."""
        return not self.errors

    def summary(self) -> str:
        """One line: the verdict and the first errors (or warnings)."""
        counts = f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        shown = self.errors or self.warnings
        if not shown:
            return f"valid: {counts}"
        head = "; ".join(f.message for f in shown[:3])
        more = f"; and {len(shown) - 3} more" if len(shown) > 3 else ""
        return f"{'invalid' if self.errors else 'valid'}: {counts}: {head}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "ok": self.ok,
            "rows": self.rows,
            "columns": self.columns,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValidationReport:
        return cls(
            dataset=d.get("dataset"),
            rows=int(d.get("rows", 0)),
            columns=int(d.get("columns", 0)),
            findings=[Finding.from_dict(f) for f in d.get("findings", [])],
        )


def jsonable(value: Any) -> Any:
    """``value`` as something ``json.dumps`` writes faithfully."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value[:64].hex()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return str(value)


def validate_table(
    table: Any,
    schema: DatasetSchema,
    *,
    dataset: str | None = None,
    check_duplicates: bool | None = None,
) -> ValidationReport:
    """Check a canonical ``pyarrow.Table`` against ``schema``; returns the report.

    ``table`` may also be anything with the table's ``column_names``, ``schema``,
    ``num_rows``, ``num_columns`` and ``column(name)`` (a table staged on disk, whose
    ``iter_tables()`` gives its rows in parts): columns are checked one at a time.
    """
    from loopline.data.content import logical_dtype

    findings: list[Finding] = []
    levels = {**DEFAULT_SEVERITY, **schema.severity}

    def add(rule: str, column: str | None, count: int, message: str, **kw: Any) -> None:
        findings.append(Finding(rule, levels[rule], column, count, message, **kw))

    present = set(table.column_names)
    for c in schema.columns:
        if c.name not in present:
            add(
                "missing_column",
                c.name,
                table.num_rows,
                f"column {c.name!r} ({c.dtype}) is missing",
                expected=c.dtype,
            )
    known = set(schema.names)
    for field_ in table.schema:
        name = field_.name
        if name not in known:
            add(
                "unexpected_column",
                name,
                0,
                f"column {name!r} ({logical_dtype(field_.type)}) is not in the schema",
            )
            continue
        col = table.column(name)
        spec = schema.column(name)
        actual = logical_dtype(col.type)
        if not _compatible(spec.dtype, actual, col):
            rows = _first_rows(_valid_mask(col))
            add(
                "dtype",
                name,
                len(col) - col.null_count,
                f"column {name!r} holds {_plural(actual)}, expected {_plural(spec.dtype)}",
                expected=spec.dtype,
                examples=[(r, col[r].as_py()) for r in rows],
            )
            continue
        if not spec.nullable and col.null_count:
            rows = _first_rows(_null_mask(col))
            add(
                "not_null",
                name,
                col.null_count,
                f"column {name!r} has {col.null_count:,} null(s) "
                f"(rows {_rows(rows, col.null_count)}), expected none",
                expected="no nulls",
                examples=[(r, None) for r in rows],
            )
        if actual in ("integer", "float") and (spec.min is not None or spec.max is not None):
            _check_range(col, name, spec.min, spec.max, schema.range_tolerance, add)
        if spec.categories is not None and actual == "string":
            _check_categories(col, name, spec.categories, add)
    if check_duplicates if check_duplicates is not None else schema.check_duplicates:
        _check_duplicates(table, add)
    return ValidationReport(
        dataset=dataset, rows=table.num_rows, columns=table.num_columns, findings=findings
    )


def _compatible(expected: str, actual: str, col: Any) -> bool:
    import pyarrow.compute as pc

    if expected == actual or "null" in (expected, actual):
        return True
    if expected == "float" and actual == "integer":
        return True
    if expected == "integer" and actual == "float":
        # pandas turns an integer column with a missing value into floats: accept whole
        # numbers (the not_null rule reports the missing values).
        whole = pc.equal(pc.floor(col), col)
        return bool(pc.all(whole).as_py() is not False)
    return False


def _check_range(
    col: Any, name: str, lo: float | None, hi: float | None, tolerance: float, add: Any
) -> None:
    import numpy as np

    x = _as_float(col)
    span = (hi - lo) if lo is not None and hi is not None else 0.0
    slack = tolerance * span
    if lo is not None:
        below = x < lo - slack
        n = int(np.count_nonzero(below))
        if n:
            rows = _first_rows(below)
            add(
                "below_min",
                name,
                n,
                f"{n:,} value(s) of {name!r} below the minimum {lo:g} "
                f"(lowest {np.nanmin(x):g}; rows {_rows(rows, n)})",
                expected=f">= {lo:g}",
                examples=[(r, x[r].item()) for r in rows],
            )
    if hi is not None:
        above = x > hi + slack
        n = int(np.count_nonzero(above))
        if n:
            rows = _first_rows(above)
            add(
                "above_max",
                name,
                n,
                f"{n:,} value(s) of {name!r} above the maximum {hi:g} "
                f"(highest {np.nanmax(x):g}; rows {_rows(rows, n)})",
                expected=f"<= {hi:g}",
                examples=[(r, x[r].item()) for r in rows],
            )


def _check_categories(col: Any, name: str, categories: list[str], add: Any) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    known = pa.array(categories, type=col.type)
    unseen = pc.and_(pc.invert(pc.is_in(col, value_set=known)), pc.is_valid(col))
    mask = _to_numpy_bool(unseen)
    n = int(mask.sum())
    if not n:
        return
    rows = _first_rows(mask)
    new_values = pc.unique(col.filter(unseen)).to_pylist()
    shown = ", ".join(repr(v) for v in new_values[:5]) + (
        f" and {len(new_values) - 5} more" if len(new_values) > 5 else ""
    )
    add(
        "unseen_category",
        name,
        n,
        f"{n:,} row(s) of {name!r} hold {len(new_values)} unseen categor"
        f"{'y' if len(new_values) == 1 else 'ies'}: {shown}",
        expected=f"one of {len(categories)} categories",
        examples=[(r, col[r].as_py()) for r in rows],
    )


#: Rows hashed at a time for the duplicate check.
DUPLICATE_CHUNK_ROWS = 1 << 20


def _check_duplicates(table: Any, add: Any) -> None:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if table.num_rows < 2:
        return
    # Nullable pandas types for integers and booleans, so that a part without nulls and
    # a part with some convert (and hash) their values alike.
    mapping = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    parts = [
        pd.util.hash_pandas_object(part.to_pandas(types_mapper=mapping.get), index=False).to_numpy()
        for part in _row_parts(table)
    ]
    dup = pd.Series(np.concatenate(parts)).duplicated().to_numpy()
    n = int(dup.sum())
    if n:
        rows = _first_rows(dup)
        add(
            "duplicate_rows",
            None,
            n,
            f"{n:,} row(s) repeat an earlier row (rows {_rows(rows, n)})",
            expected="unique rows",
            examples=[(r, None) for r in rows],
        )


def _row_parts(table: Any) -> Any:
    """The rows of ``table`` as a few tables (a staged table's row groups, or slices)."""
    parts = getattr(table, "iter_tables", None)
    if parts is not None:
        yield from parts()
        return
    for start in range(0, table.num_rows, DUPLICATE_CHUNK_ROWS):
        yield table.slice(start, DUPLICATE_CHUNK_ROWS)


def _as_float(col: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    parts = [c.to_numpy(zero_copy_only=False).astype(np.float64, copy=False) for c in chunks]
    return np.concatenate(parts) if len(parts) != 1 else parts[0]


def _to_numpy_bool(arr: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    parts = [c.to_numpy(zero_copy_only=False) for c in chunks]
    if not parts:
        return np.zeros(0, dtype=bool)
    return (np.concatenate(parts) if len(parts) != 1 else parts[0]).astype(bool, copy=False)


def _null_mask(col: Any) -> Any:
    import pyarrow.compute as pc

    return _to_numpy_bool(pc.is_null(col))


def _valid_mask(col: Any) -> Any:
    import pyarrow.compute as pc

    return _to_numpy_bool(pc.is_valid(col))


def _first_rows(mask: Any) -> list[int]:
    import numpy as np

    return [int(r) for r in np.flatnonzero(mask)[:MAX_EXAMPLES]]


def _rows(rows: list[int], count: int) -> str:
    return ", ".join(str(r) for r in rows) + (", ..." if count > len(rows) else "")


def _plural(dtype: str) -> str:
    return {
        "integer": "integers",
        "float": "floats",
        "boolean": "booleans",
        "string": "text",
        "binary": "bytes",
        "datetime": "timestamps",
        "date": "dates",
        "time": "times",
        "duration": "durations",
        "null": "only nulls",
    }.get(dtype, dtype)
