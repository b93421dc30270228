"""The errors of executors: submitting work.

ExecutorError  Work cannot be submitted to an executor: bad resources, or it was shut down
"""

from __future__ import annotations

from loopline.errors import LooplineError


class ExecutorError(LooplineError):
    """Work cannot be submitted to an executor: bad resources, or it was shut down."""
