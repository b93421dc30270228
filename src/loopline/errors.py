"""Every error loopline raises, in one hierarchy.

Messages name the object, what was expected, and the next step. Errors carry their
data as attributes so callers (the CLI, the server) can decide how to present them;
the mapping to exit codes and HTTP statuses lives only in ``cli`` and ``serve``.

    LooplineError
    ├── ConfigError                      loopline.toml or LOOPLINE_* is wrong
    │   └── ProjectConflictError         the database belongs to another project's stores
    ├── ProjectError                     no project here, or one exists already
    ├── StoreError
    │   ├── MetadataStoreError
    │   │   ├── DatabaseUnreachableError  cannot connect (server down, bad URL, no file)
    │   │   ├── SchemaError               database not migrated, or newer than this loopline
    │   │   ├── DatabaseFullError         its disk, quota or size limit is full; rolled back
    │   │   └── DatabaseIOError           I/O error, or a read-only file or folder
    │   └── ObjectStoreError
    │       ├── InvalidKeyError           key escapes the store, is absolute, has NUL ...
    │       │   └── InvalidDigestError    not a sha256 digest (64 lowercase hex characters)
    │       ├── ObjectNotFoundError       no object under that key
    │       ├── IntegrityError            content does not match its recorded sha256
    │       ├── StoreUnreachableError     bucket/folder missing, endpoint down, no credentials
    │       └── StoreFullError            the disk or quota is full; nothing was written
    ├── DataError                        the data layer (loopline.data)
    │   ├── IngestError                  a source is not readable as a table (where, what)
    │   │   ├── SourceNotFoundError      no file at that path or URL
    │   │   ├── EmptySourceError         no bytes, only a header, or a query with no rows
    │   │   ├── FormatMismatchError      content is not what the extension says
    │   │   ├── EncodingError            text that is not UTF-8 (line, byte offset)
    │   │   ├── MalformedRowsError       CSV lines with the wrong number of fields
    │   │   ├── UnterminatedQuoteError   a CSV quote never closed, or a quoted field too long
    │   │   ├── MixedTypesError          a column mixes types (numbers and text, ...)
    │   │   ├── DuplicateColumnsError    two columns share a name, or one has none
    │   │   └── UnsupportedTypeError     a column type datasets cannot hold (lists, structs)
    │   ├── ValidationFailedError        new data breaks the dataset's schema; has the report
    │   ├── DatasetNotFoundError         no dataset of that name (lists the known ones)
    │   │   └── DatasetVersionNotFoundError  the dataset has no such version
    │   └── DataArgumentError            a bad name, split fractions, stratify column ...
    ├── TrackingError                    a run cannot be started, logged to or queried
    │   ├── RunNotFoundError             no run with that id, or an ambiguous id prefix
    │   ├── ParamConflictError           a param re-logged with a different value
    │   ├── InvalidMetricError           a metric value that is not a number, or a bad step
    │   └── InvalidRunFilterError        a run filter or sort key that cannot be parsed
    ├── PipelineError                    a pipeline cannot be defined, loaded or run
    │   ├── PipelineDefinitionError      cycle, unknown input, duplicate step name ...
    │   ├── PipelineLoadError            the file does not import, or holds no pipeline
    │   ├── PipelineParamError           a parameter missing, unknown or of the wrong type
    │   ├── StepOutputError              a step returned a value that cannot be stored safely
    │   └── PipelineRunNotFoundError     no such pipeline run to resume
    ├── ExecutorError                    work cannot be submitted (bad resources, shut down)
    ├── TrainError                       fitting or hyperparameter search (see its docstring)
    ├── EvaluationError                  a model cannot be evaluated (inputs, task, slice)
    │   ├── GateSyntaxError              a gate criterion does not parse (text, position)
    │   └── GateFailedError              gate criteria failed; carries the verdict
    ├── RegistryError                    models, versions, aliases, packages (its docstring)
    ├── ServeError                       the model server (see its docstring)
    ├── AlarmError                       alarms and their actions
    │   └── ActionConfigError            an action declared wrongly (also a ConfigError)
    └── TriggerError                     batch prediction of files, the file watcher
"""

from __future__ import annotations


