"""The errors of batch prediction of files and the file watcher.

TriggerError  A file cannot be scored by batch prediction or the watcher (``loopline.tr...
    BatchInputError  An input file that cannot be scored as a whole (not row by row)
    BatchOutputError  The output of a batch prediction cannot be written; nothing was l...
"""

from __future__ import annotations

from loopline.errors import LooplineError


class TriggerError(LooplineError):
    """A file cannot be scored by batch prediction or the watcher (``loopline.trigger``).

    TriggerError
    ├── BatchInputError     the input cannot be read as a table, or lacks the model's columns
    └── BatchOutputError    the output cannot be written where asked (format, place)
    """


class BatchInputError(TriggerError):
    """An input file that cannot be scored as a whole (not row by row)."""

    def __init__(self, source: str, reason: str, *, hint: str | None = None) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"Cannot score {source}: {reason}", hint=hint)


class BatchOutputError(TriggerError):
    """The output of a batch prediction cannot be written; nothing was left at the target."""

    def __init__(self, target: str, reason: str, *, hint: str | None = None) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"Cannot write {target}: {reason}", hint=hint)
