"""Versioned datasets over a project's stores: add, get, load, validate, profile, split.

A dataset is a name with a schema; each distinct content added under it is a version
(1, 2, 3 ...), named by the sha256 of the canonical content. Adding a version:

1. read the source into the canonical table (:mod:`loopline.data.ingest`) and hash it; a
   file is streamed into a Parquet file in a temporary folder and everything after works a
   column at a time on that file (:mod:`loopline.data.staging`), so memory holds a block
   of the file or one column, never the whole table;
2. if the dataset already holds that digest, return that version (``created=False``);
3. validate against the dataset's schema (or infer the schema, for a new dataset); a
   report with errors refuses the add with :class:`ValidationFailedError`, unless
   ``allow_invalid=True``;
4. store the Parquet data and the profile in the content-addressed store (idempotent);
5. record the version in one write transaction that locks the dataset's row; unique
   constraints on (dataset, digest) and (dataset, version) catch what a race slips past,
   and the transaction is retried, so concurrent adds of the same content make one
   version and version numbers never collide.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.data.csvscan import DEFAULT_MAX_FIELD_BYTES
from loopline.data.errors import (
    DataArgumentError,
    DataError,
    DatasetNotFoundError,
    DatasetVersionNotFoundError,
    ValidationFailedError,
)
from loopline.data.schema import DatasetSchema
from loopline.data.splits import Split, SplitRecord, split_from_record, split_record
from loopline.data.validate import ValidationReport
from loopline.store import tempfiles
from loopline.store.db.types import new_id, to_utc, unique_violation

if TYPE_CHECKING:
    import sqlalchemy as sa

    from loopline.data.ingest import Ingested
    from loopline.data.profile import Profile
    from loopline.store.stores import Stores

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: How many findings a version keeps in its validation summary.
MAX_STORED_FINDINGS = 50
_ATTEMPTS = 20

Progress = Callable[[str], None]


def check_name(name: str) -> str:
    """``name`` if it is a valid dataset name, else DataArgumentError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise DataArgumentError(
            f"invalid dataset name {name!r}: use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``"churn@3"`` -> ("churn", "3"); ``"churn"`` -> ("churn", None)."""
    name, sep, version = ref.rpartition("@")
    if not sep:
        return ref, None
    if not version:
        raise DataArgumentError(
            f"{ref!r} names no version after '@'; write NAME@VERSION, like churn@3"
        )
    return name, version


@dataclass(frozen=True)
class DatasetVersion:
    """One stored content of a dataset."""

    name: str
    version: int
    #: sha256 of the canonical content (see :mod:`loopline.data.content`).
    digest: str
    parquet_digest: str
    profile_digest: str
    rows: int
    columns: int
    #: Size of the stored Parquet data.
    bytes: int
    source: str
    created_at: datetime
    created_by: str
    #: Summary of the validation at add time: ok, errors, warnings, findings, notes.
    validation: dict[str, Any]
    #: True when the call that returned it created it.
    created: bool = False
    id: int = 0
    #: What this version holds (``data add -d``); the dataset has its own description.
    description: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "digest": self.digest,
            "parquet_digest": self.parquet_digest,
            "profile_digest": self.profile_digest,
            "rows": self.rows,
            "columns": self.columns,
            "bytes": self.bytes,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "validation": self.validation,
            "created": self.created,
            "description": self.description,
        }


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as ``data ls`` shows it."""

    name: str
    description: str | None
    schema: DatasetSchema
    current_version: int | None
    versions: int
    rows: int | None
    columns: int | None
    created_at: datetime
    updated_at: datetime
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "current_version": self.current_version,
            "versions": self.versions,
            "rows": self.rows,
            "columns": self.columns,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "created_by": self.created_by,
        }


class _SchemaMoved(Exception):
    """The dataset's stored schema is not the one the data was validated against."""

    def __init__(self, schema: DatasetSchema) -> None:
        self.schema = schema


