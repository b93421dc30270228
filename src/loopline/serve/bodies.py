"""Request bodies: reading them within a size limit, and decoding each format into rows.

Every failure here is the client's: it raises :class:`HTTPProblem` with a 4xx status and a
message that names what was wrong (malformed JSON and where, the content type that is
not accepted, the limit that was exceeded), never anything that would become a 500.

Formats of ``POST /predict``: JSON records ``[{"col": v, ...}]``, one record
``{"col": v}``, JSON columns ``{"col": [v, ...]}``, CSV (``text/csv``) and Parquet
(``application/vnd.apache.parquet``). ``POST /invocations`` takes MLflow's scoring
formats: ``dataframe_split``, ``dataframe_records``, ``inputs``, ``instances`` and CSV.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from loopline.echo import echo, echo_text
from loopline.serve.matrix import (
    JSONMatrix,
    float_matrix,
    json_matrix,
    matrix_result,
    records_matrix,
    takes_floats,
)

if TYPE_CHECKING:
    from starlette.requests import Request

    from loopline.registry.validation import InputValidator, ValidationResult

JSON_TYPES = frozenset({"application/json", "text/json", "application/x-json"})
CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain"})
PARQUET_TYPES = frozenset(
    {
        "application/vnd.apache.parquet",
        "application/x-parquet",
        "application/parquet",
        "application/octet-stream",
    }
)
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "inputs", "instances")


class HTTPProblem(Exception):
    """A request the server refuses, with its status and a JSON-ready explanation."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        problems: list[dict[str, Any]] | None = None,
        more_problems: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = problems
        self.more_problems = more_problems
        self.headers = dict(headers or {})

    @classmethod
    def invalid(cls, result: ValidationResult) -> HTTPProblem:
        # The report quotes the offending values: cut them down first, so a value nested
        # hundreds of levels deep (or megabytes long) cannot break the report.
        shown = replace(result, problems=[replace(p, value=echo(p.value)) for p in result.problems])
        return cls(
            422,
            "validation_failed",
            f"The input does not match the model's signature: {shown.summary()}",
            problems=shown.problem_dicts(),
            more_problems=result.more_problems,
        )


def media_type(header: str | None) -> str:
    if not header:
        return ""
    return header.split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HTTPProblem(400, "bad_request", "Content-Length is not a number") from None
        if size > limit:
            raise _too_large(size, limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(total, limit)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(size: int, limit: int) -> HTTPProblem:
    return HTTPProblem(
        413,
        "body_too_large",
        f"The request body has {size} bytes or more; the limit is {limit} bytes",
        headers={"Connection": "close"},
    )


def parse_json(body: bytes) -> Any:
    import orjson

    if not body.strip():
        raise HTTPProblem(400, "malformed_json", "The request body is empty; send JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPProblem(400, "malformed_json", f"Malformed JSON: {exc}") from None


def parse_csv(body: bytes) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from loopline.data.csvscan import refuse_unclosed_quotes
    from loopline.data.errors import UnterminatedQuoteError

    if not body.strip():
        raise HTTPProblem(400, "malformed_csv", "The CSV body is empty")
    try:
        # pyarrow reads an unclosed quote as one value running to the end: rows vanish.
        refuse_unclosed_quotes(lambda: io.BytesIO(body), source="The CSV body")
    except UnterminatedQuoteError as exc:
        raise HTTPProblem(400, "malformed_csv", exc.message) from None
    try:
        table = pcsv.read_csv(
            io.BytesIO(body),
            convert_options=pcsv.ConvertOptions(strings_can_be_null=True),
        )
        names = table.column_names  # decoded here: a header that is not UTF-8 fails now
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError) as exc:
        raise HTTPProblem(400, "malformed_csv", f"Malformed CSV: {_first(exc)}") from None
    _unique_columns(names, "CSV header")
    return table


def parse_parquet(body: bytes) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(body))
        names = table.column_names
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as exc:
        raise HTTPProblem(400, "malformed_parquet", f"Malformed Parquet: {_first(exc)}") from None
    _unique_columns(names, "Parquet file")
    return table


def _unique_columns(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise HTTPProblem(
                400, "duplicate_column", f"The {where} has the column {echo_text(name)} twice"
            )
        seen.add(name)


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]


