"""The errors of monitoring: the prediction log, feedback, drift and performance.

MonitorError  Monitoring data (the prediction log, feedback) cannot be read or stored
    FeedbackError  Feedback that cannot be read at all: not a list of labels, an unread...
"""

from __future__ import annotations

from loopline.errors import LooplineError


class MonitorError(LooplineError):
    """Monitoring data (the prediction log, feedback) cannot be read or stored."""


class FeedbackError(MonitorError):
    """Feedback that cannot be read at all: not a list of labels, an unreadable file."""
