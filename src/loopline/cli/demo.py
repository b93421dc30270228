"""``loopline demo``: the lifecycle on embedded defaults, in a fresh project folder."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from loopline.cli.output import console, json_option, print_json, table


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    help="Project folder to use (default: a new temporary folder).",
)
@json_option
def demo_command(directory: Path | None, as_json: bool) -> None:
    """Run the lifecycle on embedded defaults (SQLite + local folder), from nothing."""
    from loopline.project.demo import STAGES, run_demo

    target = directory or Path(tempfile.mkdtemp(prefix="loopline-demo-"))
    if as_json:
        print_json(run_demo(target).as_dict())
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

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

        report = run_demo(target, on_stage=on_stage)
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


def _relative(where: str, root: str) -> str:
    """Paths inside the project are shown relative to it, so the table stays readable."""
    return where.replace(root + "/", "./").replace(root, ".")
