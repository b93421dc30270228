"""``loopline data``: add, list, show and validate versioned datasets."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from loopline.cli.output import console, err_console, json_option, print_json, table

if TYPE_CHECKING:
    from loopline.data.datasets import Datasets, DatasetVersion
    from loopline.data.profile import Profile
    from loopline.data.validate import ValidationReport

_STAGES = {
    "reading": "Reading {source}",
    "hashing": "Hashing the content",
    "profiling": "Profiling",
    "validating": "Validating against the schema",
    "storing": "Storing Parquet data and profile",
    "recording": "Recording the version",
}
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "dim"}


@click.group("data", no_args_is_help=True)
def data_group() -> None:
    """Add, list, show, split and validate versioned datasets."""


def _read_options(fn: Any) -> Any:
    options = [
        click.option("--sql", metavar="QUERY", help="Read the rows of a SQL query."),
        click.option(
            "--db",
            metavar="URL",
            help="SQLAlchemy URL of the database --sql runs on (or give it as SOURCE).",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["csv", "parquet"]),
            help="Format of SOURCE when its extension does not say.",
        ),
        click.option(
            "--dtype",
            "dtypes",
            multiple=True,
            metavar="COLUMN=TYPE",
            help="Read COLUMN as TYPE (string, integer, float, boolean, datetime, date). "
            "Repeatable.",
        ),
        click.option("--delimiter", help="Field separator of CSV text (default: sniffed)."),
        click.option(
            "--null-value",
            "null_values",
            multiple=True,
            metavar="TEXT",
            help="CSV text that means a missing value (repeatable; replaces the defaults).",
        ),
        click.option("--encoding", help="Text encoding of a CSV file (default: UTF-8)."),
        click.option(
            "--max-field-bytes",
            type=click.IntRange(min=1),
            help="Longest quoted CSV field accepted (default 1 MiB); a longer one is taken "
            "for a quote that was never closed.",
        ),
        click.option(
            "--check-duplicates", is_flag=True, default=None, help="Also report duplicate rows."
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _source_kwargs(
    source: str | None,
    sql: str | None,
    db: str | None,
    fmt: str | None,
    dtypes: Sequence[str],
    delimiter: str | None,
    null_values: Sequence[str],
    encoding: str | None,
    max_field_bytes: int | None = None,
) -> dict[str, Any]:
    if sql is not None:
        if db is not None and source is not None:
            raise click.UsageError("give the database either as SOURCE or with --db, not both")
        source = db if db is not None else source
        if source is None:
            raise click.UsageError("--sql needs the database: --db URL (or SOURCE)")
    elif db is not None:
        raise click.UsageError("--db goes with --sql QUERY")
    parsed: dict[str, str] = {}
    for item in dtypes:
        column, sep, dtype = item.partition("=")
        if not sep or not column or not dtype:
            raise click.BadParameter(f"{item!r}: expected COLUMN=TYPE", param_hint="--dtype")
        parsed[column] = dtype
    return {
        "source": source,
        "sql": sql,
        "format": fmt,
        "dtypes": parsed or None,
        "delimiter": "\t" if delimiter in ("\\t", "tab") else delimiter,
        "null_values": list(null_values) or None,
        "encoding": encoding,
        **({"max_field_bytes": max_field_bytes} if max_field_bytes is not None else {}),
    }


@contextmanager
def _open() -> Iterator[Datasets]:
    from loopline.config import load_settings
    from loopline.data.datasets import Datasets
    from loopline.store.stores import Stores

    with Stores.open(load_settings()) as stores:
        yield Datasets(stores)


@data_group.command("add")
@click.argument("name")
@click.argument("source", required=False)
@_read_options
@click.option(
    "--description",
    "-d",
    help="What this version holds (kept with the version; the first also describes the "
    "dataset). Given for content the dataset already holds, it describes that version.",
)
@click.option("--force", is_flag=True, help="Add the data even if it fails validation.")
@json_option
def add_command(
    name: str,
    source: str | None,
    sql: str | None,
    db: str | None,
    fmt: str | None,
    dtypes: tuple[str, ...],
    delimiter: str | None,
    null_values: tuple[str, ...],
    encoding: str | None,
    max_field_bytes: int | None,
    check_duplicates: bool | None,
    description: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Add SOURCE (a CSV or Parquet path or URL, or --sql QUERY --db URL) as a new version
    of dataset NAME.

    Adding content the dataset already holds creates no version. Data that breaks the
    dataset's schema is refused (exit 1) unless --force.
    """
    kwargs = _source_kwargs(
        source, sql, db, fmt, dtypes, delimiter, null_values, encoding, max_field_bytes
    )
    if kwargs["source"] is None:
        raise click.UsageError("give a SOURCE (a file path or URL), or --sql QUERY --db URL")
    shown = sql if sql is not None else kwargs["source"]
    with _open() as ds, err_console.status(f"Reading {shown}") as status:

        def progress(stage: str) -> None:
            status.update(_STAGES.get(stage, stage).format(source=shown))

        version = ds.add(
            name,
            kwargs.pop("source"),
            description=description,
            allow_invalid=force,
            check_duplicates=check_duplicates,
            on_progress=progress,
            **kwargs,
        )
    if as_json:
        print_json(version.to_dict())
        return
    if version.created:
        console.print(
            f"[bold]{version.ref}[/bold] added: {version.rows:,} rows x {version.columns} "
            f"columns, {_size(version.bytes)} (sha256 {version.digest[:12]})"
        )
        _print_validation_summary(version)
    else:
        console.print(
            f"[bold]{version.ref}[/bold] already holds this content "
            f"(sha256 {version.digest[:12]}); no new version"
            + (f"; described as {version.description!r}" if description else "")
        )
    console.print(f"next: [bold]loopline data show {version.ref}[/bold]")


