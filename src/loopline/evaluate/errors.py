"""The errors of evaluation and the gate language.

EvaluationError  A model could not be evaluated (bad inputs, unknown task or metric) or...
    GateSyntaxError  A gate criterion is not valid in the gate language (``f1 >= 0.8``...)
    GateFailedError  One or more gate criteria failed; ``verdict`` holds every criterio...
"""

from __future__ import annotations

from loopline.errors import LooplineError


class EvaluationError(LooplineError):
    """A model could not be evaluated (bad inputs, unknown task or metric) or gated."""


class GateSyntaxError(EvaluationError):
    """A gate criterion is not valid in the gate language (``f1 >= 0.8``...).

    ``position`` is the 0-based index in ``criterion`` where ``expected`` was expected.
    """

    def __init__(
        self, criterion: str, position: int, expected: str, found: str | None = None
    ) -> None:
        self.criterion = criterion
        self.position = position
        self.expected = expected
        self.found = found
        where = f"at position {position}" + (f" (found {found})" if found else "")
        super().__init__(
            f"Invalid gate criterion {criterion!r}: expected {expected} {where}",
            hint="A criterion compares two expressions, like 'f1 >= 0.8' or "
            "'roc_auc >= champion.roc_auc - 0.005', or is 'data.valid'",
        )


class GateFailedError(EvaluationError):
    """One or more gate criteria failed; ``verdict`` holds every criterion's result."""

    def __init__(self, verdict: object, failures: list[str]) -> None:
        self.verdict = verdict
        self.failures = failures
        shown = "; ".join(failures[:3]) + ("; ..." if len(failures) > 3 else "")
        super().__init__(
            f"{len(failures)} gate criteri{'on' if len(failures) == 1 else 'a'} failed: {shown}"
        )


class EvaluationDocumentError(EvaluationError):
    """A stored evaluation (JSON document) that cannot be read: ``reason`` says why."""

    def __init__(self, message: str, *, reason: str, hint: str | None = None) -> None:
        self.reason = reason
        super().__init__(message, hint=hint)


class EvaluationInputError(EvaluationError):
    """The data or model given to an evaluation is not usable: ``argument`` names the
    input (``y_true``, ``y_pred``, ``proba``, ``classes``, ``model``, a slice column),
    ``found`` what it held, when that helps."""

    def __init__(
        self, message: str, *, argument: str, found: object = None, hint: str | None = None
    ) -> None:
        self.argument = argument
        self.found = found
        super().__init__(message, hint=hint)


class EvaluationArgumentError(EvaluationError):
    """An option of an evaluation, a threshold or a gate is wrong: ``argument`` names it,
    ``value`` is what was given."""

    def __init__(
        self, message: str, *, argument: str, value: object = None, hint: str | None = None
    ) -> None:
        self.argument = argument
        self.value = value
        super().__init__(message, hint=hint)
