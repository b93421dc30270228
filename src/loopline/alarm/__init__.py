"""Alarms: rules over the monitor series with states, and the actions a state change runs.

This layer owns the :class:`~loopline.alarm.actions.Action` protocol and the actions that
need nothing above it (the HTTP webhook). The actions that retrain, roll back, promote or
start a rollout drive pipelines and servers, so they live in ``loopline.loop``, which
implements the same protocol.
"""

from loopline.alarm.actions import Action, ActionEvent, ActionResult
from loopline.alarm.webhook import WebhookAction, sign, verify_signature

__all__ = [
    "Action",
    "ActionEvent",
    "ActionResult",
    "WebhookAction",
    "sign",
    "verify_signature",
]