class LooplineError(Exception):
    """Root of every loopline error.

    ``hint`` is the next thing the user should do (often a command to run).
    """

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        sep = " " if self.message.endswith((".", "!", "?")) else ". "
        return f"{self.message}{sep}{self.hint}"


class ConfigError(LooplineError):
    """The configuration (``loopline.toml`` or a ``LOOPLINE_*`` variable) is invalid."""

    def __init__(self, message: str, *, source: str | None = None, hint: str | None = None):
        self.source = source
        super().__init__(f"{source}: {message}" if source else message, hint=hint)


class ProjectConflictError(ConfigError):
    """The metadata database is bound to another artifact store: another project's."""

    def __init__(
        self, database: str, bound_to: str, artifacts_url: str, project_dir: str | None
    ) -> None:
        self.database = database
        self.bound_to = bound_to
        self.artifacts_url = artifacts_url
        self.project_dir = project_dir
        owner = f" (the project in {project_dir})" if project_dir else ""
        self.source = None
        LooplineError.__init__(
            self,
            f"Metadata database {database} belongs to the project whose artifacts are in "
            f"{bound_to}{owner}, not to this one (artifacts in {artifacts_url}): sharing it "
            "would mix the two projects' datasets, runs and models",
            hint="Give this project its own database, or its own PostgreSQL schema: "
            'metadata_url = "postgresql+psycopg://USER:PW@HOST/DB?options=-csearch_path%3DNAME"; '
            "or point artifacts_url at that project's store if it is the same project",
        )


class ProjectError(LooplineError):
    """No loopline project where one was expected, or one already exists."""


class StoreError(LooplineError):
    """A problem with one of the two stores (metadata database, object store)."""


class MetadataStoreError(StoreError):
    """A problem with the metadata database."""


class DatabaseUnreachableError(MetadataStoreError):
    """The metadata database cannot be reached."""

    def __init__(self, url: str, reason: str, *, hint: str | None = None) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"Cannot reach the metadata database {url}: {reason}", hint=hint)


class SchemaError(MetadataStoreError):
    """The database schema is not at the revision this loopline expects."""

    def __init__(
        self, url: str, current: str | None, expected: str, *, hint: str | None = None
    ) -> None:
        self.url = url
        self.current = current
        self.expected = expected
        state = "not initialised" if current is None else f"at revision {current}"
        super().__init__(
            f"Metadata database {url} is {state}; this loopline expects revision {expected}",
            hint=hint,
        )


class DatabaseFullError(MetadataStoreError):
    """The metadata database cannot grow: the disk holding it, its quota or its size limit
    is full. The transaction that hit it was rolled back, so none of it was written."""

    def __init__(self, location: str, reason: str, *, hint: str | None = None) -> None:
        self.location = location
        self.reason = reason
        super().__init__(
            f"Metadata database {location} is full ({reason}); the transaction was rolled "
            "back and nothing was changed",
            hint=hint or "Free some space on the disk that holds it (or raise its quota) and retry",
        )


class DatabaseIOError(MetadataStoreError):
    """The metadata database cannot be read or written: an I/O error, or a read-only file,
    folder or server."""

    def __init__(self, location: str, reason: str, *, hint: str | None = None) -> None:
        self.location = location
        self.reason = reason
        super().__init__(
            f"Metadata database {location} cannot be read or written: {reason}", hint=hint
        )


class ObjectStoreError(StoreError):
    """A problem with the object (artifact) store."""


class InvalidKeyError(ObjectStoreError):
    """An object key that is not allowed (it could escape the store or is malformed)."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(
            f"Invalid object key {key!r}: {reason}",
            hint="Keys are relative paths of '/'-separated names, without '..', '.', "
            "empty parts, backslashes or NUL",
        )


class InvalidDigestError(InvalidKeyError):
    """A string that is not a sha256 digest was used to name a content-addressed blob."""

    def __init__(self, digest: str, reason: str) -> None:
        self.key = digest
        self.reason = reason
        ObjectStoreError.__init__(
            self,
            f"Invalid content digest {digest!r}: {reason}",
            hint="A digest is the sha256 of the content as 64 lowercase hexadecimal characters",
        )


class ObjectNotFoundError(ObjectStoreError):
    """No object is stored under the key."""

    def __init__(self, key: str, store: str) -> None:
        self.key = key
        self.store = store
        super().__init__(f"No object {key!r} in store {store}")


class IntegrityError(ObjectStoreError):
    """An object's content does not match the sha256 it was stored under."""

    def __init__(self, key: str, expected: str, actual: str, store: str) -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        self.store = store
        super().__init__(
            f"Object {key!r} in store {store} is corrupted or was tampered with: "
            f"expected sha256 {expected}, found {actual}",
            hint="Restore the object from a backup, or re-create the artifact that wrote it",
        )


