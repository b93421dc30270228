"""How commands print: Rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from loopline.cli.options import json_option as json_option

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


#: Frames of a failure's traceback shown without ``--debug`` (the deepest ones).
TRACEBACK_FRAMES = 3


def debug_enabled() -> bool:
    """``loopline --debug`` or ``LOOPLINE_DEBUG=1``: whole tracebacks of failures."""
    return os.environ.get("LOOPLINE_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def last_frames(trace: str, frames: int | None = TRACEBACK_FRAMES) -> str:
    """The traceback text ``trace`` cut for the terminal: of a chain of exceptions only the
    last one, of its frames the last ``frames`` and the deepest one in the user's own code
    (not a library's), with the exception lines. ``frames=None`` keeps everything."""
    lines = trace.rstrip("\n").splitlines()
    if frames is None:
        return "\n".join(lines)
    heads = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    block = lines[heads[-1] :] if heads else lines
    starts = [i for i, line in enumerate(block) if line.startswith('  File "')]
    if len(starts) <= frames and len(block) == len(lines):
        return "\n".join(lines)
    ends = [*starts[1:], _exception_start(block, starts)]
    spans = list(zip(starts, ends, strict=True))
    keep = set(range(max(0, len(spans) - frames), len(spans)))
    own = [i for i, (start, _) in enumerate(spans) if not _library_frame(block[start])]
    if own:
        keep.add(own[-1])
    out = block[:1] if block and block[0].startswith("Traceback") else []
    shown = -1
    for i in sorted(keep):
        if i > shown + 1:
            skipped = i - shown - 1
            out.append(f"  ... {skipped} frame{'s' if skipped != 1 else ''} (all with --debug)")
        out.extend(block[spans[i][0] : spans[i][1]])
        shown = i
    out.extend(block[ends[-1] :] if spans else block[1:])
    return "\n".join(out)


def _exception_start(block: list[str], starts: list[int]) -> int:
    """Where the exception lines begin after the last frame of a traceback block."""
    i = (starts[-1] + 1) if starts else 1
    while i < len(block) and block[i].startswith("    "):
        i += 1
    return i


def _library_frame(line: str) -> bool:
    return any(part in line for part in ("site-packages", "dist-packages", "/lib/python3"))


def print_traceback(trace: str) -> None:
    """A failure's traceback on stderr: its last frames, or all with ``--debug``."""
    err_console.print(
        last_frames(trace, None if debug_enabled() else TRACEBACK_FRAMES),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def end_line() -> None:
    """End the line a live display left open, when the output is not a terminal (a pipe,
    a CI log): Rich's last frame of a live table has no newline there."""
    if not console.is_terminal:
        console.file.write("\n")


def command_line(*words: str) -> str:
    """A command for a message, quoted so that it pastes into a shell as it is."""
    return " ".join(shlex.quote(w) for w in words)
