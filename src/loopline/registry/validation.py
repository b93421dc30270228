"""Fast validation of input rows against a model's signature, column by column.

Serving and batch prediction both check rows before a model sees them. Building a
DataFrame per request would cost more than the model on small requests, so this module
works on columns: each input column (a Python list from JSON, or a numpy array from CSV,
Parquet or a V2 tensor) is checked and converted to one *canonical* numpy array:

=============  ===========================================================================
kind           canonical array
=============  ===========================================================================
``float``      ``float64`` (nulls as NaN, only where the column is nullable)
``integer``    ``int64``; ``float64`` with NaN when a nullable column holds nulls
``boolean``    ``bool``; ``object`` (``None`` for nulls) when a nullable column holds nulls
``string``     ``object`` of ``str`` (``None`` for nulls)
``category``   ``object`` of the category values (``None`` for nulls)
``datetime``   ``datetime64[ns]`` (``NaT`` for nulls)
``object``     ``object``, unchecked
=============  ===========================================================================

Canonical arrays of many requests are concatenated with :func:`concat_columns` and turned
into one DataFrame per batch by :func:`to_frame`. What is wrong is never raised: it is
returned as :class:`Problem` records (row, column, value, expected), so the caller chooses
the transport (an HTTP 422, a rejected file, a report).

    validator = InputValidator(signature)
    result = validator.validate_records([{"age": 31, "plan": "pro"}])
    if not result.ok:
        print([p.to_dict() for p in result.problems])
    frame = to_frame(signature, result.columns)

numpy is imported when a validator is built; pandas only by :func:`to_frame`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from loopline.echo import echo
from loopline.registry.signature import ColumnSpec, Signature

#: A numpy array (numpy is imported lazily, so it is typed loosely here).
Array = Any

#: At most this many problems are listed; ``ValidationResult.more_problems`` counts the rest.
MAX_PROBLEMS = 100

#: What each kind of column expects, as shown in problems.
EXPECTED = {
    "integer": "an integer",
    "float": "a number",
    "boolean": "true or false",
    "string": "a string",
    "category": "a category",
    "datetime": "an ISO 8601 date-time string",
    "object": "any value",
}

ProblemKind = Literal[
    "missing_column",
    "unknown_column",
    "wrong_type",
    "null",
    "out_of_domain",
    "length_mismatch",
    "not_a_row",
    "empty",
]

_TRUE = frozenset({"true", "1", "yes", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "f", "n"})
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (row, column), what (value), and what was expected.

    ``row`` is the 0-based row of the request (None for a problem of a whole column);
    ``problem`` is a short machine-readable kind (see :data:`ProblemKind`).
    """

    row: int | None
    column: str | None
    value: Any
    expected: str
    problem: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "value": _shown(self.value),
            "expected": self.expected,
            "problem": self.problem,
        }

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        place = ", ".join(where) or "input"
        what = self.problem.replace("_", " ")
        if self.problem != "missing_column":
            what = f"{what} {_shown(self.value)!r}"
        return f"{place}: {what}; expected {self.expected}"


@dataclass
class ValidationResult:
    """Canonical column arrays (in the signature's order) and the problems found.

    When ``ok`` is False the arrays are incomplete and must not be predicted on.
    """

    columns: dict[str, Any]
    n_rows: int
    problems: list[Problem] = field(default_factory=list)
    #: Problems found beyond the first :data:`MAX_PROBLEMS`.
    more_problems: int = 0
    #: Columns present in the input but not in the signature, when extra columns are ignored.
    ignored_columns: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem_dicts(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.problems]

    def summary(self) -> str:
        """One line: how many problems, and the first few."""
        total = len(self.problems) + self.more_problems
        shown = "; ".join(str(p) for p in self.problems[:3])
        more = f"; and {total - 3} more" if total > 3 else ""
        return f"{total} problem{'s' if total != 1 else ''} in the input: {shown}{more}"