class Datasets:
    """Datasets of one project: ``Datasets(stores)``."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores
        self._db = stores.db
        self._cas = stores.cas

    # -- adding -------------------------------------------------------------------------------

    def add(
        self,
        name: str,
        source: Any = None,
        *,
        sql: str | None = None,
        description: str | None = None,
        allow_invalid: bool = False,
        format: str | None = None,
        dtypes: Mapping[str, str] | None = None,
        delimiter: str | None = None,
        null_values: Sequence[str] | None = None,
        encoding: str | None = None,
        max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
        check_duplicates: bool | None = None,
        on_progress: Progress | None = None,
    ) -> DatasetVersion:
        """Add the content of ``source`` as a version of dataset ``name``.

        ``source`` is a path or URL (CSV, Parquet), a pandas/polars DataFrame, a pyarrow
        Table, or, with ``sql=``, a database URL or engine. Adding content the dataset
        already holds returns that version with ``created=False``. Data that fails
        validation raises :class:`ValidationFailedError` (nothing is stored) unless
        ``allow_invalid``. See :func:`loopline.data.ingest.read_source` for the options.
        """

        check_name(name)
        progress = on_progress or _no_progress
        progress("reading")
        options = (format, dtypes, delimiter, null_values, encoding, max_field_bytes)
        with self._read(source, sql, *options) as ingested:
            return self.add_ingested(
                name,
                ingested,
                description=description,
                allow_invalid=allow_invalid,
                check_duplicates=check_duplicates,
                on_progress=progress,
            )

    @contextmanager
    def _read(
        self,
        source: Any,
        sql: str | None,
        format: str | None,
        dtypes: Mapping[str, str] | None,
        delimiter: str | None,
        null_values: Sequence[str] | None,
        encoding: str | None,
        max_field_bytes: int,
    ) -> Iterator[Ingested]:
        """A source read with the project's S3 settings (for ``add`` and ``validate``); a
        file is staged in a temporary folder that lasts as long as the context."""
        from loopline.data.ingest import stage_source

        with tempfiles.directory("loopline-data-") as tmp:
            yield stage_source(
                source,
                tmp,
                sql=sql,
                format=format,
                dtypes=dtypes,
                delimiter=delimiter,
                null_values=null_values,
                encoding=encoding,
                s3=self._stores.settings.s3,
                max_field_bytes=max_field_bytes,
            )

    def add_ingested(
        self,
        name: str,
        ingested: Ingested,
        *,
        description: str | None = None,
        allow_invalid: bool = False,
        check_duplicates: bool | None = None,
        on_progress: Progress | None = None,
    ) -> DatasetVersion:
        """Add an already read source (see :meth:`add`)."""
        from loopline.data.content import table_digest
        from loopline.data.profile import compute_profile
        from loopline.data.schema import infer_schema
        from loopline.data.staging import release_memory
        from loopline.data.validate import validate_table

        check_name(name)
        progress = on_progress or _no_progress
        table = ingested.table
        progress("hashing")
        digest = table_digest(table)
        stored_schema, existing = self._lookup(name, digest)
        if existing is not None and description in (None, existing[1]):
            return self._repaired(existing[0], table)

        release_memory()
        progress("profiling")
        profile = compute_profile(table)
        schema = stored_schema if stored_schema is not None else infer_schema(table, profile)
        release_memory()
        progress("validating")
        report = validate_table(table, schema, dataset=name, check_duplicates=check_duplicates)
        self._refuse_if_invalid(name, report, allow_invalid, ingested.source)
        release_memory()

        progress("storing")
        parquet_digest = self._put_parquet(table)
        size = self._cas.store.stat(self._cas.key_for(parquet_digest)).size
        profile_digest = self._cas.put(profile.to_json())
        summary = _summary(report, ingested.notes, inferred=stored_schema is None)

        progress("recording")
        values = {
            "digest": digest,
            "parquet_digest": parquet_digest,
            "profile_digest": profile_digest,
            "n_rows": table.num_rows,
            "n_columns": table.num_columns,
            "n_bytes": size,
            "source": ingested.source,
        }
        for _attempt in range(_ATTEMPTS):
            record = functools.partial(
                self._record,
                name=name,
                schema=schema,
                description=description,
                values={**values, "validation": summary},
            )
            try:
                return self._db.run_write(record)
            except _SchemaMoved as moved:
                # Another process created the dataset (with its own schema) meanwhile.
                schema = moved.schema
                report = validate_table(
                    table, schema, dataset=name, check_duplicates=check_duplicates
                )
                self._refuse_if_invalid(name, report, allow_invalid, ingested.source)
                summary = _summary(report, ingested.notes, inferred=False)
            except unique_violation() as exc:
                if "ll_dataset" not in str(exc):
                    raise
                time.sleep(0.01 + random.random() * 0.05)
        raise DataError(
            f"Could not record a version of dataset {name!r} after {_ATTEMPTS} attempts: "
            "other processes kept adding versions at the same time",
            hint="Retry the add",
        )

    def _repaired(self, version: DatasetVersion, table: Any) -> DatasetVersion:
        """``version`` (which holds ``table``'s content) with its blobs intact: adding the
        same data again rewrites a Parquet file or profile that went missing or corrupt.

        On a local store the blobs are re-hashed (a read); on a remote one only their
        presence is checked (a corrupt one is removed by the read that finds it).
        """
        from loopline.data.profile import compute_profile
        from loopline.errors import IntegrityError
        from loopline.store.errors import ObjectNotFoundError

        def intact(digest: str) -> bool:
            try:
                if getattr(self._cas.store, "remote", False):
                    return self._cas.exists(digest)
                self._cas.verify(digest)
            except (IntegrityError, ObjectNotFoundError):
                return False
            return True

        changes: dict[str, Any] = {}
        if not intact(version.parquet_digest):
            parquet = self._put_parquet(table)
            if parquet != version.parquet_digest:
                changes["parquet_digest"] = parquet
                changes["n_bytes"] = self._cas.store.stat(self._cas.key_for(parquet)).size
        if not intact(version.profile_digest):
            profile = self._cas.put(compute_profile(table).to_json())
            if profile != version.profile_digest:
                changes["profile_digest"] = profile
        if not changes:
            return version
        import sqlalchemy as sa

        from loopline.data.tables import dataset_versions as v
        from loopline.store.db.events import record_event

        def fn(conn: sa.Connection) -> None:
            conn.execute(sa.update(v).where(v.c.id == version.id).values(**changes))
            record_event(conn, "dataset.repair", version.ref, dict(changes))

        self._db.run_write(fn)
        return dataclasses.replace(
            version,
            parquet_digest=changes.get("parquet_digest", version.parquet_digest),
            profile_digest=changes.get("profile_digest", version.profile_digest),
            bytes=changes.get("n_bytes", version.bytes),
        )

    def _put_parquet(self, table: Any) -> str:
        """Store the table's Parquet file: a staged one as it is, else written first."""
        from loopline.data.staging import StagedTable, write_parquet

        if isinstance(table, StagedTable):
            return self._cas.put_file(table.path)
        with tempfiles.directory("loopline-data-") as tmp:
            path = Path(tmp) / "table.parquet"
            write_parquet(table, path)
            return self._cas.put_file(path)

    def _refuse_if_invalid(
        self, name: str, report: ValidationReport, allow_invalid: bool, source: str
    ) -> None:
        if report.ok or allow_invalid:
            return
        first = report.errors[0]
        n = len(report.errors)
        raise ValidationFailedError(
            f"Dataset {name!r}: the data from {source} breaks its schema "
            f"({n} error{'s' if n > 1 else ''}): "
            + "; ".join(f.message for f in report.errors[:3])
            + (f"; and {n - 3} more" if n > 3 else "")
            + "; nothing was stored",
            dataset=name,
            report=report,
            hint=f"See every finding with: loopline data validate {name} SOURCE; "
            f"add it anyway with --force (allow_invalid=True)"
            + (
                f"; column {first.column!r} is the first problem"
                if first.column is not None and n > 3
                else ""
            ),
        )

    def _lookup(
        self, name: str, digest: str
    ) -> tuple[DatasetSchema | None, tuple[DatasetVersion, str | None] | None]:
        """The stored schema and the version holding ``digest`` (with the description)."""
        import sqlalchemy as sa

        from loopline.data.tables import dataset_versions as v
        from loopline.data.tables import datasets as d

        with self._db.read() as conn:
            row = conn.execute(sa.select(d).where(d.c.name == name)).first()
            if row is None:
                return None, None
            schema = DatasetSchema.from_dict(row.schema)
            found = conn.execute(
                sa.select(v).where(v.c.dataset_id == row.id, v.c.digest == digest)
            ).first()
        if found is None:
            return schema, None
        version = _version(name, found)
        return schema, (version, version.description)

    def _record(
        self,
        conn: sa.Connection,
        *,
        name: str,
        schema: DatasetSchema,
        description: str | None,
        values: dict[str, Any],
    ) -> DatasetVersion:
        import sqlalchemy as sa

        from loopline.data.tables import dataset_versions as v
        from loopline.data.tables import datasets as d
        from loopline.store.db.events import current_actor, record_event

        now = datetime.now(UTC)
        actor = current_actor()
        row = conn.execute(sa.select(d).where(d.c.name == name).with_for_update()).first()
        if row is None:
            result = conn.execute(
                d.insert().values(
                    name=name,
                    description=description,
                    schema=schema.to_dict(),
                    current_version=None,
                    created_at=now,
                    updated_at=now,
                    created_by=actor,
                )
            )
            dataset_id = new_id(result)
        else:
            stored = DatasetSchema.from_dict(row.schema)
            if stored.fingerprint() != schema.fingerprint():
                raise _SchemaMoved(stored)
            dataset_id = int(row.id)
            if description is not None and row.description is None:
                conn.execute(d.update().where(d.c.id == dataset_id).values(description=description))
        found = conn.execute(
            sa.select(v).where(v.c.dataset_id == dataset_id, v.c.digest == values["digest"])
        ).first()
        if found is not None:
            if description is not None and description != found.description:
                # The same content added again with a description: it describes that version.
                conn.execute(v.update().where(v.c.id == found.id).values(description=description))
                return dataclasses.replace(_version(name, found), description=description)
            return _version(name, found)
        latest = conn.execute(
            sa.select(sa.func.max(v.c.version)).where(v.c.dataset_id == dataset_id)
        ).scalar()
        number = int(latest or 0) + 1
        result = conn.execute(
            v.insert().values(
                dataset_id=dataset_id,
                version=number,
                created_at=now,
                created_by=actor,
                description=description,
                **values,
            )
        )
        conn.execute(
            d.update().where(d.c.id == dataset_id).values(current_version=number, updated_at=now)
        )
        record_event(
            conn,
            "dataset.add",
            f"{name}@{number}",
            {"digest": values["digest"], "rows": values["n_rows"], "source": values["source"]},
            actor=actor,
        )
        return DatasetVersion(
            name=name,
            version=number,
            created_at=now,
            created_by=actor,
            digest=values["digest"],
            parquet_digest=values["parquet_digest"],
            profile_digest=values["profile_digest"],
            rows=values["n_rows"],
            columns=values["n_columns"],
            bytes=values["n_bytes"],
            source=values["source"],
            validation=values["validation"],
            created=True,
            id=new_id(result),
            description=description,
        )

    # -- reading ------------------------------------------------------------------------------

    def get(self, name: str, version: int | str | None = None) -> DatasetVersion:
        """A version of ``name``: a number, ``"latest"``/None, or a digest prefix (6+ hex)."""
        with self._db.read() as conn:
            return self._get(conn, name, version)

    def _get(self, conn: sa.Connection, name: str, version: int | str | None) -> DatasetVersion:
        import sqlalchemy as sa

        from loopline.data.tables import dataset_versions as v

        row = self._dataset_row(conn, name)
        query = sa.select(v).where(v.c.dataset_id == row.id)
        wanted: object = version
        if version is None or version == "latest":
            if row.current_version is None:
                raise DatasetVersionNotFoundError(name, "latest", [])
            query = query.where(v.c.version == row.current_version)
        elif isinstance(version, int) or (isinstance(version, str) and version.isdigit()):
            query = query.where(v.c.version == int(version))
            wanted = int(version)
        elif isinstance(version, str) and re.fullmatch(r"(sha256:)?[0-9a-f]{6,64}", version):
            prefix = version.removeprefix("sha256:")
            query = query.where(v.c.digest.like(prefix + "%"))
        else:
            raise DataArgumentError(
                f"{version!r} is not a version of dataset {name!r}: give a number, 'latest' "
                "or the first 6 or more characters of a digest"
            )
        found = conn.execute(query.order_by(v.c.version).limit(2)).all()
        if len(found) > 1:
            raise DataArgumentError(
                f"digest prefix {version!r} matches versions {found[0].version} and "
                f"{found[1].version} of dataset {name!r}; give more characters"
            )
        if not found:
            numbers = [
                int(x)
                for x in conn.execute(
                    sa.select(v.c.version).where(v.c.dataset_id == row.id).order_by(v.c.version)
                ).scalars()
            ]
            raise DatasetVersionNotFoundError(name, wanted, numbers)
        return _version(name, found[0])

    def _dataset_row(self, conn: sa.Connection, name: str) -> Any:
        import sqlalchemy as sa

        from loopline.data.tables import datasets as d

        row = conn.execute(sa.select(d).where(d.c.name == name)).first()
        if row is None:
            known = list(conn.execute(sa.select(d.c.name).order_by(d.c.name)).scalars())
            raise DatasetNotFoundError(name, known)
        return row

    def load_table(
        self,
        name: str,
        version: int | str | None = None,
        *,
        columns: Sequence[str] | None = None,
    ) -> Any:
        """The data of a version as a ``pyarrow.Table`` (verified against its digest)."""
        return self.table_of(self.get(name, version), columns=columns)

    def load(
        self,
        name: str,
        version: int | str | None = None,
        *,
        columns: Sequence[str] | None = None,
    ) -> Any:
        """The data of a version as a ``pandas.DataFrame``."""
        return self.load_table(name, version, columns=columns).to_pandas()

    def table_of(self, version: DatasetVersion, *, columns: Sequence[str] | None = None) -> Any:
        """The data of a :class:`DatasetVersion` as a ``pyarrow.Table``."""
        from loopline.store.objects.tables import get_table

        if columns is not None:
            unknown = [c for c in columns if c not in self._column_names(version)]
            if unknown:
                raise DataArgumentError(
                    f"dataset {version.ref} has no column {unknown[0]!r}; its columns are "
                    f"{', '.join(self._column_names(version))}"
                )
        return get_table(self._cas, version.parquet_digest, columns)

    def _column_names(self, version: DatasetVersion) -> builtins.list[str]:
        return self.profile(version.name, version.version).names

    def list(self) -> builtins.list[DatasetInfo]:
        """Every dataset, by name."""
        import sqlalchemy as sa

        from loopline.data.tables import dataset_versions as v
        from loopline.data.tables import datasets as d

        counts = (
            sa.select(v.c.dataset_id, sa.func.count().label("n"))
            .group_by(v.c.dataset_id)
            .subquery()
        )
        current = v.alias("cur")
        query = (
            sa.select(d, counts.c.n, current.c.n_rows, current.c.n_columns)
            .select_from(
                d.outerjoin(counts, counts.c.dataset_id == d.c.id).outerjoin(
                    current,
                    sa.and_(
                        current.c.dataset_id == d.c.id,
                        current.c.version == d.c.current_version,
                    ),
                )
            )
            .order_by(d.c.name)
        )
        with self._db.read() as conn:
            return [_info(row) for row in conn.execute(query)]

    def info(self, name: str) -> DatasetInfo:
        """One dataset as :meth:`list` shows it."""
        for item in self.list():
            if item.name == name:
                return item
        with self._db.read() as conn:
            self._dataset_row(conn, name)  # raises with the known names
        raise AssertionError("unreachable")

    def versions(self, name: str) -> builtins.list[DatasetVersion]:
        """Every version of ``name``, oldest first."""
        import sqlalchemy as sa

        from loopline.data.tables import dataset_versions as v

        with self._db.read() as conn:
            row = self._dataset_row(conn, name)
            rows = conn.execute(
                sa.select(v).where(v.c.dataset_id == row.id).order_by(v.c.version)
            ).all()
        return [_version(name, r) for r in rows]

    def schema(self, name: str) -> DatasetSchema:
        with self._db.read() as conn:
            return DatasetSchema.from_dict(self._dataset_row(conn, name).schema)

    def set_schema(self, name: str, schema: DatasetSchema) -> None:
        """Replace the schema later versions are validated against (e.g. edited ranges)."""
        from loopline.data.tables import datasets as d
        from loopline.store.db.events import record_event

        schema.check()

        def write(conn: sa.Connection) -> None:
            row = self._dataset_row(conn, name)
            conn.execute(d.update().where(d.c.id == row.id).values(schema=schema.to_dict()))
            record_event(conn, "dataset.schema", name, {"fingerprint": schema.fingerprint()})

        self._db.run_write(write)

    def profile(self, name: str, version: int | str | None = None) -> Profile:
        """The profile computed when the version was added."""
        from loopline.data.profile import Profile

        found = self.get(name, version)
        return Profile.from_json(self._cas.get(found.profile_digest))

    def validate(
        self,
        name: str,
        source: Any = None,
        *,
        sql: str | None = None,
        format: str | None = None,
        dtypes: Mapping[str, str] | None = None,
        delimiter: str | None = None,
        null_values: Sequence[str] | None = None,
        encoding: str | None = None,
        max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
        check_duplicates: bool | None = None,
        exclude: Sequence[str] = (),
    ) -> ValidationReport:
        """Validate ``source`` against the schema of ``name`` (without adding it).

        With no source, the current version is validated (useful after a forced add or
        a schema edit). ``exclude`` leaves columns out of the schema: the label column,
        to validate a production batch of features, which has none.
        """
        from loopline.data.validate import validate_table

        schema = self.schema(name)
        if exclude:
            try:
                schema = schema.without(exclude)
            except KeyError as exc:
                raise DataArgumentError(
                    f"Dataset {name!r}: {exc.args[0]}",
                    hint="Name a column of its schema to leave out",
                ) from None
        if source is None and sql is None:
            table = self.load_table(name)
            return validate_table(table, schema, dataset=name, check_duplicates=check_duplicates)
        options = (format, dtypes, delimiter, null_values, encoding, max_field_bytes)
        with self._read(source, sql, *options) as ingested:
            return validate_table(
                ingested.table, schema, dataset=name, check_duplicates=check_duplicates
            )

    # -- splits -------------------------------------------------------------------------------

    def split(
        self,
        name: str,
        version: int | str | None = None,
        *,
        fractions: Sequence[float] = (0.7, 0.15, 0.15),
        seed: int = 0,
        stratify: str | None = None,
    ) -> Split:
        """A deterministic train/validation/test split of a version, recorded with it.

        Asking again with the same parameters returns the recorded split (same rows).
        """
        import sqlalchemy as sa

        from loopline.data.splits import check_fractions, params_key, record_split
        from loopline.data.tables import dataset_splits as s

        fr = check_fractions(fractions)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise DataArgumentError(f"seed must be an integer >= 0, not {seed!r}")
        found = self.get(name, version)
        table = self.table_of(found)
        if stratify is not None and stratify not in table.column_names:
            raise DataArgumentError(
                f"cannot stratify on {stratify!r}: dataset {found.ref} has no such column; "
                f"its columns are {', '.join(table.column_names)}"
            )
        key = params_key(seed, fr, stratify)
        with self._db.read() as conn:
            row = conn.execute(
                sa.select(s).where(s.c.version_id == found.id, s.c.params_key == key)
            ).first()
        if row is not None:
            return split_from_record(self._cas, split_record(found, row), table)
        return record_split(self._stores, found, table, fr, seed, stratify, key)

    def splits(self, name: str, version: int | str | None = None) -> builtins.list[SplitRecord]:
        """Splits recorded from ``name`` (all versions, or one), oldest first."""
        import sqlalchemy as sa

        from loopline.data.tables import dataset_splits as s
        from loopline.data.tables import dataset_versions as v

        with self._db.read() as conn:
            row = self._dataset_row(conn, name)
            query = sa.select(v).where(v.c.dataset_id == row.id)
            if version is not None:
                query = query.where(v.c.id == self._get(conn, name, version).id)
            by_id = {int(r.id): _version(name, r) for r in conn.execute(query)}
            rows = conn.execute(
                sa.select(s).where(s.c.version_id.in_(list(by_id))).order_by(s.c.id)
            ).all()
        return [split_record(by_id[int(r.version_id)], r) for r in rows]

    def load_split(self, split_id: int) -> Split:
        """A recorded split by its id (``SplitRecord.id``), with the same rows as then."""
        import sqlalchemy as sa

        from loopline.data.tables import dataset_splits as s
        from loopline.data.tables import dataset_versions as v
        from loopline.data.tables import datasets as d

        with self._db.read() as conn:
            row = conn.execute(sa.select(s).where(s.c.id == split_id)).first()
            if row is None:
                raise DataArgumentError(
                    f"no split with id {split_id}",
                    hint="See the splits of a dataset with: loopline data show NAME",
                )
            version_row = conn.execute(sa.select(v).where(v.c.id == row.version_id)).one()
            name = conn.execute(
                sa.select(d.c.name).where(d.c.id == version_row.dataset_id)
            ).scalar_one()
        found = _version(name, version_row)
        return split_from_record(self._cas, split_record(found, row), self.table_of(found))


def _no_progress(_stage: str) -> None:
    return None


def _version(name: str, row: Any) -> DatasetVersion:
    mapping = row._mapping
    return DatasetVersion(
        name=name,
        version=int(mapping["version"]),
        digest=mapping["digest"],
        parquet_digest=mapping["parquet_digest"],
        profile_digest=mapping["profile_digest"],
        rows=int(mapping["n_rows"]),
        columns=int(mapping["n_columns"]),
        bytes=int(mapping["n_bytes"]),
        source=mapping["source"],
        created_at=to_utc(mapping["created_at"]),
        created_by=mapping["created_by"],
        validation=dict(mapping["validation"] or {}),
        created=False,
        id=int(mapping["id"]),
        description=mapping.get("description"),
    )


def _info(row: Any) -> DatasetInfo:
    m = row._mapping
    return DatasetInfo(
        name=m["name"],
        description=m["description"],
        schema=DatasetSchema.from_dict(m["schema"]),
        current_version=m["current_version"],
        versions=int(m["n"] or 0),
        rows=m["n_rows"],
        columns=m["n_columns"],
        created_at=to_utc(m["created_at"]),
        updated_at=to_utc(m["updated_at"]),
        created_by=m["created_by"],
    )


def _summary(report: ValidationReport, notes: list[str], *, inferred: bool) -> dict[str, Any]:
    data = report.to_dict()
    data["findings"] = data["findings"][:MAX_STORED_FINDINGS]
    data["notes"] = list(notes)
    data["schema_inferred"] = inferred
    return data
