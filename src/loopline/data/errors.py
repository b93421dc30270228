"""The errors of the data layer: reading sources, validating and finding datasets.

DataError  A problem in the data layer: reading, validating or finding datasets
    IngestError  A source could not be read as a table
        SourceNotFoundError  No file (or object) at the path or URL given as a source
        EmptySourceError  The source holds no data: no bytes, only a header, or a query...
        FormatMismatchError  The content is not what its extension or declared format says
        EncodingError  Text that is not valid UTF-8 (``line`` and ``byte_offset`` say w...
        MalformedRowsError  CSV lines whose number of fields differs from the header's
        UnterminatedQuoteError  A CSV quote that opens a field and never closes (the fi...
        MixedTypesError  A column mixes types: most values are of one kind and some are...
        DuplicateColumnsError  Two or more columns share a name, or a column has an emp...
        UnsupportedTypeError  A column of a type a dataset cannot hold (nested lists, s...
    ValidationFailedError  New data breaks the dataset's schema; nothing was stored
    DatasetNotFoundError  No dataset of that name. ``known`` lists the datasets that exist
        DatasetVersionNotFoundError  The dataset exists but has no such version
    DataArgumentError  A bad argument to a data operation (dataset name, split fraction...
"""

from __future__ import annotations

from loopline.errors import ConfigError, LooplineError


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


class DataArgumentError(DataError, ConfigError):
    """A bad argument to a data operation (dataset name, split fractions, dtype ...); also
    a ConfigError (the CLI exits 2)."""
