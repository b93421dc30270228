"""``loopline run FILE[:NAME] -p key=value``: run a pipeline with a live view of its steps."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click

from loopline.cli.executing import executor_options, opened_executor
from loopline.cli.output import (
    command_line,
    console,
    end_line,
    err_console,
    json_option,
    print_json,
    print_traceback,
    table,
)

if TYPE_CHECKING:
    from rich.table import Table

    from loopline.pipeline.graph import Pipeline
    from loopline.pipeline.runner import StepRecord

_STYLE = {
    "pending": "dim",
    "running": "cyan",
    "done": "green",
    "cached": "blue",
    "resumed": "blue",
    "failed": "bold red",
    "skipped": "yellow",
}


def _parse_params(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="-p")
        out[key.strip()] = value
    return out


def _print_notes(result: Any) -> None:
    """What the steps that ran noted (a registered version and its serving path, a
    refused promotion, the next commands)."""
    for name, rec in result.steps.items():
        for note in rec.notes:
            console.print(f"[bold]{name}[/bold]: {note}", highlight=False)


@click.command("run")
@click.argument("target", metavar="FILE[:NAME]")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a pipeline parameter (repeatable).",
)
@click.option("--no-cache", is_flag=True, help="Run every step, even when a cached output exists.")
@click.option(
    "--resume",
    metavar="RUN_ID|last",
    help="Continue a failed run: keep its successful steps, rerun from the failure.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Steps run at once (default: up to 4 locally, the cluster's CPUs on Ray).",
)
@executor_options("steps")
@click.option("--describe", is_flag=True, help="Show the steps and parameters; run nothing.")
@json_option
def run_command(
    target: str,
    params: tuple[str, ...],
    no_cache: bool,
    resume: str | None,
    workers: int | None,
    executor_kind: str | None,
    address: str | None,
    describe: bool,
    as_json: bool,
) -> None:
    """Run the pipeline defined in FILE (NAME picks one when the file has several).

    Steps whose code, inputs and parameters are unchanged reuse their cached outputs.
    Exits 1 when a step fails, naming the command that resumes the run.
    """
    from loopline.config import load_settings
    from loopline.pipeline.loader import load_pipeline
    from loopline.pipeline.runner import run_pipeline
    from loopline.store.stores import Stores
    from loopline.tracking import Tracker

    settings = load_settings()
    pipeline, path = load_pipeline(target)
    if describe:
        _describe(pipeline, as_json)
        return
    given = _parse_params(params)
    if resume is None:
        pipeline.resolve_params(given)  # a bad -p is an error before anything is shown
    with Stores.open(settings) as stores:
        tracker = Tracker(stores)
        with opened_executor(
            settings, executor_kind, address, workers=workers, thread_name="loopline-step"
        ) as executor:
            if as_json:
                result = run_pipeline(
                    pipeline,
                    stores,
                    params=given,
                    use_cache=not no_cache,
                    resume=resume,
                    executor=executor,
                    tracker=tracker,
                    source=path,
                )
                executor.shutdown()
                print_json(result.as_dict())
            else:
                result = _run_live(
                    pipeline, stores, given, not no_cache, resume, executor, tracker, path
                )
    if not as_json:
        _print_notes(result)
    if not result.ok:
        from loopline.pipeline.errors import PipelineError

        failed = [rec for rec in result.steps.values() if rec.traceback]
        if failed and not as_json:
            err_console.print(f"step {failed[0].step!r} failed:", highlight=False)
            print_traceback(failed[0].traceback or "")
        resume_with = command_line("loopline", "run", target, "--resume", result.id[:12])
        raise PipelineError(
            f"Pipeline {pipeline.name!r} {result.status}: {result.error}",
            hint=f"Fix it, then resume with: {resume_with}",
        )


def _run_live(
    pipeline: Pipeline,
    stores: Any,
    given: dict[str, str],
    use_cache: bool,
    resume: str | None,
    executor: Any,
    tracker: Any,
    path: Any,
) -> Any:
    from rich.live import Live

    from loopline.pipeline.runner import run_pipeline

    records: dict[str, StepRecord] = {}
    started: dict[str, float] = {}
    t0 = time.perf_counter()

    def render() -> Table:
        rows = []
        for name in pipeline.order:
            rec = records.get(name)
            status = rec.status if rec else "pending"
            style = _STYLE.get(status, "")
            if status == "running":
                secs = f"{time.perf_counter() - started.get(name, t0):.1f}s"
            elif rec and rec.seconds:
                secs = f"{rec.seconds:.1f}s"
            else:
                secs = ""
            detail = ""
            if rec and rec.error:
                detail = rec.error
            elif rec and rec.output_digest:
                detail = f"{rec.output_format} {rec.output_digest[:12]}"
            attempts = str(rec.attempts) if rec and rec.attempts > 1 else ""
            rows.append((name, f"[{style}]{status}[/{style}]", secs, attempts, detail))
        return table(
            f"{pipeline.name}  ({time.perf_counter() - t0:.1f}s)",
            ["step", "status", "time", "attempts", "output"],
            rows,
        )

    with Live(render(), console=console, refresh_per_second=8, transient=False) as live:

        def on_event(name: str, status: str, rec: StepRecord) -> None:
            records[name] = rec
            if status == "running":
                started[name] = time.perf_counter()
            live.update(render())

        result = run_pipeline(
            pipeline,
            stores,
            params=given,
            use_cache=use_cache,
            resume=resume,
            executor=executor,
            tracker=tracker,
            on_event=on_event,
            source=path,
        )
        executor.shutdown()
        live.update(render())
    end_line()
    counts: dict[str, int] = {}
    for rec in result.steps.values():
        counts[rec.status] = counts.get(rec.status, 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    console.print(
        f"pipeline run {result.id[:12]} {result.status} ({summary}); "
        f"tracked as run {result.run_id[:12] if result.run_id else '-'}"
    )
    return result


def _describe(pipeline: Pipeline, as_json: bool) -> None:
    desc = pipeline.describe()
    params = {name: (None if p.required else p.default) for name, p in pipeline.params.items()}
    if as_json:
        print_json({"pipeline": pipeline.name, "steps": desc, "params": params})
        return
    console.print(
        table(
            f"pipeline {pipeline.name}",
            ["step", "inputs", "params", "retries"],
            [
                (
                    d["step"],
                    ", ".join(f"{k}<-{v}" for k, v in d["inputs"].items()),
                    ", ".join(d["params"]),
                    d["retries"],
                )
                for d in desc
            ],
        )
    )
    console.print(
        table(
            "parameters",
            ["name", "default"],
            [
                (k, "(required)" if pipeline.params[k].required else repr(v))
                for k, v in sorted(params.items())
            ],
        )
    )