@data_group.command("ls")
@json_option
def ls_command(as_json: bool) -> None:
    """List the datasets: versions, latest version, its rows and columns, last update."""
    with _open() as ds:
        items = ds.list()
    if as_json:
        print_json([i.to_dict() for i in items])
        return
    if not items:
        console.print("No datasets yet. Add one with: [bold]loopline data add NAME FILE[/bold]")
        return
    rows = [
        (
            i.name,
            i.versions,
            i.current_version,
            f"{i.rows:,}" if i.rows is not None else "",
            i.columns,
            _when(i.updated_at),
            i.description or "",
        )
        for i in items
    ]
    console.print(
        table(
            None,
            ["name", "versions", "latest", "rows", "columns", "updated", "description"],
            rows,
        )
    )


@data_group.command("show")
@click.argument("ref", metavar="NAME[@VERSION]")
@json_option
def show_command(ref: str, as_json: bool) -> None:
    """Show a dataset version: schema, profile summary, validation and lineage.

    VERSION is a number, 'latest' (the default) or a digest prefix.
    """
    from loopline.data.datasets import parse_ref

    name, version_spec = parse_ref(ref)
    with _open() as ds:
        version = ds.get(name, version_spec)
        info = ds.info(name)
        profile = ds.profile(name, version.version)
        splits = ds.splits(name, version.version)
    if as_json:
        print_json(
            {
                "dataset": info.to_dict(),
                "version": version.to_dict(),
                "schema": info.schema.to_dict(),
                "profile": profile.to_dict(),
                "splits": [s.to_dict() for s in splits],
            }
        )
        return
    console.print(
        f"[bold]{version.ref}[/bold]" + (f"  {info.description}" if info.description else "")
    )
    if version.description:
        console.print(f"this version: {version.description}", highlight=False)
    lineage = [
        ("versions", f"{info.versions} (latest {info.current_version})"),
        ("rows x columns", f"{version.rows:,} x {version.columns}"),
        ("digest", f"sha256:{version.digest}"),
        ("stored", f"{_size(version.bytes)} Parquet, sha256:{version.parquet_digest[:16]}..."),
        ("source", version.source),
        ("created", f"{_when(version.created_at)} by {version.created_by}"),
    ]
    console.print(table(None, ["", ""], lineage))
    console.print(_schema_table(info.schema, profile))
    _print_validation_summary(version)
    if splits:
        console.print(
            table(
                "splits",
                ["id", "seed", "fractions", "stratify", "train", "validation", "test", "created"],
                [
                    (
                        s.id,
                        s.seed,
                        "/".join(f"{f:g}" for f in s.fractions),
                        s.stratify or "",
                        s.sizes["train"],
                        s.sizes["validation"],
                        s.sizes["test"],
                        _when(s.created_at),
                    )
                    for s in splits
                ],
            )
        )


