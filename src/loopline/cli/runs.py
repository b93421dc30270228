"""``loopline runs ls|show|compare``: tracked runs as tables (or ``--json``).

Every command first marks as ``killed`` the runs (and pipeline runs, with the step they
died in) whose process died without ending them (no heartbeat for a while), so what it
shows is current.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from loopline.cli.options import json_option

if TYPE_CHECKING:
    from loopline.tracking import RunRecord, Tracker
    from loopline.tracking.listing import ListedRun


RUN_STATUSES = ("running", "finished", "failed", "killed")
_STATUS_STYLE = {"running": "cyan", "finished": "green", "failed": "bold red", "killed": "yellow"}
_EXTRA_METRIC_COLUMNS = 4


@contextmanager
def _tracker() -> Iterator[Tracker]:
    from loopline.config import load_settings
    from loopline.pipeline.reaper import reap_dead_pipeline_runs
    from loopline.store.stores import Stores
    from loopline.tracking import Tracker

    with Stores.open(load_settings()) as stores:
        tracker = Tracker(stores)
        reap_dead_pipeline_runs(stores, tracker)
        yield tracker


def _plain_listing(
    experiment: str | None, statuses: Sequence[str], limit: int | None
) -> list[ListedRun] | None:
    """The newest runs read straight from the embedded SQLite store, without SQLAlchemy
    (see :mod:`loopline.tracking.listing_sqlite`); None when the regular path must answer:
    another database or a remote artifact store (whose settings that path checks), a
    store to migrate or to reap, an error to report."""
    from loopline.config import load_settings
    from loopline.store.db.engine import sqlite_file

    settings = load_settings()
    path = sqlite_file(settings.metadata_url)
    artifacts = settings.artifacts_url
    if path is None or ("://" in artifacts and not artifacts.startswith("file://")):
        return None
    from loopline.tracking.listing_sqlite import read_listing

    return read_listing(
        path,
        settings.artifacts_url,
        busy_timeout=settings.db_busy_timeout,
        experiment=experiment,
        statuses=statuses,
        limit=limit,
    )


@click.group("runs", no_args_is_help=True)
def runs_group() -> None:
    """List, show and compare tracked runs, and get their artifacts.

    Run ids may be shortened to any unique prefix, as with git commits.
    """


@runs_group.command("ls")
@click.option("-e", "--experiment", help="Only runs of this experiment.")
@click.option(
    "-s",
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(RUN_STATUSES),
    help="Only runs with this status (repeatable).",
)
@click.option(
    "-f",
    "--filter",
    "filters",
    multiple=True,
    metavar="EXPR",
    help='Keep runs matching EXPR, e.g. "metrics.f1 >= 0.8", "params.model = rf", '
    '"tags.team like ml%" (repeatable; all must match).',
)
@click.option(
    "--sort",
    "sort_keys",
    multiple=True,
    metavar="FIELD",
    help="Sort by FIELD, e.g. metrics.f1, params.C, start_time; '-FIELD' or 'FIELD desc' "
    "for descending (repeatable). Default: newest first.",
)
@click.option("--desc", is_flag=True, help="Sort descending (for --sort keys without a direction).")
@click.option("--parent", help="Only child runs of this run (id or prefix).")
@click.option(
    "-n", "--limit", type=click.IntRange(min=0), default=50, show_default=True, help="At most N."
)
@json_option
def ls_command(
    experiment: str | None,
    statuses: tuple[str, ...],
    filters: tuple[str, ...],
    sort_keys: tuple[str, ...],
    desc: bool,
    parent: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List runs, newest first, with the metrics and params the filters and sort name."""
    order = [_with_direction(k, desc) for k in sort_keys]
    fields: list[str] = []
    listed = None
    if filters or order:
        from loopline.tracking.errors import InvalidRunFilterError
        from loopline.tracking.search import parse_filter, parse_sort

        try:
            fields = [str(parse_filter(f).field) for f in filters]
            fields += [str(parse_sort(k).field) for k in order]
        except InvalidRunFilterError as exc:
            raise click.BadParameter(str(exc), param_hint="--filter/--sort") from None
    elif parent is None:
        listed = _plain_listing(experiment, statuses, limit)
    if listed is None:
        with _tracker() as tracker:
            listed = tracker.list_runs(
                experiment=experiment,
                filters=filters,
                order_by=order,
                status=list(statuses) or None,
                parent_id=parent,
                limit=limit,
            )
    if as_json:
        from loopline.tracking.listing import dumps_listing

        sys.stdout.buffer.write(dumps_listing(listed))
        sys.stdout.flush()
        return
    from loopline.cli.output import console

    if not listed:
        console.print("no runs match" if (filters or statuses or experiment) else "no runs yet")
        return
    from rich.table import Table

    from loopline.tracking.listing import duration

    room = max(0, (console.width - 100) // 12)
    columns = _value_columns(fields, listed, min(room, _EXTRA_METRIC_COLUMNS))
    t = Table(header_style="bold")
    for head in ("id", "experiment", "name", "status", "started", "duration"):
        fixed = head in ("id", "status", "started", "duration")
        t.add_column(head, no_wrap=fixed, min_width=None if fixed else 6, overflow="fold")
    for column in columns:
        t.add_column(column.removeprefix("metrics."), justify="right", min_width=6)
    for r in listed:
        t.add_row(
            r["id"][:8],
            _escape(r["experiment"]),
            _escape(r["name"] or ""),
            _status(r["status"]),
            _when(r["start_time"]),
            _duration(duration(r)) if r["end_time"] else "",
            *(_format(_lookup(r, c)) for c in columns),
        )
    console.print(t)
    if len(listed) == limit:
        console.print(f"[dim]first {limit} runs; see more with --limit[/dim]")


@runs_group.command("show")
@click.argument("run_id")
@json_option
def show_command(run_id: str, as_json: bool) -> None:
    """Show one run: params, latest metrics, tags, inputs, artifacts, code version."""
    from loopline.cli.output import console, print_json, table

    with _tracker() as tracker:
        record = tracker.get_run(run_id)
        children = tracker.search_runs(parent_id=record.id, limit=None)
        trace = _traceback(tracker, record, children)
    if as_json:
        data = record.as_dict()
        data["children"] = [c.id for c in children]
        data["traceback"] = trace
        print_json(data)
        return
    r = record
    git = "-"
    if r.git_commit:
        git = r.git_commit[:12] + (" (uncommitted changes)" if r.git_dirty else "")
    about: list[tuple[str, Any]] = [
        ("id", r.id),
        ("experiment", _escape(r.experiment)),
        ("name", _escape(r.name or "-")),
        ("status", _status(r.status)),
        ("parent", r.parent_id or "-"),
        ("started", _when(r.start_time)),
        ("ended", _when(r.end_time) if r.end_time else "-"),
        ("duration", _duration(r.duration) if r.end_time else "-"),
        ("user", r.user or "-"),
        ("source", _escape(r.source or "-")),
        ("git", git),
    ]
    if r.error:
        about.append(("error", f"[red]{_escape(r.error)}[/red]"))
    console.print(table(f"run {r.id}", ["", ""], about))
    if r.params:
        console.print(table("params", ["key", "value"], _escaped(sorted(r.params.items()))))
    if r.metric_summaries:
        console.print(
            table(
                "metrics (latest)",
                ["key", "value", "step", "points"],
                [
                    (s.key, _format(s.value), s.step, s.points)
                    for s in sorted(r.metric_summaries.values(), key=lambda s: s.key)
                ],
            )
        )
    if r.tags:
        console.print(table("tags", ["key", "value"], _escaped(sorted(r.tags.items()))))
    if r.inputs:
        console.print(
            table(
                "inputs",
                ["kind", "name", "version", "digest", "role"],
                [(i.kind, i.name, i.version, i.digest[:12], i.role) for i in r.inputs],
            )
        )
    if r.artifacts:
        console.print(
            table(
                "artifacts",
                ["name", "digest", "size"],
                [(a.name, a.digest[:12], _size(a.size)) for a in r.artifacts],
            )
        )
    if trace:
        from loopline.cli.output import print_traceback

        print_traceback(trace)
    if children:
        console.print(
            table(
                "child runs",
                ["id", "name", "status", "duration"],
                [
                    (c.id[:8], c.name or "", _status(c.status), _duration(c.duration))
                    for c in children
                ],
            )
        )


@runs_group.command("artifacts")
@click.argument("run_id")
@json_option
def artifacts_command(run_id: str, as_json: bool) -> None:
    """List the artifacts a run logged (reports, tracebacks, files): name, size, digest."""
    from loopline.cli.output import command_line, console, print_json, table

    with _tracker() as tracker:
        record = tracker.get_run(run_id)
    if as_json:
        print_json(
            [
                {"name": a.name, "digest": a.digest, "size": a.size, "created_at": a.created_at}
                for a in record.artifacts
            ]
        )
        return
    if not record.artifacts:
        console.print(f"run {record.id[:12]} logged no artifacts")
        return
    console.print(
        table(
            f"artifacts of run {record.id[:12]} ({_escape(record.name or record.experiment)})",
            ["name", "size", "sha256"],
            [(_escape(a.name), _size(a.size), a.digest[:16]) for a in record.artifacts],
        )
    )
    first = record.artifacts[0].name
    console.print(
        f"next: loopline runs artifact get {record.id[:12]} {command_line(first)} -o FILE",
        highlight=False,
    )


@runs_group.group("artifact", no_args_is_help=True)
def artifact_group() -> None:
    """One artifact of a run."""


@artifact_group.command("get")
@click.argument("run_id")
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write it to this file (default: standard output).",
)
def artifact_get_command(run_id: str, name: str, output: Path | None) -> None:
    """Write artifact NAME of a run (its bytes, verified against their sha256) to a file
    or to standard output."""
    from loopline.cli.output import err_console
    from loopline.tracking.errors import ArtifactError

    with _tracker() as tracker:
        record = tracker.get_run(run_id)
        found = {a.name: a for a in record.artifacts}
        if name not in found:
            from loopline.config import did_you_mean

            raise ArtifactError(
                f"Run {record.id[:12]} has no artifact {name!r}{did_you_mean(name, found)}",
                name=name,
                reason="no such artifact",
                hint=f"List them with: loopline runs artifacts {record.id[:12]}",
            )
        data: bytes = tracker.stores.cas.get(found[name].digest)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    output.write_bytes(data)
    err_console.print(f"wrote {output} ({_size(len(data))})", highlight=False)


