"""Reading any supported source into one canonical table.

Sources:

- a file path or any fsspec URL (``s3://``, ``gs://``, ``https://`` ...) of a CSV file
  (``.csv``, ``.tsv``, ``.txt``, optionally ``.gz``/``.bz2``/``.zst`` compressed) or a
  Parquet file (``.parquet``, ``.pq``); ``s3://`` URLs use the project's ``[s3]`` settings;
  a file without a known extension is sniffed (Parquet magic bytes, else CSV);
- a SQL query (``sql=``) run on a SQLAlchemy URL, engine or connection;
- a pandas DataFrame (named index levels become columns, an unnamed index is dropped),
  a polars DataFrame, or a pyarrow Table or RecordBatch.

Whatever the source, bad input raises an :class:`~loopline.data.errors.IngestError` that says
where and what (see :mod:`loopline.data.csvfile` for CSV's checks): nothing is coerced
into another type or dropped without a word. The result is in the canonical form of
:mod:`loopline.data.content`, with notes on anything converted along the way.

Files are streamed: :func:`read_source` gathers the canonical batches into a
``pyarrow.Table``; :func:`stage_source` writes them to a Parquet file in a folder the
caller owns (:mod:`loopline.data.staging`), so that adding a file larger than memory holds
only a block of it at a time. A URL is first downloaded into that folder, and a compressed
Parquet file decompressed there.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.config import redact_url
from loopline.data import csvfile
from loopline.data.content import Normaliser, normalise_table
from loopline.data.csvscan import DEFAULT_MAX_FIELD_BYTES
from loopline.data.errors import (
    DataArgumentError,
    EmptySourceError,
    FormatMismatchError,
    IngestError,
    MixedTypesError,
    SourceNotFoundError,
)
from loopline.data.textcolumns import MAX_EXAMPLES, TextCoercion
from loopline.store import tempfiles

if TYPE_CHECKING:
    from loopline.config import S3Settings
    from loopline.data.staging import BatchSource

FORMATS = ("csv", "parquet")
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".parq": "parquet",
}
_SQL_LABEL_MAX = 200
_SNIFF = 8192
_COPY_BYTES = 1 << 23
#: Rows per batch read from a Parquet file.
PARQUET_BATCH_ROWS = 65_536


@dataclass
class Ingested:
    """A source read into a canonical table."""

    #: A ``pyarrow.Table``, or a :class:`~loopline.data.staging.StagedTable` (a Parquet
    #: file read a column at a time) from :func:`stage_source`.
    table: Any
    #: What was read, for lineage: a path, a URL (no password), a query, an object type.
    source: str
    #: csv, parquet, sql, pandas, polars or arrow.
    format: str
    #: Conversions worth telling (a decimal stored as float, a non-comma delimiter ...).
    notes: list[str] = field(default_factory=list)


def read_source(
    source: Any = None,
    *,
    sql: str | None = None,
    format: str | None = None,
    dtypes: Mapping[str, str] | None = None,
    delimiter: str | None = None,
    null_values: Sequence[str] | None = None,
    encoding: str | None = None,
    s3: S3Settings | None = None,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> Ingested:
    """Read ``source`` (see the module docstring) into a canonical in-memory table.

    ``dtypes`` forces the logical dtype of some columns (``{"zip": "string"}``);
    ``delimiter``, ``null_values``, ``encoding`` and ``max_field_bytes`` (the longest
    quoted field accepted, in bytes) apply to CSV text.
    """
    from loopline.data.staging import collect

    options = _check_options(source, sql, format, dtypes)
    if options is not None:
        return options
    if isinstance(source, str | os.PathLike):
        with tempfiles.directory("loopline-read-") as tmp:
            src = open_file(
                os.fspath(source),
                Path(tmp),
                format=format,
                dtypes=dtypes,
                delimiter=delimiter,
                null_values=null_values,
                encoding=encoding,
                s3=s3,
                max_field_bytes=max_field_bytes,
            )
            table = collect(src)
        return Ingested(table=table, source=src.source, format=src.format, notes=src.notes)
    return _read_object(source, sql, dtypes)


def stage_source(
    source: Any,
    directory: Path,
    *,
    sql: str | None = None,
    format: str | None = None,
    dtypes: Mapping[str, str] | None = None,
    delimiter: str | None = None,
    null_values: Sequence[str] | None = None,
    encoding: str | None = None,
    s3: S3Settings | None = None,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> Ingested:
    """Like :func:`read_source`, but a file is streamed into a Parquet file in
    ``directory`` (which must outlive the result): ``table`` is then a StagedTable."""
    from loopline.data.staging import stage

    options = _check_options(source, sql, format, dtypes)
    if options is not None:
        return options
    if isinstance(source, str | os.PathLike):
        src = open_file(
            os.fspath(source),
            directory,
            format=format,
            dtypes=dtypes,
            delimiter=delimiter,
            null_values=null_values,
            encoding=encoding,
            s3=s3,
            max_field_bytes=max_field_bytes,
        )
        staged = stage(src, directory)
        return Ingested(table=staged, source=src.source, format=src.format, notes=src.notes)
    return _read_object(source, sql, dtypes)


def _check_options(
    source: Any, sql: str | None, format: str | None, dtypes: Mapping[str, str] | None
) -> Ingested | None:
    """Check the arguments; the result of a SQL query (which is read here), else None."""
    if format is not None and format not in FORMATS:
        raise DataArgumentError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if dtypes:
        _check_dtypes(dtypes)
    if sql is not None:
        if source is None:
            raise DataArgumentError(
                "sql= needs a database: pass its SQLAlchemy URL (or an engine) as the source",
                hint="e.g. add('sales', 'postgresql+psycopg://u:pw@host/db', sql='SELECT ...'); "
                "CLI: loopline data add sales --sql 'SELECT ...' --db URL",
            )
        table, label = _read_sql(sql, source)
        return _finish(table, label, "sql", [], dtypes)
    if source is None:
        raise DataArgumentError(
            "no source: give a file path or URL, a DataFrame or a pyarrow Table "
            "(or sql= with a database URL)"
        )
    return None


def _read_object(source: Any, sql: str | None, dtypes: Mapping[str, str] | None) -> Ingested:
    kind = _object_kind(source)
    if kind == "pandas":
        table, notes = _from_pandas(source)
        return _finish(table, f"pandas.DataFrame ({len(source):,} rows)", kind, notes, dtypes)
    if kind == "polars":
        table = source.to_arrow()
        return _finish(table, f"polars.DataFrame ({table.num_rows:,} rows)", kind, [], dtypes)
    if kind == "arrow":
        import pyarrow as pa

        table = source if isinstance(source, pa.Table) else pa.Table.from_batches([source])
        return _finish(table, f"pyarrow.Table ({table.num_rows:,} rows)", kind, [], dtypes)
    raise DataArgumentError(
        f"cannot read a {type(source).__module__}.{type(source).__qualname__} as a dataset",
        hint="Give a file path or URL (CSV, Parquet), a pandas or polars DataFrame, "
        "a pyarrow Table, or sql= with a database URL",
    )


def _object_kind(obj: object) -> str | None:
    for cls in type(obj).__mro__:
        top = cls.__module__.split(".", 1)[0]
        if top == "pandas" and cls.__name__ == "DataFrame":
            return "pandas"
        if top == "polars" and cls.__name__ == "DataFrame":
            return "polars"
        if top == "polars" and cls.__name__ == "LazyFrame":
            raise DataArgumentError(
                "a polars LazyFrame is a query, not data", hint="Pass lazy_frame.collect()"
            )
        if top == "pyarrow" and cls.__name__ in ("Table", "RecordBatch"):
            return "arrow"
    return None


def _check_dtypes(dtypes: Mapping[str, str]) -> None:
    from loopline.data.schema import arrow_type_for

    for name, dtype in dtypes.items():
        if arrow_type_for(dtype) is None or dtype == "binary":
            raise DataArgumentError(
                f"dtype {dtype!r} for column {name!r} is not one of "
                "string, integer, float, boolean, datetime, date"
            )


def _finish(
    table: Any, label: str, fmt: str, notes: list[str], dtypes: Mapping[str, str] | None
) -> Ingested:
    _check_shape(table.column_names, table.num_rows, label)
    if dtypes:
        forced = Dtypes(dtypes, table.column_names, label)
        table = forced(table, 0)
        forced.check()
    canonical, more = normalise_table(table, source=label)
    return Ingested(table=canonical, source=label, format=fmt, notes=notes + more)


def _check_shape(names: Sequence[str], rows: int | None, label: str) -> None:
    csvfile.check_column_names(names, label)
    if not names:
        raise EmptySourceError("has no columns", source=label)
    if rows == 0:
        raise EmptySourceError(f"has no rows (columns: {', '.join(names[:8])})", source=label)


class Dtypes:
    """Forced dtypes applied to tables or batches of a typed source (Parquet, Arrow,
    pandas, SQL). Text columns are read as the dtype (values that are not of it are
    counted over all batches); other columns are cast without loss. :meth:`check` raises
    what was found, column by column."""

    def __init__(self, dtypes: Mapping[str, str], names: Sequence[str], label: str) -> None:
        missing = sorted(set(dtypes) - set(names))
        if missing:
            raise DataArgumentError(
                f"{label}: dtypes names no column {missing[0]!r}; the columns are "
                f"{', '.join(names)}"
            )
        self._dtypes = dict(dtypes)
        self._label = label
        self._text: dict[str, TextCoercion] = {}
        self._lost: dict[str, list[Any]] = {}  # column -> [count, examples]
        self._failing = False

    def __call__(self, table: Any, offset: int) -> Any:
        """``table`` (a Table or RecordBatch) with the dtypes applied, or None once a
        value is known to be refused (:meth:`check` says which)."""
        import pyarrow as pa

        from loopline.data.schema import arrow_type_for

        columns = []
        for name, col in zip(table.column_names, table.columns, strict=True):
            dtype = self._dtypes.get(name)
            if dtype is not None:
                if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                    coercion = self._text.setdefault(name, TextCoercion(name, dtype, self._label))
                    col = coercion(col, offset)
                else:
                    col = self._cast(col, name, dtype, arrow_type_for(dtype), offset)
                self._failing = self._failing or col is None
            columns.append(col)
        if self._failing:
            return None
        build = pa.Table if isinstance(table, pa.Table) else pa.RecordBatch
        return build.from_arrays(columns, names=table.column_names)

    def _cast(self, col: Any, name: str, dtype: str, target: Any, offset: int) -> Any:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            cast = col.cast(target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise MixedTypesError(
                f"column {name!r} ({col.type}) cannot be read as {dtype}: "
                f"{str(exc).splitlines()[0]}",
                source=self._label,
                column=name,
                expected=dtype,
                examples=[],
                count=0,
            ) from exc
        if dtype == "date" and pa.types.is_timestamp(col.type):
            # Refuse to read timestamps with a time of day as dates (the time would be lost).
            back = cast.cast(col.type)
            lost = pc.fill_null(pc.not_equal(back, col), False).to_numpy(zero_copy_only=False)
            if lost.any():
                found = self._lost.setdefault(name, [0, []])
                found[0] += int(lost.sum())
                wanted = MAX_EXAMPLES - len(found[1])
                for r in np.flatnonzero(lost)[:wanted].tolist():
                    found[1].append((offset + r, None, col[r].as_py()))
                return None
        return cast

    def check(self) -> None:
        for name in self._dtypes:
            if name in self._text:
                self._text[name].check(None)
            if name in self._lost:
                count, examples = self._lost[name]
                raise MixedTypesError(
                    f"column {name!r} cannot be read as date: {count:,} timestamps have a "
                    f"time of day, e.g. row {examples[0][0]}: {examples[0][2]}",
                    source=self._label,
                    column=name,
                    expected="date",
                    examples=examples,
                    count=count,
                    hint="Keep the column as datetime, or truncate the timestamps first",
                )


# -- files ------------------------------------------------------------------------------------


def open_file(
    name: str,
    directory: Path,
    *,
    format: str | None = None,
    dtypes: Mapping[str, str] | None = None,
    delimiter: str | None = None,
    null_values: Sequence[str] | None = None,
    encoding: str | None = None,
    s3: S3Settings | None = None,
    max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
) -> BatchSource:
    """A file path or URL as a batch source (a URL is downloaded into ``directory``)."""
    import pyarrow as pa

    is_url = "://" in name and not name.startswith("file://")
    if name.startswith("file://"):
        name = name[len("file://") :]
    if is_url:
        # No password, and no query string (it may hold a signature or a token).
        label = redact_url(name).split("?", 1)[0]
        path = _download(name, label, s3, directory)
    else:
        path = Path(name).expanduser().resolve()
        label = str(path)
        _check_local(path)
    if path.stat().st_size == 0:
        raise EmptySourceError(
            "is empty (0 bytes)",
            source=label,
            hint="Check the path, and that the file was completely written",
        )
    codec = csvfile.compression_for(name)

    def opener() -> Any:
        return pa.input_stream(str(path), compression=codec)

    if codec is not None:
        try:
            with opener() as f:
                f.read(_SNIFF)
        except (pa.ArrowInvalid, OSError) as exc:
            raise FormatMismatchError(
                f"is not valid {codec} data ({str(exc).splitlines()[0]})",
                source=label,
                hint="Check the file, or remove the compression extension from its name",
            ) from exc
        base = name[: name.lower().rfind(".")]
    else:
        base = name
    fmt = format or _format_for(base)
    notes: list[str] = []
    if fmt is None:
        with opener() as f:
            head = f.read(4)
        fmt = "parquet" if head == b"PAR1" else "csv"
        notes.append(f"no known file extension; read as {fmt.upper()} (from its content)")
    if fmt == "parquet":
        if codec is not None:
            plain = directory / "source.parquet"
            with opener() as f, plain.open("wb") as out:
                _copy(f, out, label)
            path = plain
        return ParquetSource(path, label, dtypes=dtypes, notes=notes)
    if delimiter is None and base.lower().endswith(".tsv"):
        delimiter = "\t"
    return csvfile.CsvSource(
        opener,
        label,
        delimiter=delimiter,
        dtypes=dtypes,
        null_values=null_values,
        encoding=encoding,
        max_field_bytes=max_field_bytes,
        notes=notes,
    )


def _format_for(name: str) -> str | None:
    lower = name.lower()
    for ext, fmt in _EXTENSIONS.items():
        if lower.endswith(ext):
            return fmt
    return None


def _check_local(path: Path) -> None:
    if not path.exists():
        raise SourceNotFoundError(
            "no such file",
            source=str(path),
            hint="Check the path (relative paths start at the working directory)",
        )
    if path.is_dir():
        raise DataArgumentError(
            f"{path} is a folder; give the path of one CSV or Parquet file",
        )
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise IngestError(f"cannot be read ({exc.strerror or exc})", source=str(path)) from exc


def _copy(src: Any, dst: Any, label: str) -> None:
    try:
        while chunk := src.read(_COPY_BYTES):
            dst.write(chunk)
    except OSError as exc:
        raise IngestError(f"cannot be read ({exc})", source=label) from exc


def storage_options(url: str, s3: S3Settings | None) -> dict[str, Any]:
    """fsspec options for ``url``: the project's S3 settings for ``s3://`` URLs."""
    if not url.startswith(("s3://", "s3a://")) or s3 is None:
        return {}
    opts: dict[str, Any] = {}
    if s3.endpoint_url:
        opts["endpoint_url"] = s3.endpoint_url
    if s3.access_key_id:
        opts["key"] = s3.access_key_id
    if s3.secret_access_key:
        opts["secret"] = s3.secret_access_key
    if s3.session_token:
        opts["token"] = s3.session_token
    if s3.region:
        opts["client_kwargs"] = {"region_name": s3.region}
    return opts


