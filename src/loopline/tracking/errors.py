"""The errors of tracked runs: starting, logging and querying them.

TrackingError  A run cannot be started, logged to or queried
    RunNotFoundError  No run has that id, or an id prefix matches several runs (``candi...
    ParamConflictError  A param was logged again with a different value: params are imm...
    InvalidMetricError  A metric whose value is not a number (NaN and infinities are nu...
    InvalidRunFilterError  A run filter or sort expression that cannot be parsed
"""

from __future__ import annotations

from loopline.errors import ConfigError, LooplineError


class TrackingError(LooplineError):
    """A run cannot be started, logged to or queried."""


class RunNotFoundError(TrackingError):
    """No run has that id, or an id prefix matches several runs (``candidates``)."""

    def __init__(self, run_id: str, candidates: tuple[str, ...] = ()) -> None:
        self.run_id = run_id
        self.candidates = candidates
        if candidates:
            shown = ", ".join(candidates[:5]) + (", ..." if len(candidates) > 5 else "")
            message = (
                f"Run id prefix {run_id!r} is ambiguous: it matches {len(candidates)} runs "
                f"({shown})"
            )
            hint = "Give more characters of the id (see: loopline runs ls)"
        else:
            message = f"No run with id or id prefix {run_id!r}"
            hint = "List the runs with: loopline runs ls"
        super().__init__(message, hint=hint)


class ParamConflictError(TrackingError):
    """A param was logged again with a different value: params are immutable."""

    def __init__(self, run_id: str, key: str, old: str, new: str) -> None:
        self.run_id = run_id
        self.key = key
        self.old = old
        self.new = new
        super().__init__(
            f"Param {key!r} of run {run_id} is already {old!r} and cannot change to {new!r}",
            hint="Params are immutable: log the new value under another key, or start a new run",
        )


class InvalidMetricError(TrackingError):
    """A metric whose value is not a number (NaN and infinities are numbers), or a bad
    key, step or timestamp."""

    def __init__(self, key: object, value: object, expected: str) -> None:
        self.key = key
        self.value = value
        self.expected = expected
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(
            f"Metric {key!r}: {shown} ({type(value).__name__}) is not valid; expected {expected}"
        )


class InvalidRunFilterError(TrackingError):
    """A run filter or sort expression that cannot be parsed."""

    def __init__(self, expression: str, reason: str) -> None:
        self.expression = expression
        self.reason = reason
        super().__init__(
            f"Invalid run filter {expression!r}: {reason}",
            hint="Write filters as <params|metrics|tags|attributes>.<key> <op> <value>, "
            'e.g. "metrics.f1 >= 0.8" or "params.model = rf"',
        )


class TrackingArgumentError(TrackingError, ConfigError):
    """A tracker or run option, key or input is wrong: ``argument`` names it, ``value`` is
    what was given; also a ConfigError (the CLI exits 2)."""

    def __init__(
        self, message: str, *, argument: str, value: object = None, hint: str | None = None
    ) -> None:
        self.argument = argument
        self.value = value
        super().__init__(message, hint=hint)


class RunEndedError(TrackingError):
    """Something was logged to (or a second end asked of) a run that has ended."""

    def __init__(self, message: str, *, run_id: str, status: str, hint: str | None = None):
        self.run_id = run_id
        self.status = status
        super().__init__(message, hint=hint)


class ArtifactError(TrackingError):
    """An artifact cannot be stored under ``name``: ``reason`` says why."""

    def __init__(self, message: str, *, name: str, reason: str, hint: str | None = None):
        self.name = name
        self.reason = reason
        super().__init__(message, hint=hint)
