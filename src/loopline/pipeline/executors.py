"""How a step runs on an executor (:mod:`loopline.execute`): the task, its outcome, retries.

The runner hands an executor a :class:`StepTask` (everything a step needs, by value or
by digest) and gets back a future of a :class:`StepOutcome`. The task carries the
project's settings rather than open connections, so an executor on another machine can
open the stores itself; the local executor shares the driver's handles with its threads.
Retries happen inside :func:`execute_step`, the same wherever the step runs.
"""

from __future__ import annotations

import time
import traceback
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline.pipeline.steps import Step, StepContext
from loopline.pipeline.values import load_value, store_value

#: The run artifact holding a failed attempt's traceback.
TRACEBACK_ARTIFACT = "traceback.txt"

if TYPE_CHECKING:
    from loopline.config import Settings
    from loopline.execute import Executor
    from loopline.store.stores import Stores
    from loopline.tracking import Tracker


@dataclass
class StepTask:
    pipeline: str
    pipeline_run_id: str
    parent_run_id: str
    step: Step
    #: parameter -> (format, digest) of an upstream output
    inputs: dict[str, tuple[str, str]]
    #: this step's own pipeline parameters
    params: dict[str, Any]
    settings: Settings
    #: The kind of executor the step runs on (the step's ``ctx.executor``).
    executor: str = "local"


@dataclass
class StepOutcome:
    step: str
    ok: bool
    attempts: int
    started_at: datetime
    ended_at: datetime
    output_format: str | None = None
    output_digest: str | None = None
    run_id: str | None = None
    error: str | None = None
    #: The traceback of each failed attempt, oldest first.
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def traceback(self) -> str | None:
        """The traceback of the last failed attempt (None when the step succeeded)."""
        return self.errors[-1] if self.errors and not self.ok else None

    @property
    def seconds(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()


def submit_step(
    executor: Executor, task: StepTask, stores: Stores, tracker: Tracker
) -> Future[StepOutcome]:
    """Hand ``task`` to ``executor``: with the driver's open stores when the executor runs
    in this process, else by value (the unit opens the stores from the task's settings)."""
    resources = task.step.resources
    if executor.shares_memory:
        return executor.submit(execute_step, task, stores, tracker, resources=resources)
    task.executor = executor.name
    return executor.submit(execute_step_detached, task, resources=resources)


def execute_step_detached(task: StepTask) -> StepOutcome:
    """:func:`execute_step` in a process of its own: opens the stores and a tracker."""
    from loopline.store.stores import Stores
    from loopline.tracking import Tracker

    with Stores.open(task.settings) as stores:
        return execute_step(task, stores, Tracker(stores))


def execute_step(task: StepTask, stores: Stores, tracker: Tracker) -> StepOutcome:
    """Load the inputs, call the step (retrying with backoff), store its output.

    Each attempt is its own tracked run, a child of the pipeline's run, so a failed
    attempt stays visible beside the one that succeeded.
    """
    st = task.step
    started = datetime.now(UTC)
    errors: list[str] = []
    try:
        kwargs = {p: load_value(stores.cas, fmt, d) for p, (fmt, d) in task.inputs.items()}
    except Exception as exc:  # a missing or corrupted upstream output
        return StepOutcome(
            st.name,
            False,
            0,
            started,
            datetime.now(UTC),
            error=f"loading inputs failed: {_short(exc)}",
            errors=[traceback.format_exc()],
        )
    kwargs.update(task.params)
    ctx_name = st.context_param()
    attempts = st.retries + 1
    run_id = None
    for attempt in range(1, attempts + 1):
        run = tracker.start_run(
            experiment=task.pipeline,
            name=st.name,
            parent=task.parent_run_id,
            params=task.params,
            tags={
                "loopline.kind": "step",
                "loopline.pipeline_run": task.pipeline_run_id,
                "loopline.step": st.name,
                "loopline.attempt": str(attempt),
            },
            capture_git=False,
        )
        run_id = run.id
        t0 = time.perf_counter()
        ctx = StepContext(
            st.name, run, stores, attempt, task.pipeline_run_id, executor_kind=task.executor
        )
        try:
            call_kwargs = dict(kwargs)
            if ctx_name is not None:
                call_kwargs[ctx_name] = ctx
            value = st.fn(**call_kwargs)
            fmt, digest = store_value(stores.cas, value, where=f"output of step {st.name!r}")
            run.log_metric("step_seconds", time.perf_counter() - t0)
            tags = {"loopline.output": digest, "loopline.output_format": fmt}
            if ctx.notes:
                tags["loopline.notes"] = "\n".join(ctx.notes)
            run.set_tags(tags)
            run.finish("finished")
            return StepOutcome(
                st.name,
                True,
                attempt,
                started,
                datetime.now(UTC),
                fmt,
                digest,
                run_id,
                None,
                errors,
                list(ctx.notes),
            )
        except KeyboardInterrupt:
            run.finish("killed", error="interrupted")
            raise
        except Exception as exc:
            trace = _user_traceback(exc)
            errors.append(trace)
            # The whole traceback stays with the attempt's run (``loopline runs show``).
            run.log_artifact(TRACEBACK_ARTIFACT, trace.encode())
            run.finish("failed", error=_short(exc))
            if attempt < attempts:
                time.sleep(st.backoff * (2 ** (attempt - 1)))
                continue
            return StepOutcome(
                st.name,
                False,
                attempt,
                started,
                datetime.now(UTC),
                None,
                None,
                run_id,
                _short(exc),
                errors,
            )
    raise AssertionError("unreachable")


def _user_traceback(exc: BaseException) -> str:
    """The formatted traceback of ``exc`` from the step's own frames on: the frames of
    this module, which called the step, are left out."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