@dataclass
class Decoded:
    """A body ready to be validated for a model: ``validate(validator, drop)`` checks it,
    leaving out the columns in ``drop`` (routing fields that are not model inputs).

    ``sticky(key)`` is the value of a routing field (in the first row) when the body has
    it, for sticky canaries. ``params`` are MLflow's ``params``.
    """

    validate: Callable[[InputValidator, frozenset[str]], ValidationResult]
    sticky: Callable[[str], str | None]
    params: dict[str, Any] = field(default_factory=dict)


def decode_predict(content_type: str | None, body: bytes) -> Decoded:
    """A ``POST /predict`` body (JSON records or columns, CSV, Parquet)."""
    kind = media_type(content_type)
    if kind in CSV_TYPES:
        return _table(parse_csv(body), text=True)
    if kind in PARQUET_TYPES:
        return _table(parse_parquet(body), text=False)
    if kind and kind not in JSON_TYPES:
        raise _unsupported(kind, "application/json, text/csv or application/vnd.apache.parquet")
    found = json_matrix(body, mlflow=False)
    if found is not None:
        return _matrix(found, lambda: decode_json_rows(parse_json(body)))
    return decode_json_rows(parse_json(body))


def decode_json_rows(data: Any) -> Decoded:
    """Records (a list of objects), one record (an object of values), columns (an object of
    lists) or positional rows (a list of lists)."""
    if isinstance(data, list):
        if not data:
            raise HTTPProblem(400, "empty", "No rows: the list is empty")
        if set(map(type, data)) == {list}:
            return _rows(data, None)
        return _records(data)
    if isinstance(data, dict):
        if not data:
            raise HTTPProblem(400, "empty", "No columns: the object is empty")
        lists = [isinstance(v, list) for v in data.values()]
        if all(lists):
            return _columns(data)
        if not any(lists) and not any(isinstance(v, dict) for v in data.values()):
            return _records([data])
        raise HTTPProblem(
            400,
            "bad_shape",
            'A JSON object must be one row ({"col": value, ...}) or columns '
            '({"col": [values], ...}), not a mix of lists and single values',
        )
    raise HTTPProblem(
        400,
        "bad_shape",
        f"Expected a JSON list of rows or an object of columns, not {type(data).__name__}",
    )


def decode_invocations(content_type: str | None, body: bytes) -> Decoded:
    """A ``POST /invocations`` body in MLflow's scoring protocol."""
    kind = media_type(content_type)
    if kind in CSV_TYPES:
        return _table(parse_csv(body), text=True)
    if kind and kind not in JSON_TYPES:
        raise _unsupported(kind, "application/json or text/csv")
    found = json_matrix(body, mlflow=True)
    if found is not None:
        return _matrix(found, lambda: _mlflow_json(body))
    return _mlflow_json(body)


def _mlflow_json(body: bytes) -> Decoded:
    data = parse_json(body)
    if not isinstance(data, dict):
        raise HTTPProblem(
            400,
            "bad_shape",
            "Expected a JSON object with one of the keys "
            f"{', '.join(MLFLOW_KEYS)}, not {type(data).__name__}",
        )
    keys = [k for k in MLFLOW_KEYS if k in data]
    if len(keys) != 1:
        names = sorted(data)
        found = ", ".join(echo_text(k) for k in names[:10]) or "none"
        if len(names) > 10:
            found += f" and {len(names) - 10} more"
        raise HTTPProblem(
            400,
            "bad_shape",
            f"Expected exactly one of the keys {', '.join(MLFLOW_KEYS)} (found: {found})",
        )
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise HTTPProblem(400, "bad_shape", "params must be a JSON object")
    key = keys[0]
    value = data[key]
    if key == "dataframe_split":
        decoded = _split(value)
    elif key == "dataframe_records":
        if not isinstance(value, list) or not value:
            raise HTTPProblem(400, "bad_shape", "dataframe_records must be a non-empty list")
        decoded = _records(value)
    else:  # inputs, instances
        if isinstance(value, list) and value and not isinstance(value[0], dict | list):
            value = [[v] for v in value]  # a list of scalars: a one-column model
        decoded = decode_json_rows(value)
    decoded.params = params
    return decoded