def _download(url: str, label: str, s3: S3Settings | None, directory: Path) -> Path:
    """Copy the object at ``url`` into ``directory`` (streamed); its local path."""
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec comes with the s3 extra
        raise IngestError(
            "reading URLs needs fsspec",
            source=label,
            hint="Install it with: pip install 'loopline[s3]'",
        ) from exc
    suffix = "".join(Path(url.split("?", 1)[0]).suffixes[-2:])
    target = directory / f"download{suffix}"
    try:
        with fsspec.open(url, "rb", **storage_options(url, s3)) as f, target.open("wb") as out:
            shutil.copyfileobj(f, out, _COPY_BYTES)
    except FileNotFoundError as exc:
        raise SourceNotFoundError(
            "no such object", source=label, hint="Check the URL (bucket, key, extension)"
        ) from exc
    except (ImportError, ValueError) as exc:
        raise IngestError(
            f"cannot open this URL ({exc})",
            source=label,
            hint="Install the fsspec implementation of its scheme (s3fs for s3://, gcsfs "
            "for gs://)",
        ) from exc
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IngestError(
            f"cannot be read: {reason}",
            source=label,
            hint="Check the URL, the credentials and the endpoint ([s3] in loopline.toml)",
        ) from exc
    return target


class ParquetSource:
    """A Parquet file read as canonical record batches (a BatchSource)."""

    format = "parquet"

    def __init__(
        self,
        path: Path,
        label: str,
        *,
        dtypes: Mapping[str, str] | None = None,
        notes: Sequence[str] = (),
    ) -> None:
        self.path = path
        self.source = label
        self._base_notes = list(notes)
        self.notes = list(notes)
        self._dtypes = dict(dtypes or {})
        self._normalise = Normaliser(label)
        self._check_bytes()
        with self._open() as f:
            schema = f.schema_arrow
        self.names = list(schema.names)
        _check_shape(self.names, None, label)
        if self._dtypes:
            Dtypes(self._dtypes, self.names, label)  # names the columns it does not know

    def batches(self) -> Iterator[Any]:
        import pyarrow as pa

        self._normalise.reset()
        forced = Dtypes(self._dtypes, self.names, self.source) if self._dtypes else None
        rows = 0
        with self._open() as f:
            batches = f.iter_batches(batch_size=PARQUET_BATCH_ROWS)
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except (pa.ArrowInvalid, OSError) as exc:
                    raise self._damaged(exc) from exc
                n = batch.num_rows
                if forced is not None:
                    batch = forced(batch, rows)
                if batch is not None:
                    yield self._normalise(batch.replace_schema_metadata(None))
                rows += n
        _check_shape(self.names, rows, self.source)
        if forced is not None:
            forced.check()
        self.notes = self._base_notes + self._normalise.notes

    def _check_bytes(self) -> None:
        with self.path.open("rb") as f:
            head = f.read(_SNIFF)
            f.seek(max(0, self.path.stat().st_size - 4))
            tail = f.read(4)
        if head[:4] != b"PAR1" or tail != b"PAR1":
            csvfile.check_magic(head, self.source, "parquet")
            looks = _looks_like_text(head)
            raise FormatMismatchError(
                "is not a Parquet file: "
                + (
                    "it does not start and end with the magic bytes PAR1"
                    if head[:4] != b"PAR1"
                    else "it ends without the magic bytes PAR1 (truncated?)"
                )
                + ("; it looks like text (CSV?)" if looks else ""),
                source=self.source,
                byte_offset=0,
                hint="Name a CSV file .csv, or check that the Parquet file was completely written",
            )

    def _open(self) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(str(self.path), memory_map=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise self._damaged(exc) from exc

    def _damaged(self, exc: BaseException) -> IngestError:
        return IngestError(
            f"is a damaged Parquet file: {str(exc).splitlines()[0]}", source=self.source
        )


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4  # a character cut at the end of the sample
    return True


# -- SQL --------------------------------------------------------------------------------------


def _read_sql(query: str, target: Any) -> tuple[Any, str]:
    import pyarrow as pa
    import sqlalchemy as sa

    shown = query if len(query) <= _SQL_LABEL_MAX else query[: _SQL_LABEL_MAX - 3] + "..."
    own = None
    if isinstance(target, str | os.PathLike):
        url = os.fspath(target)
        label = f"sql {shown!r} on {redact_url(url)}"
        try:
            own = sa.create_engine(url)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
            raise DataArgumentError(
                f"{redact_url(url)!r} is not a database URL loopline can open ({exc})",
                hint="Use a SQLAlchemy URL such as sqlite:///file.db or "
                "postgresql+psycopg://user:password@host/db",
            ) from exc
        engine: Any = own
    elif isinstance(target, sa.Engine | sa.Connection):
        engine = target
        where = target.engine.url if isinstance(target, sa.Connection) else target.url
        label = f"sql {shown!r} on {where.render_as_string(hide_password=True)}"
    else:
        raise DataArgumentError(
            f"sql= needs a database URL, engine or connection as the source, "
            f"not a {type(target).__name__}"
        )
    try:
        if isinstance(engine, sa.Connection):
            names, rows = _run_query(engine, query, label)
        else:
            with engine.connect() as conn:
                names, rows = _run_query(conn, query, label)
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise IngestError(
            f"the query failed: {reason}",
            source=label,
            hint="Check the query and the database URL",
        ) from exc
    finally:
        if own is not None:
            own.dispose()
    csvfile.check_column_names(names, label)
    if not rows:
        raise EmptySourceError("returned no rows", source=label)
    columns = list(zip(*rows, strict=True))
    arrays = [array_from_values(n, list(c), label) for n, c in zip(names, columns, strict=True)]
    return pa.Table.from_arrays(arrays, names=names), label


def _run_query(conn: Any, query: str, label: str) -> tuple[list[str], list[Any]]:
    # exec_driver_sql: the query goes to the driver as written (no ':name' parameters).
    result = conn.exec_driver_sql(query)
    if not result.returns_rows:
        raise IngestError("returns no table (is it a SELECT?)", source=label)
    keys = result.keys()
    names = [str(k) for k in keys]
    return names, list(result.fetchall())


# -- Python values ----------------------------------------------------------------------------


def array_from_values(name: str, values: Any, label: str, *, from_pandas: bool = False) -> Any:
    """An Arrow array of Python values; mixed kinds raise MixedTypesError naming rows."""
    import pyarrow as pa

    try:
        return pa.array(values, from_pandas=from_pandas)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise _mixed_values(name, list(values), label, exc) from exc


def _kind_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, bool):
        return "booleans"
    if isinstance(value, int | float | decimal.Decimal):
        return "numbers"
    if isinstance(value, str):
        return "text"
    if isinstance(value, bytes | bytearray):
        return "bytes"
    if isinstance(value, dt.datetime):
        return "timestamps"
    if isinstance(value, dt.date):
        return "dates"
    top = type(value).__module__.split(".", 1)[0]
    if top == "numpy":
        import numpy as np

        if isinstance(value, np.bool_):
            return "booleans"
        if isinstance(value, np.number):
            return None if isinstance(value, np.floating) and np.isnan(value) else "numbers"
        if isinstance(value, np.datetime64):
            return "timestamps"
    if top == "pandas" and type(value).__name__ == "Timestamp":
        return "timestamps"
    return type(value).__name__