@data_group.command("versions")
@click.argument("name")
@json_option
def versions_command(name: str, as_json: bool) -> None:
    """List the versions of dataset NAME: rows, columns, size, digest, source, when."""
    with _open() as ds:
        versions = ds.versions(name)
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    rows = [
        (
            v.ref,
            f"{v.rows:,}",
            v.columns,
            _size(v.bytes),
            v.digest[:12],
            "ok" if v.validation.get("ok", True) else "[bold red]invalid[/bold red]",
            _when(v.created_at),
            v.source,
            v.description or "",
        )
        for v in versions
    ]
    console.print(
        table(
            f"dataset {name}",
            [
                "version",
                "rows",
                "columns",
                "size",
                "sha256",
                "valid",
                "created",
                "source",
                "description",
            ],
            rows,
        )
    )


@data_group.command("split")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option(
    "--fractions",
    default="0.7,0.15,0.15",
    show_default=True,
    metavar="TRAIN,VALIDATION,TEST",
    help="Shares of the rows in each part.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--stratify", metavar="COLUMN", help="Keep this column's classes in proportion.")
@json_option
def split_command(ref: str, fractions: str, seed: int, stratify: str | None, as_json: bool) -> None:
    """Split a dataset version into train/validation/test, deterministically, and record
    the split with it (gates take their holdout part from it). The same parameters give
    the same recorded split again."""
    from loopline.data.datasets import parse_ref

    try:
        shares = tuple(float(f) for f in fractions.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{fractions!r}: expected three numbers, e.g. 0.7,0.15,0.15", param_hint="--fractions"
        ) from None
    name, version_spec = parse_ref(ref)
    with _open() as ds:
        parts = ds.split(name, version_spec, fractions=shares, seed=seed, stratify=stratify)
    record = parts.record
    if as_json:
        print_json(record.to_dict())
        return
    sizes = record.sizes
    console.print(
        f"[bold]{record.dataset}@{record.version}[/bold] split #{record.id} (seed {seed}"
        + (f", stratified on {stratify}" if stratify else "")
        + f"): train {sizes['train']:,}, validation {sizes['validation']:,}, "
        f"test {sizes['test']:,} rows"
    )


@data_group.command("validate")
@click.argument("name")
@click.argument("source", required=False)
@_read_options
@click.option(
    "--features-only",
    is_flag=True,
    help="Validate inputs without the label (a production batch): the label column is "
    "--target, or the target the project's [gates.*] name for this dataset.",
)
@click.option("--target", metavar="COLUMN", help="The label column (with --features-only).")
@json_option
def validate_command(
    name: str,
    source: str | None,
    sql: str | None,
    db: str | None,
    fmt: str | None,
    dtypes: tuple[str, ...],
    delimiter: str | None,
    null_values: tuple[str, ...],
    encoding: str | None,
    max_field_bytes: int | None,
    check_duplicates: bool | None,
    features_only: bool,
    target: str | None,
    as_json: bool,
) -> None:
    """Validate SOURCE (default: the latest version) against the schema of dataset NAME.

    Prints every finding; exits 1 when there are errors. Nothing is stored.
    """
    kwargs = _source_kwargs(
        source, sql, db, fmt, dtypes, delimiter, null_values, encoding, max_field_bytes
    )
    if target is not None and not features_only:
        raise click.UsageError("--target goes with --features-only")
    with _open() as ds, err_console.status(f"Validating {sql or source or name}"):
        exclude = (target or _gated_target(name),) if features_only else ()
        report = ds.validate(name, check_duplicates=check_duplicates, exclude=exclude, **kwargs)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report, source or (f"sql {sql!r}" if sql else f"{name} (latest)"))
    if not report.ok:
        raise click.exceptions.Exit(1)