class StoreUnreachableError(ObjectStoreError):
    """The object store cannot be reached or used (missing bucket, no credentials...)."""

    def __init__(self, url: str, reason: str, *, hint: str | None = None) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"Cannot use the object store {url}: {reason}", hint=hint)


class StoreFullError(ObjectStoreError):
    """The store ran out of space while writing; the partial object was removed."""

    def __init__(self, key: str, store: str, reason: str) -> None:
        self.key = key
        self.store = store
        self.reason = reason
        super().__init__(
            f"Store {store} is full: could not write {key!r} ({reason}); nothing was written",
            hint="Free some space (or raise the quota) and retry",
        )


class PipelineError(LooplineError):
    """A pipeline could not be defined, loaded or run."""


class PipelineDefinitionError(PipelineError):
    """A pipeline or step is malformed (cycle, unknown input, duplicate name...)."""


class PipelineLoadError(PipelineError):
    """A pipeline file could not be imported, or holds no (or several) pipelines."""


class PipelineParamError(PipelineError):
    """A pipeline parameter is missing, unknown, or of the wrong type."""


class StepOutputError(PipelineError):
    """A step returned a value loopline cannot store safely."""


class PipelineRunNotFoundError(PipelineError):
    """No pipeline run with that id (to resume from)."""


class TrackingError(LooplineError):
    """A run cannot be started, logged to or queried."""


class RunNotFoundError(TrackingError):
    """No run has that id, or an id prefix matches several runs (``candidates``)."""

    def __init__(self, run_id: str, candidates: tuple[str, ...] = ()) -> None:
        self.run_id = run_id
        self.candidates = candidates
        if candidates:
            shown = ", ".join(candidates[:5]) + (", ..." if len(candidates) > 5 else "")
            message = (
                f"Run id prefix {run_id!r} is ambiguous: it matches {len(candidates)} runs "
                f"({shown})"
            )
            hint = "Give more characters of the id (see: loopline runs ls)"
        else:
            message = f"No run with id or id prefix {run_id!r}"
            hint = "List the runs with: loopline runs ls"
        super().__init__(message, hint=hint)


class ParamConflictError(TrackingError):
    """A param was logged again with a different value: params are immutable."""

    def __init__(self, run_id: str, key: str, old: str, new: str) -> None:
        self.run_id = run_id
        self.key = key
        self.old = old
        self.new = new
        super().__init__(
            f"Param {key!r} of run {run_id} is already {old!r} and cannot change to {new!r}",
            hint="Params are immutable: log the new value under another key, or start a new run",
        )


class InvalidMetricError(TrackingError):
    """A metric whose value is not a number (NaN and infinities are numbers), or a bad
    key, step or timestamp."""

    def __init__(self, key: object, value: object, expected: str) -> None:
        self.key = key
        self.value = value
        self.expected = expected
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(
            f"Metric {key!r}: {shown} ({type(value).__name__}) is not valid; expected {expected}"
        )


class InvalidRunFilterError(TrackingError):
    """A run filter or sort expression that cannot be parsed."""

    def __init__(self, expression: str, reason: str) -> None:
        self.expression = expression
        self.reason = reason
        super().__init__(
            f"Invalid run filter {expression!r}: {reason}",
            hint="Write filters as <params|metrics|tags|attributes>.<key> <op> <value>, "
            'e.g. "metrics.f1 >= 0.8" or "params.model = rf"',
        )


class DataError(LooplineError):
    """A problem in the data layer: reading, validating or finding datasets."""


