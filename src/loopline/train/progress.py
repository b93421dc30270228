"""A live view of a search for people: trials done / total, pruned, failed, best so far.

    with search_progress(n_trials=40) as show:
        search(stores, objective, space, study="churn", n_trials=40, progress=show)

On a terminal it is a Rich progress bar. Inside another live display on the same
console (the step table of ``loopline run``) it is drawn as part of that display. When
the output is not a terminal (CI logs, a pipe, ``--json``) it prints one plain line per
trial instead, on stderr by default so that stdout stays clean for machine-readable
output.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from loopline.train.search import SearchProgress

if TYPE_CHECKING:
    from rich.console import Console

ProgressCallback = Callable[[SearchProgress], None]


@contextmanager
def search_progress(
    n_trials: int | None = None,
    *,
    title: str = "search",
    console: Console | None = None,
) -> Iterator[ProgressCallback]:
    """A ``progress`` callback for :func:`loopline.train.search`, live while the block runs.

    ``n_trials`` sets the total before the first update (the search's own ``n_trials``
    replaces it). ``console`` defaults to the console of a live display that owns the
    terminal (so the bar nests in it), else a console on stderr.
    """
    con = console or _live_console() or _stderr_console()
    if con.is_terminal and not con.is_dumb_terminal:
        with _bar(con, n_trials, title) as update:
            yield update
    else:
        yield _PlainLines(con, title)


@contextmanager
def _bar(con: Console, n_trials: int | None, title: str) -> Iterator[ProgressCallback]:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("pruned {task.fields[pruned]}  failed {task.fields[failed]}"),
        TextColumn("best [bold]{task.fields[best]}"),
        TimeElapsedColumn(),
        console=con,
        transient=False,
    )
    with progress:
        task = progress.add_task(title, total=n_trials, pruned=0, failed=0, best="-")

        def update(p: SearchProgress) -> None:
            progress.update(
                task,
                completed=p.n_done,
                total=p.n_trials,
                pruned=p.n_pruned,
                failed=p.n_failed,
                best=format_value(p.best_value),
            )

        yield update


class _PlainLines:
    """One line per trial, for logs: ``search trial 7 pruned | 8/40 done, ... best 0.91``."""

    def __init__(self, con: Console, title: str) -> None:
        self.console = con
        self.title = title
        self.lock = threading.Lock()

    def __call__(self, p: SearchProgress) -> None:
        counts = (
            f"{p.n_done}/{p.n_trials} done, {p.n_pruned} pruned, {p.n_failed} failed, "
            f"best {format_value(p.best_value)}"
        )
        if p.trial is None:
            line = f"{self.title} {p.study}: starting; {counts}"
        else:
            value = f" {format_value(p.value)}" if p.state == "complete" else ""
            line = f"{self.title} trial {p.trial} {p.state}{value} | {counts}"
        with self.lock:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def format_value(value: float | None) -> str:
    """A score for display: 4 significant digits, ``-`` when there is none yet."""
    return "-" if value is None else f"{value:.4g}"


def _live_console() -> Console | None:
    """The console of the live display that currently redirects stdout, if any.

    Rich's Live swaps ``sys.stdout`` for a proxy bound to its console; drawing the bar on
    that same console nests it in the display instead of fighting it for the terminal.
    """
    from rich.console import Console
    from rich.file_proxy import FileProxy

    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, FileProxy):
            # The proxy keeps its console in a name-mangled attribute (no public accessor).
            owner = getattr(stream, "_FileProxy__console", None)
            if isinstance(owner, Console):
                return owner
    return None


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)
