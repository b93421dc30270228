"""The errors of alarms and their actions.

AlarmError  Alarms and their actions cannot be configured or evaluated (``loopline.alar...
    ActionConfigError  An action is declared wrongly (a bad URL, a negative timeout ...)
"""

from __future__ import annotations

from loopline.errors import ConfigError, LooplineError


class AlarmError(LooplineError):
    """Alarms and their actions cannot be configured or evaluated (``loopline.alarm``)."""


class ActionConfigError(AlarmError, ConfigError):
    """An action is declared wrongly (a bad URL, a negative timeout ...)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.source = None
        LooplineError.__init__(self, message, hint=hint)
