"""How commands print: Rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)

STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def print_json(data: Any) -> None:
    """Machine-readable output on stdout: one JSON document, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left", show_lines=False, header_style="bold")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    return t


def status_text(status: str) -> str:
    style = STATUS_STYLE.get(status, "")
    return f"[{style}]{status}[/{style}]" if style else status


F = TypeVar("F", bound=Callable[..., Any])


def json_option(fn: F) -> F:
    """The ``--json`` flag every listing command has (passed as ``as_json``)."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print the result as one JSON document."
    )(fn)