class IngestError(DataError):
    """A source could not be read as a table.

    Carries where the problem is, as far as it is known: the source (path, URL or a
    description), the 1-based ``line`` of a text file, the 0-based ``row`` of the table,
    the ``column``, the offending ``value`` and the ``byte_offset`` in the file.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        row: int | None = None,
        column: str | None = None,
        value: object = None,
        byte_offset: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.source = source
        self.line = line
        self.row = row
        self.column = column
        self.value = value
        self.byte_offset = byte_offset
        super().__init__(f"{source}: {message}" if source else message, hint=hint)


class SourceNotFoundError(IngestError):
    """No file (or object) at the path or URL given as a source."""


class EmptySourceError(IngestError):
    """The source holds no data: no bytes, only a header, or a query without rows."""


class FormatMismatchError(IngestError):
    """The content is not what its extension or declared format says."""


class EncodingError(IngestError):
    """Text that is not valid UTF-8 (``line`` and ``byte_offset`` say where)."""


class MalformedRowsError(IngestError):
    """CSV lines whose number of fields differs from the header's.

    ``lines`` lists the first offending lines as (line number, fields found, text);
    ``count`` is how many there are in all.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None,
        expected: int,
        lines: list[tuple[int | None, int, str]],
        count: int,
        hint: str | None = None,
    ) -> None:
        self.expected = expected
        self.lines = lines
        self.count = count
        first = lines[0][0] if lines else None
        super().__init__(message, source=source, line=first, hint=hint)


class UnterminatedQuoteError(IngestError):
    """A CSV quote that opens a field and never closes (the field would run to the end of
    the file), or a quoted field longer than the reader's ``max_field_bytes``.

    ``line`` and ``byte_offset`` say where the quote opened; ``unterminated`` tells the
    two cases apart.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None,
        line: int | None,
        byte_offset: int | None,
        unterminated: bool,
        hint: str | None = None,
    ) -> None:
        self.unterminated = unterminated
        super().__init__(message, source=source, line=line, byte_offset=byte_offset, hint=hint)


class MixedTypesError(IngestError):
    """A column mixes types: most values are of one kind and some are not.

    ``examples`` lists the first offending cells as (row, line or None, value);
    ``count`` is how many there are in all; ``expected`` names the majority kind.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None,
        column: str,
        expected: str,
        examples: list[tuple[int, int | None, object]],
        count: int,
        hint: str | None = None,
    ) -> None:
        self.expected = expected
        self.examples = examples
        self.count = count
        row, line, value = examples[0] if examples else (None, None, None)
        super().__init__(
            message, source=source, column=column, row=row, line=line, value=value, hint=hint
        )


class DuplicateColumnsError(IngestError):
    """Two or more columns share a name, or a column has an empty name."""

    def __init__(
        self, message: str, *, source: str | None, names: list[str], hint: str | None = None
    ) -> None:
        self.names = names
        super().__init__(message, source=source, column=names[0] if names else None, hint=hint)


class UnsupportedTypeError(IngestError):
    """A column of a type a dataset cannot hold (nested lists, structs, maps ...)."""


class ValidationFailedError(DataError):
    """New data breaks the dataset's schema; nothing was stored.

    ``report`` is the :class:`loopline.data.validate.ValidationReport` with every finding.
    """

    def __init__(self, message: str, *, dataset: str, report: object, hint: str | None = None):
        self.dataset = dataset
        self.report = report
        super().__init__(message, hint=hint)


class DatasetNotFoundError(DataError):
    """No dataset of that name. ``known`` lists the datasets that exist."""

    def __init__(self, name: str, known: list[str], *, hint: str | None = None) -> None:
        self.name = name
        self.known = known
        if hint is None:
            hint = (
                f"Add it with: loopline data add {name} FILE"
                if not known
                else "List the datasets with: loopline data ls"
            )
        if not known:
            message = f"No dataset {name!r}: there are no datasets yet"
        else:
            import difflib

            close = difflib.get_close_matches(name, known, n=1)
            shown = ", ".join(known[:10]) + (" ..." if len(known) > 10 else "")
            message = f"No dataset {name!r}; known datasets: {shown}"
            if close:
                message += f". Did you mean {close[0]!r}?"
        super().__init__(message, hint=hint)


