"""Where work runs: the ``Executor`` protocol and the in-process executor.

Pipelines submit their steps, hyperparameter searches their trials, batch jobs their
chunks, all through one small protocol: ``submit(fn, *args, resources=...)`` returns a
``concurrent.futures.Future``. The local executor runs them in threads of this process; a
cluster executor (Ray) runs them elsewhere, which is why what is submitted must be
picklable when ``executor.shares_memory`` is false (a pipeline then sends settings and
digests, never open connections).

This layer sits below ``train`` and ``pipeline`` so that both fan out over the same
executors; it imports nothing of loopline but ``errors`` and ``config`` (the
``[executor]`` section, read by :func:`open_executor`).
"""

from loopline.execute.base import Executor, Resources, check_resources
from loopline.execute.local import LocalExecutor
from loopline.execute.settings import ExecutorSettings, executor_settings, open_executor

__all__ = [
    "Executor",
    "ExecutorSettings",
    "LocalExecutor",
    "Resources",
    "check_resources",
    "executor_settings",
    "open_executor",
]
