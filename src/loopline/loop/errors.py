"""The errors of the loop: the controller's lease, rollouts, and asking for one.

LoopError  The loop controller cannot do what was asked (``loopline.loop``)
    LeaseLostError  This controller no longer holds the lease: another one drives the loop
    RolloutNotFoundError  No rollout with that id (or no rollout of that model)
    RolloutActiveError  The model already has a rollout in progress
    LoopConfigError  The loop of a model cannot run as configured (no pipeline, no gates ...)
"""

from __future__ import annotations

from loopline.errors import ConfigError, LooplineError


class LoopError(LooplineError):
    """The loop controller cannot do what was asked (``loopline.loop``)."""


class LeaseLostError(LoopError):
    """This controller no longer holds the lease: another one drives the loop now, so this
    one must not write (its step is abandoned; the holder resumes it)."""

    def __init__(self, message: str, *, holder: str | None = None) -> None:
        self.holder = holder
        super().__init__(message)


class RolloutNotFoundError(LoopError):
    """No rollout with that id (or no rollout of that model)."""


class RolloutActiveError(LoopError):
    """The model already has a rollout in progress: one at a time per model."""

    def __init__(self, model: str, rollout_id: str, state: str) -> None:
        self.model = model
        self.rollout_id = rollout_id
        self.state = state
        super().__init__(
            f"Model {model!r} already has a rollout in progress ({rollout_id[:12]}, {state})",
            hint="Follow it with: loopline loop status; it ends before another starts",
        )


class LoopConfigError(LoopError, ConfigError):
    """The loop of a model cannot run as configured (no retraining pipeline, no gates ...)."""

    def __init__(self, message: str, *, hint: str | None = None, source: str | None = None) -> None:
        self.source = source
        LooplineError.__init__(self, message, hint=hint)