@runs_group.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--only-diff", is_flag=True, help="Show only the rows whose values differ.")
@json_option
def compare_command(run_ids: tuple[str, ...], only_diff: bool, as_json: bool) -> None:
    """Compare runs side by side: params and latest metrics; differing rows highlighted."""
    from loopline.cli.output import console, print_json

    with _tracker() as tracker:
        records: list[RunRecord] = []
        for run_id in run_ids:
            record = tracker.get_run(run_id)
            if all(record.id != r.id for r in records):
                records.append(record)
    if len(records) < 2:
        raise click.UsageError("give at least two different runs to compare")
    rows = compare_rows(records)
    if only_diff:
        rows = [row for row in rows if row["differs"]]
    if as_json:
        print_json(
            {
                "runs": [{"id": r.id, "name": r.name, "experiment": r.experiment} for r in records],
                "rows": [
                    {**row, "values": [_json_value(v) for v in row["values"]]} for row in rows
                ],
            }
        )
        return
    from rich.table import Table

    t = Table(title="compare", title_justify="left", header_style="bold")
    t.add_column("≠", justify="center")
    t.add_column("field")
    for r in records:
        t.add_column(f"{r.id[:8]}" + (f"\n{r.name}" if r.name else ""), overflow="fold")
    for row in rows:
        cells = [_format(v) if v is not None else "-" for v in row["values"]]
        if row["differs"]:
            t.add_row("≠", row["field"], *cells, style="bold yellow")
        else:
            t.add_row("", row["field"], *cells, style="dim")
    console.print(t)
    differing = sum(1 for row in rows if row["differs"])
    console.print(f"{differing} of {len(rows)} rows differ")


