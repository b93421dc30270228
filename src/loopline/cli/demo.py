"""``loopline demo``: the lifecycle on embedded defaults, in a fresh project folder."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from loopline.cli.executing import executor_options
from loopline.cli.output import console, json_option, print_json, table

if TYPE_CHECKING:
    from loopline.loop.timeline import Entry

#: The scenarios ``--scenario`` takes (kept here so ``--help`` does not import the cycle).
SCENARIO_NAMES = ("drift", "concept", "broken_feature", "bad_challenger", "steady")


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    help="Project folder to use (default: a new temporary folder).",
)
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice([*SCENARIO_NAMES, "none"]),
    help="What the loop stage plays, in order (repeatable; default: bad_challenger, then "
    "drift; none: stop after serving).",
)
@click.option(
    "--metadata-url",
    metavar="URL",
    help="Run on this metadata database (postgresql+psycopg://...) instead of SQLite.",
)
@click.option(
    "--artifacts-url",
    metavar="URL",
    help="Run on this artifact store (s3://bucket/prefix) instead of a local folder.",
)
@executor_options("the pipelines' steps")
@click.option(
    "--serve-workers",
    type=click.IntRange(1, 16),
    default=None,
    help="Worker processes serving the loop stage's endpoint (default: 1 on the embedded "
    "stores, 2 on shared ones).",
)
@json_option
def demo_command(
    directory: Path | None,
    scenarios: tuple[str, ...],
    metadata_url: str | None,
    artifacts_url: str | None,
    executor_kind: str | None,
    address: str | None,
    serve_workers: int | None,
    as_json: bool,
) -> None:
    """Run the lifecycle on embedded defaults (SQLite + local folder), from nothing:
    data, training, gates, registry, serving, then the loop (monitor, alarms,
    retraining, canary, promotion or rollback) on live traffic.

    The same cycle runs on shared infrastructure by configuration alone:
    --metadata-url (PostgreSQL), --artifacts-url (S3), --executor ray."""
    import os

    from loopline.project.demo import STAGES, run_demo

    chosen = None if not scenarios else tuple(s for s in scenarios if s != "none")
    target = directory or Path(tempfile.mkdtemp(prefix="loopline-demo-"))
    environ = dict(os.environ)
    for name, value in (
        ("LOOPLINE_METADATA_URL", metadata_url),
        ("LOOPLINE_ARTIFACTS_URL", artifacts_url),
        ("LOOPLINE_EXECUTOR_KIND", executor_kind),
        ("LOOPLINE_EXECUTOR_ADDRESS", address),
    ):
        if value:
            environ[name] = value
    shared = bool(metadata_url or artifacts_url or environ.get("LOOPLINE_METADATA_URL"))
    workers = serve_workers or (2 if shared else 1)
    if as_json:
        report = run_demo(target, scenarios=chosen, environ=environ, serve_workers=workers)
        print_json(report.as_dict())
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from loopline.cli.loop import entry_line

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("setting up the project", total=len(STAGES))
        started = False

        def on_stage(name: str, description: str) -> None:
            nonlocal started
            if started:
                progress.advance(task)
            started = True
            progress.update(task, description=f"{name}: {description}")

        def on_entry(entry: Entry) -> None:
            # A window with no rows, or one run again for its late labels, says nothing new.
            if entry.kind == "monitor" and (
                entry.numbers.get("again") or not entry.numbers.get("rows")
            ):
                return
            progress.console.print(entry_line(entry), highlight=False)

        def on_note(note: str) -> None:
            bold = note.startswith("scenario ")
            progress.console.print(f"[bold]{note}[/bold]" if bold else f"  {note}")

        report = run_demo(
            target,
            on_stage=on_stage,
            scenarios=chosen,
            on_entry=on_entry,
            on_note=on_note,
            environ=environ,
            serve_workers=workers,
        )
        progress.advance(task)
    console.print(f"[bold]loopline demo[/bold]: project in {report.project_dir}")
    root = str(report.project_dir)
    console.print(
        table(
            None,
            ["stage", "what", "where", "detail"],
            [(i.stage, i.what, _relative(i.where, root), i.detail) for i in report.items],
        )
    )
    console.print(f"Look around: cd {report.project_dir} && loopline doctor")
    console.print(
        f"See it in the browser: cd {report.project_dir} && loopline ui "
        "(runs, models, deployments, monitors, alarms and the loop)"
    )
    if report.facts.loop:
        console.print(
            "What the loop did: loopline loop history credit_risk; "
            "loopline alarms ls; loopline monitor show credit_risk@champion"
        )


def _relative(where: str, root: str) -> str:
    """Paths inside the project are shown relative to it, so the table stays readable."""
    return where.replace(root + "/", "./").replace(root, ".")