class _Problems:
    """A capped list of problems (counting, not keeping, those beyond the cap)."""

    def __init__(self, limit: int) -> None:
        self.items: list[Problem] = []
        self.more = 0
        self.limit = limit

    def add(
        self, row: int | None, column: str | None, value: Any, expected: str, kind: str
    ) -> None:
        if len(self.items) < self.limit:
            self.items.append(Problem(row, column, value, expected, kind))
        else:
            self.more += 1

    def __bool__(self) -> bool:
        return bool(self.items)


class InputValidator:
    """Checks inputs against one signature; build once per model, call per request.

    ``extra_columns``: ``"reject"`` (a problem per unknown column, what serving does) or
    ``"ignore"`` (they are dropped and listed in ``ignored_columns``, what batch
    prediction over files with id columns wants). ``check_ranges``: numbers outside the
    signature's min/max (the range seen in training) are problems too; off by default,
    because a value outside the training range is drift to monitor, not invalid input.
    The declared categories of a ``category`` column are always a closed domain; the
    values a ``string`` column had in training (``observed``) are not (a new value is
    legitimate, and drift to watch).
    """

    def __init__(
        self,
        signature: Signature,
        *,
        extra_columns: Literal["reject", "ignore"] = "reject",
        check_ranges: bool = False,
        max_problems: int = MAX_PROBLEMS,
    ) -> None:
        import numpy as np

        self._np = np
        self.signature = signature
        self.extra_columns = extra_columns
        self.check_ranges = check_ranges
        self.max_problems = max_problems
        self.names: tuple[str, ...] = tuple(signature.columns)
        self._name_set = frozenset(self.names)
        self._checks = {spec.name: _ColumnCheck(spec, check_ranges) for spec in signature.inputs}
        # Every column a non-nullable float (or int) without a range check: records can be
        # read as one matrix in a single numpy call.
        self._all_float = bool(self.names) and all(
            spec.kind == "float" and not spec.nullable and not check_ranges
            for spec in signature.inputs
        )

    # -- entry points ---------------------------------------------------------------------

    def validate_records(self, records: Sequence[Any]) -> ValidationResult:
        """Rows as mappings of column -> value (JSON ``[{"a": 1, "b": "x"}, ...]``)."""
        problems = _Problems(self.max_problems)
        if not isinstance(records, list | tuple):
            problems.add(None, None, records, "a list of rows", "not_a_row")
            return self._result({}, 0, problems)
        n = len(records)
        if n == 0:
            problems.add(None, None, [], "at least one row", "empty")
            return self._result({}, 0, problems)
        if self._all_float:
            fast = self._float_matrix(records)
            if fast is not None:
                return fast
        names = self.names
        name_set = self._name_set
        ignored: set[str] = set()
        bad_rows: set[int] = set()
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                problems.add(i, None, rec, "an object of column: value", "not_a_row")
                bad_rows.add(i)
                continue
            if len(rec) == len(names) and rec.keys() == name_set:
                continue
            keys = rec.keys()
            for name in names:
                if name not in keys:
                    problems.add(
                        i, name, None, _expected_column(self._checks[name]), "missing_column"
                    )
                    bad_rows.add(i)
            for key in keys:
                if key not in name_set:
                    if self.extra_columns == "ignore":
                        ignored.add(str(key))
                    else:
                        problems.add(i, str(key), rec[key], _known_columns(names), "unknown_column")
                        bad_rows.add(i)
        if bad_rows:
            # Check the values that are there too, so one response lists every problem.
            for name in names:
                index = [i for i, r in enumerate(records) if isinstance(r, dict) and name in r]
                values = [records[i][name] for i in index]
                self._checks[name].check_list(values, problems, index)
            return self._result({}, n, problems, ignored)
        columns: dict[str, Any] = {}
        for name in names:
            values = [r[name] for r in records]
            columns[name] = self._checks[name].check_list(values, problems, None)
        return self._result(columns, n, problems, ignored)

    def validate_rows(
        self, rows: Sequence[Any], names: Sequence[str] | None = None
    ) -> ValidationResult:
        """Positional rows (``[[1.0, "x"], ...]``) with column ``names`` (default: the
        signature's, in order), like MLflow's ``dataframe_split``."""
        problems = _Problems(self.max_problems)
        cols = list(self.names) if names is None else [str(n) for n in names]
        if not isinstance(rows, list | tuple) or not rows:
            problems.add(None, None, rows, "a non-empty list of rows", "empty")
            return self._result({}, 0, problems)
        if len(set(cols)) != len(cols):
            dupes = sorted({c for c in cols if cols.count(c) > 1})
            for c in dupes:
                problems.add(None, c, c, "each column named once", "wrong_type")
            return self._result({}, len(rows), problems)
        width = len(cols)
        # Checked in C first (sets of types and lengths); row by row only when wrong.
        if not set(map(type, rows)) <= _ROW_TYPES or set(map(len, rows)) != {width}:
            for i, row in enumerate(rows):
                if not isinstance(row, list | tuple):
                    problems.add(i, None, row, f"a list of {width} values", "not_a_row")
                elif len(row) != width:
                    problems.add(
                        i, None, f"{len(row)} values", f"{width} values", "length_mismatch"
                    )
            if problems:
                return self._result({}, len(rows), problems)
        if self._all_float and cols == list(self.names):
            matrix = number_matrix(rows)
            if matrix is not None:
                columns = {name: matrix[:, j] for j, name in enumerate(self.names)}
                return ValidationResult(columns, len(rows))
        data = {name: [row[j] for row in rows] for j, name in enumerate(cols)}
        return self.validate_columns(data)

    def validate_columns(self, data: Mapping[str, Any], *, text: bool = False) -> ValidationResult:
        """Columns as a mapping of name -> values (a list, a tuple or a 1-D numpy array).

        ``text=True`` says string values came from a text format (CSV) and may be parsed
        as numbers, booleans or date-times where the signature wants those.
        """
        np = self._np
        problems = _Problems(self.max_problems)
        if not isinstance(data, Mapping):
            problems.add(None, None, data, "an object of column: [values]", "not_a_row")
            return self._result({}, 0, problems)
        ignored: set[str] = set()
        lengths: dict[str, int] = {}
        for key, values in data.items():
            if key not in self._name_set:
                if self.extra_columns == "ignore":
                    ignored.add(str(key))
                    continue
                problems.add(
                    None, str(key), _head(values), _known_columns(self.names), "unknown_column"
                )
                continue
            if isinstance(values, np.ndarray):
                if values.ndim != 1:
                    problems.add(
                        None,
                        key,
                        f"an array of shape {values.shape}",
                        "a list of values",
                        "wrong_type",
                    )
                    continue
                lengths[key] = len(values)
            elif isinstance(values, list | tuple):
                lengths[key] = len(values)
            else:
                problems.add(None, key, values, "a list of values", "wrong_type")
        for name in self.names:
            if name not in data:
                problems.add(
                    None, name, None, _expected_column(self._checks[name]), "missing_column"
                )
        distinct = set(lengths.values())
        n = max(distinct) if distinct else 0
        if len(distinct) > 1:
            for key, length in lengths.items():
                if length != n:
                    problems.add(
                        None,
                        key,
                        f"{length} values",
                        f"{n} values, like the longest column",
                        "length_mismatch",
                    )
        if n == 0 and not problems:
            problems.add(None, None, [], "at least one row", "empty")
        if problems:
            for key in lengths:
                if lengths[key] == n:
                    self._checks[key].check(data[key], problems, text)
            return self._result({}, n, problems, ignored)
        columns = {
            name: self._checks[name].check(data[name], problems, text) for name in self.names
        }
        return self._result(columns, n, problems, ignored)

    def validate_table(self, table: Any, *, text: bool = False) -> ValidationResult:
        """A pandas DataFrame or a pyarrow Table (e.g. read from CSV or Parquet)."""
        np = self._np
        if hasattr(table, "column_names") and hasattr(table, "to_pydict"):  # pyarrow
            data = {
                str(name): _arrow_to_numpy(table.column(name), np) for name in table.column_names
            }
            return self.validate_columns(data, text=text)
        if hasattr(table, "columns") and hasattr(table, "dtypes"):  # pandas
            data = {str(name): _series_to_numpy(table[name], np) for name in table.columns}
            return self.validate_columns(data, text=text)
        problems = _Problems(self.max_problems)
        problems.add(
            None, None, type(table).__name__, "a pandas DataFrame or pyarrow Table", "not_a_row"
        )
        return self._result({}, 0, problems)

    # -- internals ------------------------------------------------------------------------

    def _float_matrix(self, records: Sequence[Any]) -> ValidationResult | None:
        """All-float signatures: one matrix for all rows, or None to take the general path."""
        names = self.names
        try:
            rows = [[rec[name] for name in names] for rec in records]
        except (KeyError, TypeError):
            return None
        for rec in records:
            if len(rec) != len(names):
                return None
        matrix = number_matrix(rows)
        if matrix is None:
            return None
        columns = {name: matrix[:, j] for j, name in enumerate(names)}
        return ValidationResult(columns, len(records))

    def _result(
        self,
        columns: dict[str, Any],
        n: int,
        problems: _Problems,
        ignored: Iterable[str] = (),
    ) -> ValidationResult:
        if problems:
            columns = {}
        return ValidationResult(
            columns=columns,
            n_rows=n,
            problems=problems.items,
            more_problems=problems.more,
            ignored_columns=tuple(sorted(ignored)),
        )