def _split(value: Any) -> Decoded:
    if not isinstance(value, dict):
        raise HTTPProblem(
            400, "bad_shape", 'dataframe_split must be {"columns": [...], "data": [[...]]}'
        )
    data = value.get("data")
    columns = value.get("columns")
    if not isinstance(data, list):
        raise HTTPProblem(400, "bad_shape", "dataframe_split.data must be a list of rows")
    if columns is not None and (
        not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)
    ):
        raise HTTPProblem(400, "bad_shape", "dataframe_split.columns must be a list of names")
    if not data:
        raise HTTPProblem(400, "empty", "No rows: dataframe_split.data is empty")
    if set(map(type, data)) != {list}:
        if columns is not None and len(columns) == 1:
            data = [[v] for v in data]
        else:
            raise HTTPProblem(400, "bad_shape", "dataframe_split.data must be a list of lists")
    return _rows(data, columns)


def _records(records: list[Any]) -> Decoded:
    def sticky(key: str) -> str | None:
        first = records[0]
        if isinstance(first, dict) and first.get(key) is not None:
            return str(first[key])
        return None

    def validate(v: InputValidator, drop: frozenset[str]) -> ValidationResult:
        if drop and isinstance(records[0], dict) and not drop.isdisjoint(records[0]):
            return v.validate_records(
                [
                    {k: x for k, x in r.items() if k not in drop} if isinstance(r, dict) else r
                    for r in records
                ]
            )
        if takes_floats(v):
            matrix = records_matrix(records, v.names)
            if matrix is not None:
                return matrix_result(matrix)
        return v.validate_records(records)

    return Decoded(validate, sticky)


def _columns(data: dict[str, Any]) -> Decoded:
    def sticky(key: str) -> str | None:
        values = data.get(key)
        if isinstance(values, list) and values and values[0] is not None:
            return str(values[0])
        return None

    def validate(v: InputValidator, drop: frozenset[str]) -> ValidationResult:
        if drop and not drop.isdisjoint(data):
            return v.validate_columns({k: x for k, x in data.items() if k not in drop})
        return v.validate_columns(data)

    return Decoded(validate, sticky)


def _rows(rows: list[Any], names: list[str] | None) -> Decoded:
    def sticky(key: str) -> str | None:
        if names is None or key not in names:
            return None
        j = names.index(key)
        first = rows[0]
        if isinstance(first, list) and j < len(first) and first[j] is not None:
            return str(first[j])
        return None

    def validate(v: InputValidator, drop: frozenset[str]) -> ValidationResult:
        if names is not None and drop and not drop.isdisjoint(names):
            keep = [j for j, n in enumerate(names) if n not in drop]
            trimmed = [
                [r[j] for j in keep if j < len(r)] if isinstance(r, list) else r for r in rows
            ]
            return v.validate_rows(trimmed, [names[j] for j in keep])
        if takes_floats(v) and (names is None or tuple(names) == v.names):
            matrix = float_matrix(rows, len(v.names))
            if matrix is not None:
                return matrix_result(matrix)
        return v.validate_rows(rows, names)

    return Decoded(validate, sticky)


def _matrix(found: JSONMatrix, general: Callable[[], Decoded]) -> Decoded:
    """Rows read straight into a matrix (:func:`~loopline.serve.matrix.json_matrix`). A
    model that takes them as they are gets the matrix; any other (other inputs, other
    column names, routing fields among the columns) and a sticky field's value get the
    body read by the general path (``general``, called once), as if the fast read had not
    happened."""
    read: list[Decoded] = []

    def full() -> Decoded:
        if not read:
            read.append(general())
        return read[0]

    def sticky(key: str) -> str | None:
        return None if found.names is None else full().sticky(key)

    def validate(v: InputValidator, drop: frozenset[str]) -> ValidationResult:
        names = found.names
        if (
            takes_floats(v)
            and found.matrix.shape[1] == len(v.names)
            and (names is None or (names == v.names and drop.isdisjoint(names)))
        ):
            return matrix_result(found.matrix)
        return full().validate(v, drop)

    return Decoded(validate, sticky)


def _table(table: Any, *, text: bool) -> Decoded:
    def sticky(key: str) -> str | None:
        if key in table.column_names and table.num_rows:
            value = table.column(key)[0].as_py()
            return None if value is None else str(value)
        return None

    def validate(v: InputValidator, drop: frozenset[str]) -> ValidationResult:
        gone = [c for c in table.column_names if c in drop]
        return v.validate_table(table.drop_columns(gone) if gone else table, text=text)

    return Decoded(validate, sticky)


def _unsupported(kind: str, accepted: str) -> HTTPProblem:
    return HTTPProblem(
        415,
        "unsupported_media_type",
        f"Content-Type {echo_text(kind)} is not accepted here; send {accepted}",
    )