class DatasetVersionNotFoundError(DatasetNotFoundError):
    """The dataset exists but has no such version."""

    def __init__(self, name: str, version: object, versions: list[int]) -> None:
        self.name = name
        self.known = [name]
        self.version = version
        self.versions = versions
        if versions:
            have = (
                f"version {versions[0]}"
                if len(versions) == 1
                else f"versions {versions[0]}-{versions[-1]}"
            )
        else:
            have = "no versions"
        DataError.__init__(
            self,
            f"Dataset {name!r} has no version {version}; it has {have}",
            hint=f"See them with: loopline data show {name}",
        )


class DataArgumentError(DataError):
    """A bad argument to a data operation (dataset name, split fractions, dtype ...)."""


class EvaluationError(LooplineError):
    """A model could not be evaluated (bad inputs, unknown task or metric) or gated."""


class GateSyntaxError(EvaluationError):
    """A gate criterion is not valid in the gate language (``f1 >= 0.8``...).

    ``position`` is the 0-based index in ``criterion`` where ``expected`` was expected.
    """

    def __init__(
        self, criterion: str, position: int, expected: str, found: str | None = None
    ) -> None:
        self.criterion = criterion
        self.position = position
        self.expected = expected
        self.found = found
        where = f"at position {position}" + (f" (found {found})" if found else "")
        super().__init__(
            f"Invalid gate criterion {criterion!r}: expected {expected} {where}",
            hint="A criterion compares two expressions, like 'f1 >= 0.8' or "
            "'roc_auc >= champion.roc_auc - 0.005', or is 'data.valid'",
        )


class GateFailedError(EvaluationError):
    """One or more gate criteria failed; ``verdict`` holds every criterion's result."""

    def __init__(self, verdict: object, failures: list[str]) -> None:
        self.verdict = verdict
        self.failures = failures
        shown = "; ".join(failures[:3]) + ("; ..." if len(failures) > 3 else "")
        super().__init__(
            f"{len(failures)} gate criteri{'on' if len(failures) == 1 else 'a'} failed: {shown}"
        )


class RegistryError(LooplineError):
    """A problem with registered models, their versions, aliases or packages.

    RegistryError
    ├── ModelNotFoundError          no model of that name
    ├── ModelVersionNotFoundError   the model has no such version
    ├── AliasNotFoundError          the model has no such alias
    ├── ModelPackageError           the object cannot be packaged (unsupported, not fitted)
    ├── ModelInputError             input rows lack the signature's columns
    ├── PackageIntegrityError       a package file does not match its recorded sha256
    │                               (also an IntegrityError: the CLI exits 4)
    ├── MalformedPackageError       a package file is not in its format (a pickle renamed
    │                               model.skops, a truncated zip); also an IntegrityError
    ├── FlavorUnavailableError      the library a package needs is not installed
    ├── UnsafeModelError            a skops file holds types outside the trusted set
    ├── ConflictError               compare-and-set lost: another process moved it first
    └── PromotionRefusedError       the promotion check failed and was not forced
    """


class ModelNotFoundError(RegistryError):
    """No registered model has that name."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        self.known = list(known or [])
        if self.known:
            shown = ", ".join(self.known[:10]) + (", ..." if len(self.known) > 10 else "")
            hint = f"Known models: {shown}; list them with: loopline models ls"
        else:
            hint = "No model is registered yet; register one with Registry.register()"
        super().__init__(f"No model named {name!r}", hint=hint)


class ModelVersionNotFoundError(RegistryError):
    """The model exists but has no such version."""

    def __init__(self, name: str, version: int | None, latest: int | None = None) -> None:
        self.name = name
        self.version = version
        self.latest = latest
        has = f"its versions are 1..{latest}" if latest else "it has no versions"
        which = "ready version" if version is None else f"version {version}"
        super().__init__(
            f"Model {name!r} has no {which} ({has})",
            hint=f"See its versions with: loopline models show {name}",
        )


class AliasNotFoundError(RegistryError):
    """The model exists but no version holds that alias."""

    def __init__(self, name: str, alias: str, version_hint: int | None = None) -> None:
        self.name = name
        self.alias = alias
        version = version_hint if version_hint is not None else "VERSION"
        super().__init__(
            f"Model {name!r} has no alias {alias!r}",
            hint=f"set one with: loopline models alias {name} {version} {alias}",
        )

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}"


class ModelPackageError(RegistryError):
    """The object cannot be packaged: an unsupported type, not fitted, no usable sample."""


class ModelInputError(RegistryError):
    """Input rows do not fit the model's signature (missing columns, not a table)."""

    def __init__(self, message: str, *, missing: list[str] | None = None, hint: str | None = None):
        self.missing = list(missing or [])
        super().__init__(message, hint=hint)


