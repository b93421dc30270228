"""Splitting the evaluation rows into slices: the levels of a categorical column or the
bins of a numeric one.

A slice specification is one of:

- ``"plan"``: every level of column ``plan`` (missing values form ``"(missing)"``; past
  ``max_levels`` the rarest levels are grouped into one ``"(other: N levels)"``);
- ``("tenure", 4)``: four quantile bins of numeric column ``tenure`` (fewer when
  quantiles coincide);
- ``("tenure", [0, 12, 24, 72])``: the bins ``[0, 12)``, ``[12, 24)``, ``[24, 72]``, plus
  ``< 0`` and ``> 72`` when rows fall outside.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loopline.evaluate.errors import EvaluationArgumentError, EvaluationInputError
from loopline.evaluate.inputs import get_column

SliceSpec = str | tuple[str, int] | tuple[str, Sequence[float]]

MISSING = "(missing)"


@dataclass(frozen=True)
class SliceGroup:
    """The rows (a boolean mask) of one level of one slice column."""

    column: str
    level: str
    mask: Any


def slice_groups(
    data: Any, specs: Sequence[SliceSpec], n_rows: int, *, max_levels: int = 50
) -> list[SliceGroup]:
    """The groups of every specification, in order: levels by count, bins by value."""
    if isinstance(specs, str | tuple):
        specs = [specs]
    groups: list[SliceGroup] = []
    for spec in specs:
        if isinstance(spec, str):
            values = _column(data, spec, n_rows)
            groups += _levels(spec, values, max_levels)
        elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
            column, bins = spec
            values = _numeric(spec[0], _column(data, column, n_rows))
            if isinstance(bins, int) and not isinstance(bins, bool):
                if bins < 1:
                    raise EvaluationArgumentError(
                        f"slice ({column!r}, {bins}): the number of quantile bins must be >= 1",
                        argument="slices",
                        value=spec,
                    )
                groups += _quantile_bins(column, values, bins)
            elif isinstance(bins, Sequence) and not isinstance(bins, str):
                groups += _edge_bins(column, values, [float(e) for e in bins])
            else:
                raise EvaluationArgumentError(
                    f"slice ({column!r}, {bins!r}): expected a number of quantile bins "
                    "or a list of bin edges",
                    argument="slices",
                    value=spec,
                )
        else:
            raise EvaluationArgumentError(
                f"invalid slice {spec!r}: expected a column name, (column, n_bins) "
                "or (column, [edges...])",
                argument="slices",
                value=spec,
            )
    return groups


def _column(data: Any, name: str, n_rows: int) -> Any:
    if data is None:
        raise EvaluationInputError(
            f"cannot slice by {name!r}: no data to take the column from",
            hint="Pass slice_data= (a DataFrame or a mapping of columns) aligned with y_true",
            argument=name,
        )
    values = get_column(data, name)
    if len(values) != n_rows:
        raise EvaluationInputError(
            f"slice column {name!r} has {len(values)} rows but y_true has {n_rows}",
            argument=name,
        )
    return values


def _numeric(name: str, values: Any) -> Any:
    import numpy as np

    if values.dtype.kind not in "iufb":
        try:
            return values.astype(float)
        except (TypeError, ValueError) as exc:
            raise EvaluationInputError(
                f"slice column {name!r} is not numeric (values like "
                f"{values[:3].tolist()!r}); slice it by level with just its name",
                argument=name,
            ) from exc
    return np.asarray(values, dtype=float)


def _is_missing(values: Any) -> Any:
    """None, NaN and NaT (what pandas calls missing) in a column of any dtype."""
    import numpy as np

    if values.dtype.kind in "fc":
        return np.isnan(values)
    if values.dtype.kind in "mM":
        return np.isnat(values)
    if values.dtype.kind == "O":
        return np.array([_missing_value(v) for v in values], dtype=bool)
    return np.zeros(len(values), dtype=bool)


def _missing_value(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and NaT are not equal to themselves
    except (TypeError, ValueError):  # pandas.NA refuses to be a bool: it is missing
        return True


def _levels(column: str, values: Any, max_levels: int) -> list[SliceGroup]:
    import numpy as np

    missing = _is_missing(values)
    text = np.array([str(v) for v in values], dtype=object)
    text[missing] = MISSING
    levels, counts = np.unique(text, return_counts=True)
    order = sorted(range(len(levels)), key=lambda i: (-int(counts[i]), str(levels[i])))
    groups = [SliceGroup(column, str(levels[i]), text == levels[i]) for i in order]
    if len(groups) > max_levels:
        kept, rest = groups[: max_levels - 1], groups[max_levels - 1 :]
        mask = np.zeros(len(values), dtype=bool)
        for group in rest:
            mask |= group.mask
        kept.append(SliceGroup(column, f"(other: {len(rest)} levels)", mask))
        groups = kept
    return groups


def _quantile_bins(column: str, values: Any, n_bins: int) -> list[SliceGroup]:
    import numpy as np

    finite = values[np.isfinite(values)]
    if not len(finite):
        return _edge_bins(column, values, [])
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, n_bins + 1)))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0]])
    return _edge_bins(column, values, [float(e) for e in edges])


def _edge_bins(column: str, values: Any, edges: list[float]) -> list[SliceGroup]:
    import numpy as np

    missing = ~np.isfinite(values)
    groups: list[SliceGroup] = []
    if edges:
        if len(edges) < 2 or any(b < a for a, b in itertools.pairwise(edges)):
            raise EvaluationArgumentError(
                f"slice ({column!r}, {edges!r}): bin edges must be at least two increasing numbers",
                argument="slices",
                value=edges,
            )
        lo, hi = edges[0], edges[-1]
        below = ~missing & (values < lo)
        above = ~missing & (values > hi)
        if below.any():
            groups.append(SliceGroup(column, f"< {_fmt(lo)}", below))
        inside = ~missing & ~below & ~above
        for i, (a, b) in enumerate(itertools.pairwise(edges)):
            last = i == len(edges) - 2
            upper = values <= b if last else values < b
            mask = inside & (values >= a) & upper
            if a == b and not last:
                continue
            closing = "]" if last else ")"
            groups.append(SliceGroup(column, f"[{_fmt(a)}, {_fmt(b)}{closing}", mask))
        if above.any():
            groups.append(SliceGroup(column, f"> {_fmt(hi)}", above))
    if missing.any():
        groups.append(SliceGroup(column, MISSING, missing))
    return groups


def _fmt(value: float) -> str:
    return f"{value:.4g}"