def _gated_target(name: str) -> str:
    """The label column of dataset ``name``: the target of the [gates.*] table whose
    holdout it is."""
    from loopline.config import load_settings
    from loopline.loop.gates import gate_configs

    targets = {
        c.target
        for c in gate_configs(load_settings()).values()
        if c.target and c.holdout and c.holdout.partition("@")[0] == name
    }
    if len(targets) != 1:
        found = "several" if targets else "no"
        raise click.UsageError(
            f"--features-only needs the label column of {name!r}: {found} [gates.*] table "
            f"names one as the target of this dataset; give it with --target COLUMN"
        )
    return targets.pop()


def _print_report(report: ValidationReport, what: str) -> None:
    verdict = "[green]valid[/green]" if report.ok else "[bold red]invalid[/bold red]"
    console.print(
        f"{what} against the schema of [bold]{report.dataset}[/bold]: {verdict} "
        f"({len(report.errors)} error(s), {len(report.warnings)} warning(s); "
        f"{report.rows:,} rows x {report.columns} columns)"
    )
    if not report.findings:
        return
    rows = []
    for f in report.findings:
        style = SEVERITY_STYLE.get(f.severity, "")
        examples = ", ".join(f"row {r}: {v!r}" for r, v in f.examples)
        rows.append(
            (
                f"[{style}]{f.severity}[/{style}]",
                f.column or "",
                f.rule,
                f"{f.count:,}" if f.count else "",
                examples,
                f.message,
            )
        )
    console.print(table(None, ["severity", "column", "rule", "rows", "examples", "finding"], rows))


def _print_validation_summary(version: DatasetVersion) -> None:
    v = version.validation
    for note in v.get("notes", []):
        console.print(f"[dim]note: {note}[/dim]")
    findings = v.get("findings", [])
    if v.get("schema_inferred"):
        console.print("[dim]schema inferred from this version[/dim]")
    if not findings:
        return
    rows = [
        (
            f"[{SEVERITY_STYLE.get(f['severity'], '')}]{f['severity']}"
            f"[/{SEVERITY_STYLE.get(f['severity'], '')}]",
            f.get("column") or "",
            f["rule"],
            f"{f['count']:,}" if f.get("count") else "",
            f["message"],
        )
        for f in findings
    ]
    console.print(table("validation", ["severity", "column", "rule", "rows", "finding"], rows))


def _schema_table(schema: Any, profile: Profile) -> Any:
    rows = []
    by_name = {c.name: c for c in profile.columns}
    for col in schema.columns:
        p = by_name.get(col.name)
        nulls = f"{p.null_rate:.1%}" if p is not None else ""
        if p is not None and p.numeric is not None:
            n = p.numeric
            stats = f"min {n.min:.4g}  mean {n.mean:.4g}  max {n.max:.4g}  std {n.std:.4g}"
        elif p is not None and p.categorical is not None:
            k = p.categorical
            top = ", ".join(f"{v} ({c:,})" for v, c in k.top[:3])
            stats = f"{k.distinct:,} distinct: {top}" + (" ..." if k.distinct > 3 else "")
        elif p is not None and p.first is not None:
            stats = f"{p.first} .. {p.last}"
        else:
            stats = ""
        expected = []
        if col.min is not None or col.max is not None:
            expected.append(f"[{col.min:.4g}, {col.max:.4g}]")
        if col.categories is not None:
            shown = ", ".join(col.categories[:5]) + (" ..." if len(col.categories) > 5 else "")
            expected.append(f"{{{shown}}}")
        rows.append(
            (
                col.name,
                col.dtype,
                "yes" if col.nullable else "no",
                " ".join(expected),
                nulls,
                stats,
            )
        )
    return table(
        "schema and profile",
        ["column", "dtype", "nullable", "expected", "nulls", "profile"],
        rows,
    )


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def _when(value: Any) -> str:
    return str(value.astimezone().strftime("%Y-%m-%d %H:%M:%S")) if value is not None else ""