class PackageIntegrityError(RegistryError, IntegrityError):
    """A file of a model package (or its manifest) does not match the recorded sha256."""

    def __init__(self, ref: str, file: str, expected: str, actual: str) -> None:
        self.ref = ref
        self.file = file
        self.key = file
        self.expected = expected
        self.actual = actual
        self.store = ""
        LooplineError.__init__(
            self,
            f"Model package {ref} refused: file {file!r} does not match the registry "
            f"(expected sha256 {expected}, found {actual})",
            hint="The package was modified or corrupted; restore the artifact store from a "
            "backup, or register the model again",
        )


class MalformedPackageError(RegistryError, IntegrityError):
    """A file of a model package is not in the format its flavor reads: nothing was built."""

    def __init__(self, ref: str, file: str, reason: str) -> None:
        self.ref = ref
        self.file = file
        self.key = file
        self.reason = reason
        self.expected = ""
        self.actual = ""
        self.store = ""
        LooplineError.__init__(
            self,
            f"Model package {ref} refused: file {file!r} is not a valid package file ({reason})",
            hint="The package was replaced or corrupted; restore the artifact store from a "
            "backup, or register the model again",
        )


class FlavorUnavailableError(RegistryError):
    """The package needs a library that is not installed."""

    def __init__(self, flavor: str, package: str, *, ref: str | None = None) -> None:
        self.flavor = flavor
        self.package = package
        self.ref = ref
        what = f"Model {ref}" if ref else "This model"
        super().__init__(
            f"{what} has flavor {flavor!r}, which needs the {package!r} package; "
            "it is not installed",
            hint=f"Install it with: pip install {package}",
        )


class UnsafeModelError(RegistryError):
    """A skops file holds types outside skops' defaults and loopline's exact allow-list."""

    def __init__(self, types: list[str], *, ref: str | None = None, file: str | None = None):
        self.types = sorted(types)
        self.ref = ref
        self.file = file
        where = f" {file!r} of {ref}" if ref and file else (f" of {ref}" if ref else "")
        super().__init__(
            f"Refusing the skops file{where}: it holds untrusted types {', '.join(self.types)}",
            hint="Only the scikit-learn, numpy and scipy types that estimators need are "
            "loaded (loopline.registry.trust lists them); use a supported estimator",
        )


class ConflictError(RegistryError):
    """A compare-and-set move found another holder than the one expected: another process
    (a person, another controller) moved the alias or the traffic split first."""

    def __init__(self, subject: str, expected: object, actual: object) -> None:
        self.subject = subject
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{subject} changed meanwhile: expected {_shown(expected)}, found {_shown(actual)}; "
            "nothing was changed",
            hint="Read the current state again and decide anew",
        )


def _shown(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, int):
        return f"version {value}"
    return str(value)


class PromotionRefusedError(RegistryError):
    """A promotion check returned a failing verdict and the promotion was not forced."""

    def __init__(self, name: str, version: int, alias: str, verdict: object) -> None:
        self.name = name
        self.version = version
        self.alias = alias
        self.verdict = verdict
        reasons = getattr(verdict, "reasons", None)
        detail = f": {'; '.join(str(r) for r in reasons)}" if reasons else ""
        super().__init__(
            f"Promotion of {name}/{version} to {alias!r} refused by its check{detail}",
            hint=f"Fix the model, or override with: loopline models promote {name} {version} "
            f"--alias {alias} --force --reason TEXT",
        )


class ExecutorError(LooplineError):
    """Work cannot be submitted to an executor: bad resources, or it was shut down."""


class TrainError(LooplineError):
    """Fitting or hyperparameter search could not be done (loopline.train).

    TrainError
    ├── SearchSpaceError      a search space is malformed (names the param, value, expected)
    ├── SearchNotFoundError   no study of that name in the metadata database
    └── SearchFailedError     a search ended without one completed trial
    """


