"""The errors of monitoring: the prediction log, feedback, drift and performance.

MonitorError  Monitoring data (the prediction log, feedback) cannot be read or stored
    FeedbackError  Feedback that cannot be read at all: not a list of labels, an unread...
"""

from __future__ import annotations

from loopline.errors import ConfigError, LooplineError


class MonitorError(LooplineError):
    """Monitoring data (the prediction log, feedback) cannot be read or stored."""


class FeedbackError(MonitorError):
    """Feedback that cannot be read at all: not a list of labels, an unreadable file."""


class MonitorReferenceError(MonitorError):
    """A model version has no usable reference: no training dataset in its lineage, the
    dataset is gone, or it lacks the model's inputs."""


class MonitorArgumentError(MonitorError, ConfigError):
    """A monitoring option is wrong (a window, a time, a metric): usage, the CLI exits 2.
    ``argument`` names it, ``value`` is what was given."""

    def __init__(
        self, message: str, *, argument: str, value: object = None, hint: str | None = None
    ) -> None:
        self.argument = argument
        self.value = value
        self.source = None
        LooplineError.__init__(self, message, hint=hint)
