"""Text columns whose values are of another kind: the mixed-types check and forced dtypes.

A CSV column is text when pyarrow cannot convert all its values; most of them may still be
numbers (or booleans, or dates), with a few that are not: that is a column with mistakes,
not a text column, and :class:`MixedKinds` finds it (raising
:class:`~loopline.data.errors.MixedTypesError` with rows, lines and values). ``dtypes=`` forces
a text column's type instead; :class:`TextCoercion` converts it and names the values that
are not of that type. Both take a column in parts (batches, in file order) and count over
all of them, so that the error gives the totals of the whole column and its first rows.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any, Protocol

from loopline.data.errors import DataArgumentError, MixedTypesError

#: How many offending lines, rows or values an error quotes.
MAX_EXAMPLES = 5
#: A column is "mostly" of a kind from this share of its non-null values up.
MAJORITY = 0.5

# What pyarrow's CSV converters accept, as RE2 patterns (anchored, no surrounding spaces).
_KIND_PATTERNS = {
    "numbers": r"^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf|Inf|INF)$",
    "booleans": r"^(?:true|True|TRUE|false|False|FALSE)$",
    "dates/times": (
        r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$"
    ),
}
_DTYPE_KIND = {
    "integer": "numbers",
    "float": "numbers",
    "boolean": "booleans",
    "datetime": "dates/times",
    "date": "dates/times",
}


class Lines(Protocol):
    """Where rows are in the source text (for CSV; other sources have no lines)."""

    def lines_of_rows(self, rows: Sequence[int]) -> list[int | None]: ...


def _kind_masks(values: Any) -> dict[str, Any]:
    import pyarrow.compute as pc

    return {
        kind: pc.match_substring_regex(values, pattern=pattern)
        for kind, pattern in _KIND_PATTERNS.items()
    }


def count_kinds(mixed: dict[str, MixedKinds], held: dict[str, list[Any]], at: int) -> None:
    """Count the held batches of each text column (rows from ``at``), and let them go."""
    import pyarrow as pa

    for name, arrays in held.items():
        if arrays:
            mixed[name].update(pa.chunked_array(arrays), at)
            arrays.clear()


class MixedKinds:
    """Over the batches of a text column: how many values are of each kind (numbers,
    booleans, dates/times), and the first rows holding values of other kinds."""

    def __init__(self) -> None:
        self.total = 0
        self.hits = dict.fromkeys(_KIND_PATTERNS, 0)
        self.examples: dict[str, list[tuple[int, Any]]] = {k: [] for k in _KIND_PATTERNS}

    def update(self, col: Any, offset: int) -> None:
        import pyarrow.compute as pc

        counts = pc.value_counts(col)
        values = counts.field("values")
        freq = counts.field("counts").to_numpy(zero_copy_only=False)
        valid = pc.is_valid(values).to_numpy(zero_copy_only=False)
        self.total += int(freq[valid].sum())
        for kind, mask in _kind_masks(values).items():
            matches = pc.fill_null(mask, False).to_numpy(zero_copy_only=False) & valid
            hits = int(freq[matches].sum())
            self.hits[kind] += hits
            wanted = MAX_EXAMPLES - len(self.examples[kind])
            if wanted > 0 and hits < int(freq[valid].sum()):
                for r in _first_not_of(col, kind, values, mask, wanted):
                    self.examples[kind].append((offset + r, col[r].as_py()))

    def check(self, name: str, source: str, line_of: Lines | None) -> None:
        """Raise MixedTypesError when most values, but not all, are of another kind."""
        if self.total == 0:
            return
        for kind in _KIND_PATTERNS:
            hits = self.hits[kind]
            if hits == self.total or hits < MAJORITY * self.total:
                continue
            raise _mixed_error(
                name, source, kind, self.examples[kind], self.total - hits, self.total, line_of
            )


def _first_not_of(col: Any, kind: str, values: Any, mask: Any, wanted: int) -> list[int]:
    """The first rows of ``col`` (at most ``wanted``) whose value is not of ``kind``;
    ``values`` are its distinct values and ``mask`` says which are of the kind."""
    import numpy as np
    import pyarrow.compute as pc

    offenders = values.filter(pc.invert(pc.fill_null(mask, True)))
    if len(offenders) <= 1024:  # a few odd values: find their rows
        rows = pc.is_in(col, value_set=offenders).to_numpy(zero_copy_only=False)
        return [int(r) for r in np.flatnonzero(rows)[:wanted]]
    # Mostly other values: they show up early; look at the first rows, then at all.
    for length in (4096, len(col)):
        head = col.slice(0, length)
        match = pc.match_substring_regex(head, pattern=_KIND_PATTERNS[kind])
        rows = pc.invert(pc.fill_null(match, True)).to_numpy(zero_copy_only=False)
        found = np.flatnonzero(rows)[:wanted]
        if len(found) == wanted or length >= len(col):
            return [int(r) for r in found]
    return []  # pragma: no cover - the loop ends on the whole column


class TextCoercion:
    """Reads the batches of a text column as ``dtype``; values that are not of that kind
    are counted over all batches and raised, with the first rows, by :meth:`check`."""

    def __init__(self, name: str, dtype: str, source: str) -> None:
        from loopline.data.schema import arrow_type_for

        self.name = name
        self.dtype = dtype
        self.source = source
        self.kind = _DTYPE_KIND.get(dtype, "")
        self.target = arrow_type_for(dtype)
        if dtype != "string" and (dtype not in _DTYPE_KIND or self.target is None):
            raise DataArgumentError(
                f"{source}: cannot read column {name!r} as {dtype!r}; expected one of "
                "string, integer, float, boolean, datetime, date"
            )
        if dtype == "date":
            self.kind = "dates (YYYY-MM-DD)"
        self.bad = 0
        self.total = 0
        self.examples: list[tuple[int, Any]] = []

    def __call__(self, col: Any, offset: int) -> Any:
        """``col`` as ``dtype``, or None when it holds values that are not (see check)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if self.dtype == "string":
            return col
        self.total += len(col) - col.null_count
        if self.dtype == "date":  # a time of day would be cut off
            mask = pc.match_substring_regex(col, pattern=r"^\d{4}-\d{2}-\d{2}$")
        else:
            mask = pc.match_substring_regex(col, pattern=_KIND_PATTERNS[_DTYPE_KIND[self.dtype]])
            if self.dtype == "integer":
                mask = pc.and_(mask, pc.match_substring_regex(col, pattern=r"^[+-]?\d+$"))
        bad = pc.invert(pc.fill_null(mask, True))
        n_bad = pc.sum(bad).as_py() or 0
        if n_bad:
            self.bad += n_bad
            wanted = MAX_EXAMPLES - len(self.examples)
            rows = np.flatnonzero(bad.to_numpy(zero_copy_only=False))[:wanted].tolist()
            self.examples.extend((offset + r, col[r].as_py()) for r in rows)
        if self.bad:
            return None
        try:
            if self.dtype == "date":
                return pc.cast(pc.cast(col, pa.timestamp("us")), pa.date32())
            return pc.cast(col, self.target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise MixedTypesError(
                f"column {self.name!r} cannot be read as {self.dtype}: {str(exc).splitlines()[0]}",
                source=self.source,
                column=self.name,
                expected=self.dtype,
                examples=[],
                count=0,
            ) from exc

    def check(self, line_of: Lines | None) -> None:
        if self.bad:
            raise _mixed_error(
                self.name,
                self.source,
                self.kind,
                self.examples,
                self.bad,
                self.total,
                line_of,
                forced=self.dtype,
            )


def _mixed_error(
    name: str,
    source: str,
    kind: str,
    found: list[tuple[int, Any]],
    n_bad: int,
    total: int,
    line_of: Lines | None,
    forced: str | None = None,
) -> MixedTypesError:
    rows = [r for r, _ in found]
    lines = line_of.lines_of_rows(rows) if line_of is not None else [None] * len(rows)
    examples = [(r, ln, v) for (r, v), ln in zip(found, lines, strict=True)]
    where = ", ".join(
        (f"line {ln} (row {r}): {v!r}" if ln else f"row {r}: {v!r}") for r, ln, v in examples
    )
    what = f"is read as {forced}" if forced else f"holds {kind}"
    hint = (
        "Fix those values, or declare them missing with null_values (CLI: --null-value), "
        f"or read the column as text with dtypes={{{name!r}: 'string'}} "
        f"(CLI: --dtype {shlex.quote(f'{name}=string')})"
    )
    return MixedTypesError(
        f"column {name!r} {what}, but {n_bad:,} of its {total:,} values are not {kind}: {where}",
        source=source,
        column=name,
        expected=forced or kind,
        examples=examples,
        count=n_bad,
        hint=hint,
    )