class SearchSpaceError(TrainError):
    """A search space entry that cannot be sampled: bad bounds, empty choices, clashes."""

    def __init__(self, param: str | None, message: str, *, hint: str | None = None) -> None:
        self.param = param
        where = "Search space" if param is None else f"Search space param {param!r}"
        super().__init__(f"{where}: {message}", hint=hint)


class SearchNotFoundError(TrainError):
    """No hyperparameter search (Optuna study) of that name. ``known`` lists those that exist."""

    def __init__(self, study: str, known: list[str]) -> None:
        self.study = study
        self.known = list(known)
        if known:
            shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
            message = f"No search (study) named {study!r}; known studies: {shown}"
        else:
            message = f"No search (study) named {study!r}: no search has run in this project"
        super().__init__(message, hint="Start it with loopline.train.search(..., study=NAME)")


class SearchFailedError(TrainError):
    """A search ended without a completed trial (every trial failed, was pruned, or none ran).

    ``first_error`` is the error of the first failed trial of this call, when there was one.
    """

    def __init__(
        self, study: str, n_failed: int, n_pruned: int, first_error: str | None = None
    ) -> None:
        self.study = study
        self.n_failed = n_failed
        self.n_pruned = n_pruned
        self.first_error = first_error
        detail = f"; first error: {first_error}" if first_error else ""
        super().__init__(
            f"Search {study!r} has no completed trial ({n_failed} failed, {n_pruned} pruned)"
            f"{detail}",
            hint="Fix the objective (run one trial by hand), widen the space, or raise "
            "n_trials / timeout_s",
        )


class ServeError(LooplineError):
    """The model server cannot start or act as asked (``loopline.serve``).

    ServeError
    ├── UnsafeBindError     a non-loopback address without auth (or ``--insecure``)
    ├── PortInUseError      the address is taken by another process (also a ConfigError:
    │                       the CLI exits 2)
    └── ApiKeyError         no such API key, a revoked one, or an unknown role
    """


class UnsafeBindError(ServeError):
    """Binding an address other than loopback would expose an endpoint without auth."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"Refusing to serve on {host} without authentication: anyone who can reach "
            "that address could call the model",
            hint="Turn auth on ([serve] auth = true, or LOOPLINE_SERVE_AUTH=1, and create keys "
            "with: loopline keys create --role predict), or pass --insecure",
        )


class PortInUseError(ServeError, ConfigError):
    """The address a server was asked to listen on is taken by another process."""

    def __init__(self, host: str, port: int, reason: str = "the port is in use") -> None:
        self.host = host
        self.port = port
        self.reason = reason
        self.source = None
        shown = f"[{host}]" if ":" in host else host
        LooplineError.__init__(
            self,
            f"Cannot listen on {shown}:{port}: {reason}",
            hint="Stop the server that uses it, or pick another port with --port",
        )


class ApiKeyError(ServeError):
    """An API key that does not exist or was revoked, or a role that does not exist."""


class MonitorError(LooplineError):
    """Monitoring data (the prediction log, feedback) cannot be read or stored."""


class FeedbackError(MonitorError):
    """Feedback that cannot be read at all: not a list of labels, an unreadable file."""


class AlarmError(LooplineError):
    """Alarms and their actions cannot be configured or evaluated (``loopline.alarm``)."""


class ActionConfigError(AlarmError, ConfigError):
    """An action is declared wrongly (a bad URL, a negative timeout ...)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.source = None
        LooplineError.__init__(self, message, hint=hint)


class TriggerError(LooplineError):
    """A file cannot be scored by batch prediction or the watcher (``loopline.trigger``).

    TriggerError
    ├── BatchInputError     the input cannot be read as a table, or lacks the model's columns
    └── BatchOutputError    the output cannot be written where asked (format, place)
    """


class BatchInputError(TriggerError):
    """An input file that cannot be scored as a whole (not row by row)."""

    def __init__(self, source: str, reason: str, *, hint: str | None = None) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"Cannot score {source}: {reason}", hint=hint)


class BatchOutputError(TriggerError):
    """The output of a batch prediction cannot be written; nothing was left at the target."""

    def __init__(self, target: str, reason: str, *, hint: str | None = None) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"Cannot write {target}: {reason}", hint=hint)