_ROW_TYPES = frozenset({list, tuple})


class _ColumnCheck:
    """The checks and conversion of one column."""

    def __init__(self, spec: ColumnSpec, check_ranges: bool) -> None:
        import numpy as np

        self._np = np
        self.spec = spec
        self.name = spec.name
        self.kind = spec.kind
        self.nullable = spec.nullable
        self.expected = EXPECTED.get(spec.kind, "a value")
        self.domain: frozenset[Any] | None = None
        if spec.kind == "category" and spec.categories is not None:
            self.domain = frozenset(spec.categories)
            shown = ", ".join(repr(c) for c in list(spec.categories)[:20])
            more = ", ..." if len(spec.categories) > 20 else ""
            self.expected = f"one of {shown}{more}"
        self.lo: float | None = None
        self.hi: float | None = None
        self.range_text = self.expected
        if check_ranges and spec.kind in ("integer", "float"):
            self.lo = None if spec.min is None else float(spec.min)
            self.hi = None if spec.max is None else float(spec.max)
            if self.lo is not None or self.hi is not None:
                self.range_text = f"{self.expected} between {spec.min} and {spec.max}"

    # Python lists (JSON) ----------------------------------------------------------------

    def check_list(self, values: list[Any], problems: _Problems, rows: list[int] | None) -> Array:
        """Check a list of Python values; ``rows`` maps positions to request rows."""
        np = self._np
        kind = self.kind
        types = set(map(type, values))
        has_null = type(None) in types
        if has_null and not self.nullable:
            for pos, v in enumerate(values):
                if v is None:
                    problems.add(
                        _row(pos, rows), self.name, None, f"{self.expected} (not null)", "null"
                    )
        if kind == "float":
            if types <= {float, int, type(None)}:
                try:
                    arr = (
                        np.array(values, dtype=np.float64)
                        if not has_null
                        else np.array(
                            [math.nan if v is None else v for v in values], dtype=np.float64
                        )
                    )
                except OverflowError:
                    arr = self._floats_slow(values, problems, rows)
            else:
                arr = self._floats_slow(values, problems, rows)
            if not np.isfinite(arr).all():
                self._non_finite(values, arr, problems, rows)
            return self._ranges(arr, problems, rows)
        if kind == "integer":
            if types <= {int, type(None)} and not has_null:
                try:
                    arr = np.array(values, dtype=np.int64)
                except OverflowError:
                    arr = self._ints_slow(values, problems, rows)
            else:
                arr = self._ints_slow(values, problems, rows)
            return self._ranges(arr, problems, rows)
        if kind == "boolean":
            if types <= {bool}:
                return np.array(values, dtype=bool)
            out = np.empty(len(values), dtype=object)
            for pos, v in enumerate(values):
                if v is None or type(v) is bool:
                    out[pos] = v
                else:
                    problems.add(_row(pos, rows), self.name, v, self.expected, "wrong_type")
            return out
        if kind in ("string", "category"):
            return self._labels(values, types, problems, rows)
        if kind == "datetime":
            return self._datetimes(values, problems, rows)
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out

    def _floats_slow(self, values: list[Any], problems: _Problems, rows: list[int] | None) -> Array:
        np = self._np
        out = np.empty(len(values), dtype=np.float64)
        for pos, v in enumerate(values):
            t = type(v)
            if t is float or t is int:
                try:
                    out[pos] = v
                except OverflowError:
                    problems.add(_row(pos, rows), self.name, v, self.expected, "wrong_type")
                    out[pos] = math.nan
            elif v is None:
                out[pos] = math.nan
            else:
                problems.add(_row(pos, rows), self.name, v, self.expected, "wrong_type")
                out[pos] = math.nan
        return out

    def _non_finite(
        self,
        values: list[Any],
        arr: Array,
        problems: _Problems,
        rows: list[int] | None,
    ) -> None:
        np = self._np
        for pos in np.flatnonzero(~np.isfinite(arr)).tolist():
            v = float(arr[pos])
            if not isinstance(values[pos], float | np.floating):
                # A null (allowed, or reported as one already), or a value that is not a
                # number or too large for one (reported as the wrong type already).
                continue
            if math.isnan(v) and self.nullable:
                continue
            problems.add(_row(pos, rows), self.name, v, f"{self.expected} (finite)", "wrong_type")

    def _ints_slow(self, values: list[Any], problems: _Problems, rows: list[int] | None) -> Array:
        np = self._np
        has_null = False
        out: list[float | int] = []
        for pos, v in enumerate(values):
            t = type(v)
            if t is int:
                if _INT64_MIN <= v <= _INT64_MAX:
                    out.append(v)
                    continue
            elif t is float and math.isfinite(v) and v.is_integer() and abs(v) < 2.0**63:
                out.append(int(v))
                continue
            elif v is None:
                has_null = True
                out.append(math.nan)
                continue
            problems.add(_row(pos, rows), self.name, v, self.expected, "wrong_type")
            out.append(0)
        if has_null:
            return np.array(out, dtype=np.float64)
        return np.array(out, dtype=np.int64)

    def _labels(
        self,
        values: list[Any],
        types: set[type],
        problems: _Problems,
        rows: list[int] | None,
    ) -> Array:
        np = self._np
        out = np.empty(len(values), dtype=object)
        out[:] = values
        strict_str = self.kind == "string"
        if strict_str and not types <= {str, type(None)}:
            for pos, v in enumerate(values):
                if v is not None and type(v) is not str:
                    problems.add(_row(pos, rows), self.name, v, EXPECTED["string"], "wrong_type")
        elif not strict_str:
            for pos, v in enumerate(values):
                if v is not None and not isinstance(v, str | int | float | bool):
                    problems.add(_row(pos, rows), self.name, v, self.expected, "wrong_type")
        domain = self.domain
        if domain is not None:
            for pos, v in enumerate(values):
                if v is None:
                    continue
                try:
                    inside = v in domain
                except TypeError:  # unhashable: already reported as the wrong type
                    continue
                if not inside:
                    problems.add(_row(pos, rows), self.name, v, self.expected, "out_of_domain")
        return out

    def _datetimes(self, values: list[Any], problems: _Problems, rows: list[int] | None) -> Array:
        np = self._np
        out = np.empty(len(values), dtype="datetime64[ns]")
        for pos, v in enumerate(values):
            if v is None:
                out[pos] = np.datetime64("NaT")
                continue
            parsed = _parse_datetime(v)
            if parsed is None:
                problems.add(_row(pos, rows), self.name, v, self.expected, "wrong_type")
                out[pos] = np.datetime64("NaT")
            else:
                out[pos] = parsed
        return out

    def _ranges(self, arr: Array, problems: _Problems, rows: list[int] | None) -> Array:
        if self.lo is None and self.hi is None:
            return arr
        np = self._np
        with np.errstate(invalid="ignore"):
            bad = np.zeros(len(arr), dtype=bool)
            if self.lo is not None:
                bad |= arr < self.lo
            if self.hi is not None:
                bad |= arr > self.hi
        for pos in np.flatnonzero(bad).tolist():
            value = arr[pos].item()
            problems.add(_row(pos, rows), self.name, value, self.range_text, "out_of_domain")
        return arr

    # numpy arrays (CSV, Parquet, V2 tensors) ------------------------------------------

    def check(self, values: Any, problems: _Problems, text: bool) -> Array:
        np = self._np
        if not isinstance(values, np.ndarray):
            return self.check_list(list(values), problems, None)
        dk = values.dtype.kind
        kind = self.kind
        if dk in "OUS":
            items = values.tolist()
            if dk == "S":
                items = [v.decode("utf-8", "replace") for v in items]
            if text:
                items = [self._from_text(v) for v in items]
            return self.check_list(items, problems, None)
        if kind == "float":
            if dk in "fiu":
                arr = values.astype(np.float64, copy=False)
                self._nan_nulls(arr, problems)
                if not np.isfinite(arr[~np.isnan(arr)]).all():
                    for pos in np.flatnonzero(np.isinf(arr)).tolist():
                        problems.add(
                            pos,
                            self.name,
                            float(arr[pos]),
                            f"{self.expected} (finite)",
                            "wrong_type",
                        )
                return self._ranges(arr, problems, None)
        elif kind == "integer":
            if dk in "iu":
                if (
                    dk == "u"
                    and values.dtype.itemsize == 8
                    and len(values)
                    and values.max() > _INT64_MAX
                ):
                    return self.check_list(values.tolist(), problems, None)
                return self._ranges(values.astype(np.int64, copy=False), problems, None)
            if dk == "f":
                nan = np.isnan(values)
                finite = values[~nan]
                if len(finite) and not (
                    np.isfinite(finite).all()
                    and (finite == np.floor(finite)).all()
                    and (np.abs(finite) < 2.0**63).all()
                ):
                    return self.check_list(
                        [None if math.isnan(v) else v for v in values.tolist()], problems, None
                    )
                if nan.any():
                    self._nan_nulls(values.astype(np.float64), problems)
                    return self._ranges(values.astype(np.float64), problems, None)
                return self._ranges(values.astype(np.int64), problems, None)
        elif kind == "boolean":
            if dk == "b":
                return values
            if text and dk in "iu" and set(np.unique(values).tolist()) <= {0, 1}:
                return values.astype(bool)
        elif kind == "datetime":
            if dk == "M":
                arr = values.astype("datetime64[ns]")
                if not self.nullable:
                    for pos in np.flatnonzero(np.isnat(arr)).tolist():
                        problems.add(pos, self.name, None, f"{self.expected} (not null)", "null")
                return arr
        elif kind in ("string", "category"):
            if text or kind == "category":
                items = values.tolist()
                if text and kind == "string":
                    items = [
                        None if isinstance(v, float) and math.isnan(v) else str(v) for v in items
                    ]
                return self.check_list(items, problems, None)
        elif kind == "object":
            return values.astype(object)
        # The array's type cannot hold this column: report each row (capped).
        shown = values.tolist()
        for pos, v in enumerate(shown):
            problems.add(pos, self.name, v, self.expected, "wrong_type")
        return values

    def _nan_nulls(self, arr: Array, problems: _Problems) -> None:
        if self.nullable:
            return
        np = self._np
        for pos in np.flatnonzero(np.isnan(arr)).tolist():
            problems.add(pos, self.name, None, f"{self.expected} (not null)", "null")

    def _from_text(self, value: Any) -> Any:
        """A CSV cell (a string, or None for an empty cell) as the column's kind wants it."""
        if not isinstance(value, str):
            return value
        kind = self.kind
        text = value.strip()
        if text == "":
            return None
        try:
            if kind == "integer":
                return int(text)
            if kind == "float":
                return float(text)
        except ValueError:
            return value
        if kind == "boolean":
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        return value


