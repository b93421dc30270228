"""``loopline watch SOURCE --model M --out DEST``: score every new file, exactly once."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import click

from loopline.cli.output import console, json_option, print_json

#: ``--once`` waits at most this many polls for files that are still being written.
_ONCE_MAX_POLLS = 30


@click.command("watch")
@click.argument("source")
@click.option("--model", "model_ref", required=True, help="MODEL@ALIAS (or MODEL/VERSION).")
@click.option("--out", "dest", required=True, help="Folder or s3:// prefix for the outputs.")
@click.option("--poll", "poll_s", type=float, default=2.0, show_default=True, help="Seconds.")
@click.option(
    "--settle",
    "settle_s",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds a file must stay unchanged before it is read.",
)
@click.option("--attempts", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--backoff", "backoff_s", type=float, default=5.0, show_default=True)
@click.option("--chunk-rows", type=click.IntRange(min=1), default=50_000, show_default=True)
@click.option("--format", "out_format", type=click.Choice(["parquet", "csv"]), default="parquet")
@click.option("--name", default=None, help="Watcher name in the ledger (default: derived).")
@click.option("--once", is_flag=True, help="Process what is there, then exit (cron, tests).")
@json_option
def watch_command(
    source: str,
    model_ref: str,
    dest: str,
    poll_s: float,
    settle_s: float,
    attempts: int,
    backoff_s: float,
    chunk_rows: int,
    out_format: str,
    name: str | None,
    once: bool,
    as_json: bool,
) -> int:
    """Watch SOURCE (a folder or s3://bucket/prefix) and score each new CSV/Parquet file.

    Each file is scored once, recorded in the database: kill the watcher at any moment and
    start it again, nothing is scored twice or skipped. SIGTERM or Ctrl-C finishes the
    current file, then exits.
    """
    from loopline.config import load_settings
    from loopline.store.stores import Stores
    from loopline.trigger.watch import FileOutcome, Watcher

    outcomes: list[FileOutcome] = []

    def report(outcome: FileOutcome) -> None:
        outcomes.append(outcome)
        if not as_json:
            extra = f"{outcome.rows_scored} rows" if outcome.status == "done" else ""
            if outcome.rows_invalid:
                extra += f", {outcome.rows_invalid} invalid"
            if outcome.error:
                extra = outcome.error
            console.print(f"{outcome.status:9} {outcome.key} -> {outcome.output_key} {extra}")

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with Stores.open(load_settings()) as stores:
            watcher = Watcher(
                stores,
                source,
                model_ref,
                dest,
                poll_s=poll_s,
                settle_s=settle_s,
                attempts=attempts,
                backoff_s=backoff_s,
                chunk_rows=chunk_rows,
                out_format=out_format,
                name=name,
                on_outcome=report,
            )
            if once:
                try:
                    watcher.run_once(stop)
                    polls = 1
                    while watcher.pending and not stop.is_set() and polls < _ONCE_MAX_POLLS:
                        time.sleep(max(settle_s, 0.05))
                        watcher.run_once(stop)
                        polls += 1
                finally:
                    watcher.close()
            else:
                if not as_json:
                    console.print(f"watching {watcher.source} -> {watcher.dest} ({watcher.name})")
                watcher.run_forever(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if as_json:
        print_json([o.to_dict() for o in outcomes])
    return 1 if any(o.status == "failed" for o in outcomes) else 0
