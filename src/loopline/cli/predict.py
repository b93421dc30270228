"""``loopline predict MODEL INPUT OUTPUT``: batch transform of one file."""

from __future__ import annotations

from typing import Any

import click

from loopline.cli.executing import executor_options, opened_executor
from loopline.cli.output import console, err_console, json_option, print_json, table


@click.command("predict")
@click.argument("model")
@click.argument("input_file", metavar="INPUT")
@click.argument("output_file", metavar="OUTPUT")
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=50_000,
    show_default=True,
    help="Rows read, validated and scored at a time (bounds memory).",
)
@click.option("--no-log", is_flag=True, help="Do not write the rows to the prediction log.")
@click.option(
    "--native",
    is_flag=True,
    help="Score with the native model even when the package has an ONNX export.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Chunks scored at once in this process (default: one per core).",
)
@executor_options("the input's chunks")
@json_option
def predict_command(
    model: str,
    input_file: str,
    output_file: str,
    chunk_rows: int,
    no_log: bool,
    native: bool,
    threads: int | None,
    executor_kind: str | None,
    address: str | None,
    as_json: bool,
) -> int:
    """Score INPUT (CSV or Parquet; a path or s3://...) with MODEL (name@alias, name/3).

    OUTPUT gets the valid rows with `prediction` (and `proba.<class>` for classifiers),
    and `request_id` and `row` (the keys of the prediction log, for `loopline feedback
    import`), as Parquet or CSV by its extension, written whole or not at all. Columns
    the model does not read keep their types. Rows that do not fit
    the model's signature go to OUTPUT.invalid.csv (row, column, value, expected). Exits
    1 when some rows were invalid.

    The model runs on its ONNX export when the registry kept one (--native: the native
    model), chunks read, scored and written at once. With --executor ray a Parquet input
    is split into shards scored as Ray tasks; the output is the same as a local run's.
    """
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from loopline.config import load_settings
    from loopline.store.stores import Stores
    from loopline.trigger.batch import predict_file

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=as_json,
    )
    task = bar.add_task("scoring", total=None, visible=False)
    read_bar = Progress(
        TextColumn("reading"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=as_json,
    )

    def reading(done: int, total: int | None) -> None:
        if not read_bar.tasks:
            read_bar.start()
            read_bar.add_task("reading", total=total)
        read_bar.update(read_bar.tasks[0].id, completed=done, total=total)

    def progress(done: int, total: int | None) -> None:
        if read_bar.tasks and not read_bar.finished:
            read_bar.stop()
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total, visible=True)

    with Stores.open(load_settings()) as stores:
        try:
            with opened_executor(
                stores.settings, executor_kind, address, thread_name="loopline-batch"
            ) as executor:
                result = predict_file(
                    stores,
                    model,
                    input_file,
                    output_file,
                    chunk_rows=chunk_rows,
                    progress=progress,
                    log=not no_log,
                    reading=reading,
                    native=native,
                    threads=threads,
                    executor=executor,
                )
        finally:
            read_bar.stop()
            bar.stop()
    data: dict[str, Any] = result.to_dict()
    if as_json:
        print_json(data)
    else:
        console.print(
            table(
                f"{result.model}/{result.version} -> {result.output}",
                ["rows", "scored", "invalid", "model", "scoring s", "rows/s", "total s"],
                [
                    (
                        result.rows_total,
                        result.rows_scored,
                        result.rows_invalid,
                        result.path,
                        f"{result.seconds:.2f}",
                        f"{result.rows_per_second:,.0f}",
                        f"{result.total_seconds:.2f}",
                    )
                ],
            )
        )
        if result.invalid_path:
            console.print(f"invalid rows (not scored): {result.invalid_path}")
    return 1 if result.rows_invalid else 0