def _row(pos: int, rows: list[int] | None) -> int:
    return pos if rows is None else rows[pos]


def _parse_datetime(value: Any) -> Any:
    import numpy as np

    if isinstance(value, datetime | date):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        from datetime import UTC

        moment = moment.astimezone(UTC).replace(tzinfo=None)
    try:
        return np.datetime64(moment, "ns")
    except (ValueError, OverflowError):
        return None


def _expected_column(check: _ColumnCheck) -> str:
    return f"column {check.name!r}: {check.expected}"


def _known_columns(names: Sequence[str]) -> str:
    shown = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
    return f"only the signature's columns: {shown}"


def _head(values: Any) -> Any:
    try:
        return list(values[:3]) if len(values) > 3 else list(values)
    except TypeError:
        return values


def _shown(value: Any) -> Any:
    """A value as JSON can carry it in a problem report: bounded by depth and size (a cell
    may hold a list nested thousands of levels deep), numpy scalars unwrapped."""
    return echo(value)


def _arrow_to_numpy(column: Any, np: Any) -> Any:
    import pyarrow as pa

    typ = column.type
    if pa.types.is_floating(typ):
        return column.to_numpy(zero_copy_only=False)
    if pa.types.is_integer(typ) and column.null_count == 0:
        return column.to_numpy()
    if pa.types.is_integer(typ):
        return column.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls as NaN
    if pa.types.is_boolean(typ) and column.null_count == 0:
        return column.to_numpy(zero_copy_only=False).astype(bool)
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        return column.cast(pa.timestamp("ns")).to_numpy(zero_copy_only=False)
    out = np.empty(len(column), dtype=object)
    out[:] = column.to_pylist()
    return out