def _traceback(tracker: Tracker, record: RunRecord, children: Sequence[RunRecord]) -> str | None:
    """The traceback a failed run keeps (a pipeline step's attempt), or for a pipeline's
    run the one of its failed step; None when there is none."""
    from loopline.pipeline.executors import TRACEBACK_ARTIFACT

    for run in (record, *sorted(children, key=lambda c: c.start_time, reverse=True)):
        if run.status != "failed":
            continue
        if run is not record:
            run = tracker.get_run(run.id)
        for artifact in run.artifacts:
            if artifact.name == TRACEBACK_ARTIFACT:
                data: bytes = tracker.stores.cas.get(artifact.digest)
                return data.decode("utf-8", "replace")
    return None


def compare_rows(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """Rows of a comparison: attributes, then params, then metrics, each with the value of
    every run (None where a run lacks it) and whether they differ."""
    rows: list[dict[str, Any]] = []

    def add(field: str, values: list[Any]) -> None:
        differs = any(not _same(values[0], v) for v in values[1:])
        rows.append({"field": field, "values": values, "differs": differs})

    add("experiment", [r.experiment for r in records])
    add("status", [r.status for r in records])
    add("git_commit", [r.git_commit[:12] if r.git_commit else None for r in records])
    add("duration_s", [None if r.duration is None else round(r.duration, 3) for r in records])
    for key in sorted({k for r in records for k in r.params}):
        add(f"params.{key}", [r.params.get(key) for r in records])
    for key in sorted({k for r in records for k in r.metrics}):
        add(f"metrics.{key}", [r.metrics.get(key) for r in records])
    return rows


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def _with_direction(key: str, desc: bool) -> str:
    text = key.strip()
    if not desc or text.startswith(("-", "+")) or text.lower().endswith((" asc", " desc")):
        return text
    return f"{text} desc"


def _value_columns(fields: list[str], listed: Sequence[ListedRun], extra: int) -> list[str]:
    """Columns for the params and metrics named by filters and sort, then a few metrics."""
    columns: list[str] = []
    for f in fields:
        if f.startswith(("params.", "metrics.", "tags.")) and f not in columns:
            columns.append(f)
    others = sorted({f"metrics.{k}" for r in listed for k in r["metrics"]} - set(columns))
    return columns + others[:extra]


def _lookup(run: ListedRun, column: str) -> Any:
    kind, _, key = column.partition(".")
    if key.startswith('"') and key.endswith('"'):
        key = key[1:-1]
    values: Mapping[str, Any] = run["metrics" if kind == "metrics" else kind]  # type: ignore[literal-required]
    return values.get(key)


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return format(value, ".6g")
    return _escape(str(value))


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        from loopline.tracking.records import json_number

        return json_number(value)
    return value


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _escaped(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(_escape(k), _escape(v)) for k, v in rows]


def _status(status: str) -> str:
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/{style}]" if style else status


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
