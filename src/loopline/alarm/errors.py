"""The errors of alarms, their actions and the delivery of events.

AlarmError  Alarms and their actions cannot be configured or evaluated (``loopline.alar...
    ActionConfigError  An action is declared wrongly (a bad URL, a negative timeout ...)
    EventNotFoundError  No event with that id in the project's audit log
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


class EventNotFoundError(AlarmError):
    """No event with that id in the project's audit log."""

    def __init__(self, event_id: int, newest: int | None) -> None:
        self.event_id = event_id
        self.newest = newest
        span = f"the newest is {newest}" if newest else "it has no events yet"
        super().__init__(
            f"No event {event_id} in the project's log ({span})",
            hint="List them with: loopline events ls",
        )
