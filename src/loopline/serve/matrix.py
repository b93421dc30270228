"""The float-matrix path: the rows of a request as one float64 matrix, for a model whose
inputs are all non-nullable floats (most tabular models), from JSON rows to the model call
without a per-column array per request.

:func:`float_matrix` reads positional rows (MLflow's ``dataframe_split``, a list of lists)
or records (a list of objects) as a matrix when, and only when, the signature's validator
would accept them unchanged: every row a list of the signature's width (or a record of
exactly its columns), every value an ``int`` or a ``float`` (never a ``bool``), every
number finite. Anything else gives None, and the request takes the validator's general
path, which names each problem (so the 4xx bodies are the validator's, always).

A :class:`MatrixResult` is a passing :class:`~loopline.registry.validation.ValidationResult`
that keeps the matrix: the micro-batcher stacks the matrices of a batch once and cuts
them into contiguous columns once (for the model and the prediction log), instead of
making 20 arrays per request and concatenating 20 lists of them per batch.

:func:`json_matrix` goes further for a large body of positional rows (MLflow's
``dataframe_split``, ``instances`` or ``inputs``, or a list of lists on ``/predict``): it
reads the numbers straight from the JSON text into the matrix (simdjson), without a Python
float per value, and only when the body is exactly that shape; anything else gives None
and the body takes the general path, so every 4xx body stays the general path's.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from loopline.registry.validation import ValidationResult, number_matrix

if TYPE_CHECKING:
    from loopline.registry.validation import InputValidator

#: Requests with at most this many cells check their value types in Python (cheaper than
#: numpy's three passes for a handful of values); larger ones let numpy infer the type.
_SMALL = 256
_NUMBER_TYPES = frozenset({float, int})
_ROW_TYPES = frozenset({list, tuple})


_TAKES_FLOATS: weakref.WeakKeyDictionary[InputValidator, bool] = weakref.WeakKeyDictionary()


def takes_floats(validator: InputValidator) -> bool:
    """Whether every input of ``validator``'s signature is a non-nullable float and no range
    is checked: then a finite number matrix of its width is valid as it is (remembered per
    validator)."""
    known = _TAKES_FLOATS.get(validator)
    if known is None:
        inputs = validator.signature.inputs
        known = (
            bool(inputs)
            and not validator.check_ranges
            and all(spec.kind == "float" and not spec.nullable for spec in inputs)
        )
        _TAKES_FLOATS[validator] = known
    return known


def float_matrix(rows: Sequence[Any], width: int) -> Any | None:
    """``rows`` (lists or tuples of ``width`` numbers) as a C-contiguous float64 matrix, or
    None when any row or value is not what an all-float signature accepts as it is."""
    n = len(rows)
    if n == 0:
        return None
    if not set(map(type, rows)) <= _ROW_TYPES or set(map(len, rows)) != {width}:
        return None
    if n * width <= _SMALL:
        kinds: set[type] = set()
        for row in rows:
            kinds.update(map(type, row))
        if not kinds <= _NUMBER_TYPES:
            return None
        try:
            matrix = np.array(rows, dtype=np.float64)
        except (ValueError, OverflowError, TypeError):
            return None
        return matrix if np.isfinite(matrix).all() else None
    return number_matrix(rows)


def records_matrix(records: Sequence[Any], names: tuple[str, ...]) -> Any | None:
    """Records with exactly the columns ``names`` as a float64 matrix (columns in that
    order), or None (see :func:`float_matrix`)."""
    width = len(names)
    if not records or not all(type(r) is dict and len(r) == width for r in records):
        return None
    pick = itemgetter(*names)
    try:
        rows = [pick(r) for r in records]
    except KeyError:
        return None
    if width == 1:
        rows = [(v,) for v in rows]
    return float_matrix(rows, width)


@dataclass
class MatrixResult(ValidationResult):
    """A passing validation that keeps the rows as one float64 ``matrix`` (columns in the
    signature's order) instead of ``columns``, which stays empty: a job made from it
    carries the matrix (see :meth:`loopline.serve.batching.Job.of`)."""

    matrix: Any = None


def matrix_result(matrix: Any) -> MatrixResult:
    return MatrixResult(columns={}, n_rows=int(matrix.shape[0]), matrix=matrix)


def matrix_columns(matrix: Any, names: Sequence[str]) -> dict[str, Any]:
    """The columns of ``matrix`` (views)."""
    return {name: matrix[:, j] for j, name in enumerate(names)}


def stacked_columns(matrices: Sequence[Any], names: Sequence[str]) -> dict[str, Any]:
    """The rows of ``matrices`` one after another, as contiguous columns: one stack and
    one transposed copy for a whole batch."""
    by_column = (
        matrices[0].T.copy() if len(matrices) == 1 else np.concatenate(matrices, axis=0).T.copy()
    )
    return {name: by_column[j] for j, name in enumerate(names)}


# -- numbers straight from the JSON text -------------------------------------------------

#: Bodies smaller than this take the general path: for a few rows, orjson and one small
#: array are cheaper than the checks below.
FAST_MIN_BYTES = 4096
_MLFLOW_ROWS = re.compile(rb'\s*\{\s*"(dataframe_split|instances|inputs)"\s*:')
_LIST_OF_LISTS = re.compile(rb"\s*\[\s*\[")
_OPEN_BRACKET = np.uint8(ord("["))


@dataclass(frozen=True)
class JSONMatrix:
    """A body's positional rows as one float64 ``matrix``, with the column ``names`` it gave
    (``dataframe_split``'s ``columns``) or None (the rows alone)."""

    matrix: Any
    names: tuple[str, ...] | None


def json_matrix(body: bytes, *, mlflow: bool) -> JSONMatrix | None:
    """The rows of ``body`` as a matrix when the body is nothing but rows of numbers, all of
    one width: ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}`` (or without
    ``columns``), ``{"instances": [[...], ...]}`` or ``{"inputs": [[...], ...]}`` when
    ``mlflow``, else a top-level ``[[...], ...]``. None for anything else (other keys,
    ``params``, a key twice, a value that is not a number, rows of unequal width, a nested
    list, malformed JSON): the general path then reads it and says what is wrong."""
    if len(body) < FAST_MIN_BYTES:
        return None
    head = (_MLFLOW_ROWS if mlflow else _LIST_OF_LISTS).match(body)
    if head is None:
        return None
    import simdjson

    # A parser of its own per body (creating one costs less than a microsecond): a parser
    # refuses to parse again while documents of its last parse are alive, and no other
    # request's body may overwrite this one's.
    try:
        # Typed loosely: the checks below are what makes a value the type it is used as.
        doc: Any = simdjson.Parser().parse(body)
        names: tuple[str, ...] | None = None
        rows: Any = doc
        lists = 1
        if mlflow:
            key = head.group(1).decode()
            if list(doc.keys()) != [key]:
                return None
            rows = doc[key]
            if key == "dataframe_split":
                if type(rows) is not simdjson.Object:
                    return None
                fields = sorted(rows.keys())
                if fields == ["columns", "data"]:
                    columns = rows["columns"]
                    if type(columns) is not simdjson.Array:
                        return None
                    listed: list[Any] = columns.as_list()
                    if not all(type(c) is str and "[" not in c for c in listed):
                        return None
                    names, lists = tuple(listed), 2
                elif fields != ["data"]:
                    return None
                rows = rows["data"]
        if type(rows) is not simdjson.Array:
            return None
        n = len(rows)
        # Every row a list (a number has no len; a text or an object fails as_buffer).
        widths = set(map(len, cast(Any, rows)))
        values = np.frombuffer(rows.as_buffer(of_type="d"), dtype=np.float64)
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError):
        return None
    if n == 0 or len(widths) != 1:
        return None
    width = widths.pop()
    # ``as_buffer`` flattens nested lists, so ``[1, [2]]`` would pass as a row of two
    # numbers: every "[" of the body must be the rows' own (no name holds one, checked
    # above, and the keys are fixed).
    if width == 0 or values.size != n * width:
        return None
    if np.count_nonzero(np.frombuffer(body, dtype=np.uint8) == _OPEN_BRACKET) != n + lists:
        return None
    if names is not None and len(names) != width:
        return None
    matrix = values.reshape(n, width)
    if not np.isfinite(matrix).all():
        return None
    return JSONMatrix(matrix, names)