def _series_to_numpy(series: Any, np: Any) -> Any:
    dtype = series.dtype
    kind = getattr(dtype, "kind", "O")
    if kind in "fiubM" and str(dtype) == getattr(dtype, "name", str(dtype)):
        try:
            return series.to_numpy()
        except (TypeError, ValueError):
            pass
    out = np.empty(len(series), dtype=object)
    out[:] = [None if _is_na(v) else v for v in series.tolist()]
    return out


def _is_na(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def concat_columns(parts: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """Canonical columns of several validated inputs, concatenated per column."""
    import numpy as np

    if len(parts) == 1:
        return {name: parts[0][name] for name in names}
    out: dict[str, Any] = {}
    for name in names:
        arrays = [p[name] for p in parts]
        kinds = {a.dtype.kind for a in arrays}
        if len(kinds) > 1 and "O" in kinds:
            arrays = [a.astype(object) for a in arrays]
        out[name] = np.concatenate(arrays)
    return out


def to_frame(signature: Signature, columns: Mapping[str, Any]) -> Any:
    """One pandas DataFrame of canonical columns, in the signature's order and dtypes.

    Columns are cast to the dtype recorded at training (``category`` with the declared
    categories, ``int64``, ``bool``...) where the values allow it.
    """
    import pandas as pd

    data: dict[str, Any] = {}
    for spec in signature.inputs:
        values = columns[spec.name]
        data[spec.name] = _cast(pd, spec, values)
    return pd.DataFrame(data, copy=False)


def _cast(pd: Any, spec: ColumnSpec, values: Any) -> Any:
    dtype = spec.dtype
    if spec.kind == "category":
        cats = list(spec.categories) if spec.categories is not None else None
        return pd.Categorical(values, categories=cats)
    if spec.kind in ("float", "integer") and values.dtype.kind in "fi":
        if dtype and dtype != str(values.dtype):
            try:
                return pd.Series(values, copy=False).astype(dtype)
            except (TypeError, ValueError):
                return values
        return values
    if spec.kind == "string":
        if dtype in ("str", "string"):
            try:
                return pd.Series(values, copy=False).astype(dtype)
            except (TypeError, ValueError):
                return values
        return values
    if spec.kind == "datetime" and dtype and dtype.startswith("datetime64"):
        try:
            series = pd.Series(values, copy=False)
            if "UTC" in dtype or "," in dtype:
                series = series.dt.tz_localize("UTC")
            return series.astype(dtype)
        except (TypeError, ValueError):
            return values
    return values


def sample_rows(signature: Signature, n: int = 32, seed: int = 0) -> dict[str, Any]:
    """``n`` synthetic rows inside the signature's domain, as canonical columns.

    For warming a model up and comparing two inference paths (native and ONNX); numbers
    are drawn between the recorded min and max, labels from the recorded categories.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for spec in signature.inputs:
        kind = spec.kind
        if kind in ("float", "integer"):
            lo = float(spec.min) if isinstance(spec.min, int | float) else 0.0
            hi = float(spec.max) if isinstance(spec.max, int | float) else 1.0
            if kind == "integer":
                out[spec.name] = rng.integers(int(lo), int(hi) + 1, n).astype(np.int64)
            else:
                out[spec.name] = rng.uniform(lo, hi, n)
        elif kind == "boolean":
            out[spec.name] = rng.random(n) > 0.5
        elif kind in ("string", "category"):
            cats = list(spec.categories) if spec.categories else ["x"]
            arr = np.empty(n, dtype=object)
            arr[:] = [cats[i % len(cats)] for i in rng.integers(0, len(cats), n).tolist()]
            out[spec.name] = arr
        elif kind == "datetime":
            base = np.datetime64("2024-01-01T00:00:00", "ns")
            out[spec.name] = base + rng.integers(0, 86_400, n).astype("timedelta64[s]")
        else:
            arr = np.empty(n, dtype=object)
            arr[:] = [None] * n
            out[spec.name] = arr
    return out


def number_matrix(rows: Sequence[Sequence[Any]]) -> Array | None:
    """``rows`` (rows of one width) as a float64 matrix if every value is a finite int or
    float, else None.

    numpy infers the type in C: strings, None and huge ints give a non-numeric dtype.
    Booleans would become 0.0 and 1.0, so only the cells holding exactly 0 or 1 are
    checked one by one (not all 2,000 cells of a 100-row request).
    """
    import numpy as np

    try:
        matrix = np.array(rows)
    except (ValueError, OverflowError):
        return None
    if matrix.ndim != 2 or matrix.dtype.kind not in "fiu":
        # Strings, None, nested values and huge integers give another kind; so do bools
        # when the whole request is made of them ("b").
        return None
    if matrix.dtype.kind != "f":
        matrix = matrix.astype(np.float64)
    elif not np.isfinite(matrix).all():
        return None
    suspects = np.flatnonzero((matrix == 0.0) | (matrix == 1.0))
    if len(suspects):
        width = matrix.shape[1]
        for flat in suspects.tolist():
            if type(rows[flat // width][flat % width]) is bool:
                return None
    return matrix


__all__ = [
    "EXPECTED",
    "MAX_PROBLEMS",
    "InputValidator",
    "Problem",
    "ValidationResult",
    "concat_columns",
    "number_matrix",
    "sample_rows",
    "to_frame",
]
