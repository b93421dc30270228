"""The ``Action`` protocol: what runs when an alarm changes state (or a rollout moves).

An action gets an :class:`ActionEvent` (what happened, to which model, with which values)
and returns an :class:`ActionResult`; it never raises for a failure of its own work (a
webhook that answers 500, a pipeline that fails): the result says so, with the error, and
the caller records it. Retrying is the action's business (it knows what is safe to
repeat); the caller bounds the time it waits and runs actions side by side, so a slow one
cannot hold up the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class ActionEvent:
    """What an action acts on. ``kind`` is e.g. ``alarm.state_changed`` or
    ``rollout.promoted``; ``detail`` holds the values and windows that caused it."""

    kind: str
    subject: str
    at: datetime
    model: str | None = None
    alarm: str | None = None
    state: str | None = None
    previous_state: str | None = None
    reason: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    #: Unique per event: receivers use it to drop a delivery they already handled.
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "at": self.at.isoformat(),
            "model": self.model,
            "alarm": self.alarm,
            "state": self.state,
            "previous_state": self.previous_state,
            "reason": self.reason,
            "detail": dict(self.detail),
        }


@dataclass
class ActionResult:
    """How an action went: ``ok``, how many attempts, and what it produced or why not."""

    action: str
    ok: bool
    attempts: int = 1
    seconds: float = 0.0
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "ok": self.ok,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
            "error": self.error,
            "detail": self.detail,
        }


class Action(Protocol):
    """Something to do on an event. ``kind`` names the family (``webhook``, ``retrain``,
    ``rollback``, ``promote``, ``rollout``); ``name`` this configured instance."""

    kind: str
    name: str

    def run(self, event: ActionEvent) -> ActionResult: ...