def _mixed_values(name: str, values: list[Any], label: str, exc: Exception) -> IngestError:
    kinds = [_kind_of(v) for v in values]
    counts = Counter(k for k in kinds if k is not None)
    if len(counts) <= 1:
        return IngestError(
            f"column {name!r} cannot be stored: {str(exc).splitlines()[0]}",
            source=label,
            column=name,
        )
    majority, hits = counts.most_common(1)[0]
    total = sum(counts.values())
    bad = [i for i, k in enumerate(kinds) if k is not None and k != majority]
    examples: list[tuple[int, int | None, object]] = [
        (i, None, values[i]) for i in bad[:MAX_EXAMPLES]
    ]
    where = ", ".join(f"row {i}: {v!r} ({kinds[i]})" for i, _, v in examples)
    other = ", ".join(f"{k} ({n:,})" for k, n in counts.most_common()[1:])
    return MixedTypesError(
        f"column {name!r} mixes {majority} ({hits:,} of {total:,} values) with {other}: {where}",
        source=label,
        column=name,
        expected=majority,
        examples=examples,
        count=len(bad),
        hint="Make the column hold one kind of value (convert it, or set bad values to "
        "None), or read it as text with dtypes={" + repr(name) + ": 'string'} after "
        "converting it with .astype(str)",
    )


def _from_pandas(df: Any) -> tuple[Any, list[str]]:
    import pyarrow as pa

    label = f"pandas.DataFrame ({len(df):,} rows)"
    notes: list[str] = []
    named = [n for n in df.index.names if n is not None]
    if named:
        df = df.reset_index(level=named)
        notes.append(f"index level(s) {', '.join(map(str, named))} stored as columns")
    names = [c if isinstance(c, str) else _column_label(c) for c in df.columns]
    if names != list(df.columns):
        renamed = [str(c) for c, n in zip(df.columns, names, strict=True) if c != n]
        notes.append(f"column names {', '.join(renamed[:5])} stored as text")
    csvfile.check_column_names(names, label)
    df = df.set_axis(names, axis=1)
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, ValueError, TypeError) as exc:
        for n in names:
            series = df[n]
            if series.dtype == object:
                array_from_values(n, series.tolist(), label, from_pandas=True)
        raise IngestError(
            f"cannot be converted to a table: {str(exc).splitlines()[0]}", source=label
        ) from exc
    return table.replace_schema_metadata(None), notes


def _column_label(name: Any) -> str:
    if isinstance(name, tuple):
        return ".".join(str(part) for part in name)
    return str(name)
