"""Running a pipeline: schedule steps, reuse cached outputs, record lineage, resume.

A step's cache key is the sha256 of its source (and ``version``), the digests of its
inputs and the values of its own parameters. When a finished step with the same key has
an output still in the store, the step is not run: its output is reused (``cached``).
Every step run, executed or not, is a row in ``ll_step_runs`` naming its inputs' digests,
its output's digest and its tracked run: that is the lineage.

A failed run can be resumed: steps that succeeded in it, with unchanged code and inputs,
keep their outputs (``resumed``), and the run continues from the failed step.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from loopline.execute import Executor, LocalExecutor
from loopline.pipeline.errors import PipelineError, PipelineRunNotFoundError
from loopline.pipeline.executors import StepOutcome, StepTask, submit_step
from loopline.pipeline.graph import Pipeline
from loopline.pipeline.tables import pipeline_runs, step_runs
from loopline.pipeline.values import FORMAT_VERSION, load_value
from loopline.tracking import Terminated, Tracker

if TYPE_CHECKING:
    from loopline.store.stores import Stores

StepStatus = Literal["pending", "running", "done", "cached", "resumed", "failed", "skipped"]
#: A step callback: (step name, status, record).
OnEvent = Callable[[str, StepStatus, "StepRecord"], None]


@dataclass
class StepRecord:
    step: str
    status: StepStatus = "pending"
    cache_key: str | None = None
    output_format: str | None = None
    output_digest: str | None = None
    attempts: int = 0
    seconds: float = 0.0
    run_id: str | None = None
    error: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    #: The traceback of the failure (the step's frames), when it failed.
    traceback: str | None = None
    #: What the step noted for the person running the pipeline (``ctx.note``).
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class PipelineRun:
    """The result of one run: per-step records, and the outputs on demand."""

    id: str
    pipeline: str
    status: Literal["finished", "failed", "killed"]
    params: dict[str, Any]
    steps: dict[str, StepRecord]
    run_id: str | None
    stores: Stores = field(repr=False)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "finished"

    def output(self, step: str) -> Any:
        rec = self.steps.get(step)
        if rec is None or rec.output_digest is None or rec.output_format is None:
            raise PipelineError(
                f"Step {step!r} of pipeline run {self.id} has no output "
                f"(status {rec.status if rec else 'unknown'})"
            )
        return load_value(self.stores.cas, rec.output_format, rec.output_digest)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "status": self.status,
            "params": self.params,
            "run_id": self.run_id,
            "error": self.error,
            "steps": [rec.as_dict() for rec in self.steps.values()],
        }


def cache_key(code_hash: str, inputs: Mapping[str, str], params: Mapping[str, Any]) -> str:
    doc = {
        "code": code_hash,
        "inputs": dict(inputs),
        "params": dict(params),
        "format": FORMAT_VERSION,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def run_pipeline(
    pipeline: Pipeline,
    stores: Stores,
    *,
    params: Mapping[str, Any] | None = None,
    use_cache: bool = True,
    resume: str | None = None,
    executor: Executor | None = None,
    tracker: Tracker | None = None,
    on_event: OnEvent | None = None,
    source: str | Path | None = None,
    run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> PipelineRun:
    """Run ``pipeline`` and return its record. A failed step does not raise: the result's
    status says ``failed`` and names the step; pass ``resume=result.id`` to continue.

    ``run_id`` gives the pipeline run its id (32 hex digits) instead of a new one, so a
    caller can record it before the run starts (and find the run again after a crash);
    ``tags`` are added to the pipeline's tracked run."""
    from loopline.pipeline.reaper import reap_dead_pipeline_runs

    tracker = tracker or Tracker(stores)
    reap_dead_pipeline_runs(stores, tracker)
    resumed: dict[str, Any] = {}
    if resume is not None:
        resume, old_params, resumed = _load_resumable(stores, pipeline.name, resume)
        params = {**old_params, **(params or {})}
    resolved = pipeline.resolve_params(params)
    own_executor = executor is None
    executor = executor or LocalExecutor(thread_name="loopline-step")
    _check_resources(pipeline, executor, own_executor)
    if run_id is not None and not (
        len(run_id) == 32 and all(c in "0123456789abcdef" for c in run_id)
    ):
        raise PipelineError(f"run_id {run_id!r} must be 32 lowercase hex digits")
    pr_id = run_id or uuid.uuid4().hex
    now = datetime.now(UTC)
    code_dir = Path(source).resolve().parent if source else None
    prun = tracker.start_run(
        experiment=pipeline.name,
        name=pipeline.name,
        params=resolved,
        tags={
            "loopline.kind": "pipeline",
            "loopline.pipeline_run": pr_id,
            **({"loopline.resumed_from": resume} if resume else {}),
            **dict(tags or {}),
        },
        code_dir=code_dir,
        source=str(source) if source else None,
    )
    stores.db.run_write(
        lambda c: c.execute(
            pipeline_runs.insert().values(
                id=pr_id,
                pipeline=pipeline.name,
                source=str(source) if source else None,
                run_id=prun.id,
                status="running",
                params=resolved,
                executor=executor.name,
                use_cache=use_cache,
                resumed_from=resume,
                started_at=now,
            )
        )
    )
    records = {name: StepRecord(name) for name in pipeline.order}
    outputs: dict[str, tuple[str, str]] = {}
    running: dict[Future[StepOutcome], str] = {}
    failed: str | None = None

    def emit(name: str, status: StepStatus) -> None:
        records[name].status = status
        if on_event is not None:
            on_event(name, status, records[name])

    def ready() -> list[str]:
        return [
            n
            for n in pipeline.order
            if records[n].status == "pending"
            and all(e.source in outputs for e in pipeline.upstream(n))
        ]

    status: Literal["finished", "failed", "killed"] = "finished"
    error: str | None = None
    try:
        while True:
            # Cached and resumed steps complete at once and may make others ready.
            progressed = True
            while progressed and not failed:
                progressed = False
                for name in ready():
                    st = pipeline.steps[name]
                    inputs = {e.param: outputs[e.source] for e in pipeline.upstream(name)}
                    own = {p.name: resolved[p.name] for p in st.parameters() if p.name in resolved}
                    rec = records[name]
                    rec.inputs = {p: d for p, (_, d) in inputs.items()}
                    rec.cache_key = cache_key(st.code_hash, rec.inputs, own)
                    reuse = resumed.get(name)
                    if reuse is not None and reuse["cache_key"] == rec.cache_key:
                        _reuse(stores, rec, reuse, outputs, pr_id, st.code_hash, own, "resumed")
                        emit(name, "resumed")
                        progressed = True
                        continue
                    hit = _cache_lookup(stores, rec.cache_key) if use_cache and st.cache else None
                    if hit is not None:
                        _reuse(stores, rec, hit, outputs, pr_id, st.code_hash, own, "cached")
                        emit(name, "cached")
                        progressed = True
                        continue
                    task = StepTask(pipeline.name, pr_id, prun.id, st, inputs, own, stores.settings)
                    running[submit_step(executor, task, stores, tracker)] = name
                    emit(name, "running")
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                name = running.pop(fut)
                outcome = _outcome(fut, name, executor.name)
                rec = records[name]
                rec.attempts, rec.seconds, rec.run_id = (
                    outcome.attempts,
                    outcome.seconds,
                    outcome.run_id,
                )
                rec.notes = list(outcome.notes)
                st = pipeline.steps[name]
                own = {p.name: resolved[p.name] for p in st.parameters() if p.name in resolved}
                if outcome.ok and outcome.output_format and outcome.output_digest:
                    rec.output_format = outcome.output_format
                    rec.output_digest = outcome.output_digest
                    outputs[name] = (outcome.output_format, outcome.output_digest)
                    _record_step(stores, pr_id, rec, "done", st.code_hash, own, outcome)
                    emit(name, "done")
                else:
                    rec.error = outcome.error
                    rec.traceback = outcome.traceback
                    _record_step(stores, pr_id, rec, "failed", st.code_hash, own, outcome)
                    emit(name, "failed")
                    failed = failed or name
        if failed:
            status = "failed"
            error = f"step {failed!r} failed: {records[failed].error}"
    except (KeyboardInterrupt, Terminated) as exc:
        status = "killed"
        error = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        executor.shutdown(cancel=True)
        raise
    finally:
        for name, rec in records.items():
            if rec.status == "pending":
                st = pipeline.steps[name]
                _record_step(stores, pr_id, rec, "skipped", st.code_hash, {}, None)
                emit(name, "skipped")
        if own_executor:
            executor.shutdown()
        ended = datetime.now(UTC)
        stores.db.run_write(
            lambda c: c.execute(
                pipeline_runs.update()
                .where(pipeline_runs.c.id == pr_id)
                .values(status=status, ended_at=ended, error=error)
            )
        )
        for rec in records.values():
            prun.set_tag(f"loopline.step.{rec.step}", rec.status)
        prun.finish(status, error=error)
    return PipelineRun(pr_id, pipeline.name, status, resolved, records, prun.id, stores, error)


def _check_resources(pipeline: Pipeline, executor: Executor, own_executor: bool) -> None:
    """Refuse, before anything runs, a step asking for what the executor cannot give."""
    from loopline.execute.errors import ExecutorError

    for name in pipeline.order:
        resources = pipeline.steps[name].resources
        if resources is None:
            continue
        try:
            executor.check(resources)
        except ExecutorError as exc:
            if own_executor:
                executor.shutdown()
            raise PipelineError(f"Step {name!r}: {exc.message}", hint=exc.hint) from None


def _outcome(fut: Future[StepOutcome], step: str, executor: str) -> StepOutcome:
    """The step's outcome; a unit the executor lost (its worker process died, the
    cluster went away) is a failed step naming what happened, not a crashed run."""
    try:
        return fut.result()
    except Exception as exc:
        import traceback as tb

        now = datetime.now(UTC)
        text = str(exc).strip().splitlines()
        error = f"the {executor} executor lost the step: {type(exc).__name__}" + (
            f": {text[0]}" if text else ""
        )
        return StepOutcome(step, False, 1, now, now, error=error, errors=[tb.format_exc()])


def _reuse(
    stores: Stores,
    rec: StepRecord,
    prior: Mapping[str, Any],
    outputs: dict[str, tuple[str, str]],
    pr_id: str,
    code_hash: str,
    params: Mapping[str, Any],
    status: StepStatus,
) -> None:
    rec.output_format, rec.output_digest = prior["output_format"], prior["output_digest"]
    rec.run_id = prior["run_id"]
    outputs[rec.step] = (prior["output_format"], prior["output_digest"])
    _record_step(stores, pr_id, rec, status, code_hash, params, None)


def _cache_lookup(stores: Stores, key: str) -> dict[str, Any] | None:
    with stores.db.read() as conn:
        rows = (
            conn.execute(
                sa.select(
                    step_runs.c.output_format,
                    step_runs.c.output_digest,
                    step_runs.c.run_id,
                    step_runs.c.cache_key,
                )
                .where(
                    step_runs.c.cache_key == key,
                    step_runs.c.status.in_(("done", "cached", "resumed")),
                    step_runs.c.output_digest.is_not(None),
                )
                .order_by(step_runs.c.id.desc())
                .limit(5)
            )
            .mappings()
            .all()
        )
    for row in rows:
        if stores.cas.exists(row["output_digest"]):
            return dict(row)
    return None


def _record_step(
    stores: Stores,
    pr_id: str,
    rec: StepRecord,
    status: str,
    code_hash: str,
    params: Mapping[str, Any],
    outcome: StepOutcome | None,
) -> None:
    values = dict(
        pipeline_run_id=pr_id,
        step=rec.step,
        status=status,
        cache_key=rec.cache_key,
        code_hash=code_hash,
        inputs=rec.inputs,
        params=dict(params),
        output_format=rec.output_format,
        output_digest=rec.output_digest,
        run_id=rec.run_id,
        attempts=rec.attempts,
        started_at=outcome.started_at if outcome else None,
        ended_at=outcome.ended_at if outcome else None,
        error=(
            "\n".join(outcome.errors[-1:])
            if outcome and outcome.errors and not outcome.ok
            else rec.error
        ),
    )
    stores.db.run_write(lambda c: c.execute(step_runs.insert().values(**values)))


def _load_resumable(
    stores: Stores, pipeline: str, run: str
) -> tuple[str, dict[str, Any], dict[str, dict[str, Any]]]:
    with stores.db.read() as conn:
        query = sa.select(pipeline_runs).where(pipeline_runs.c.pipeline == pipeline)
        if run == "last":
            query = query.where(pipeline_runs.c.status != "finished")
        else:
            query = query.where(pipeline_runs.c.id.startswith(run))
        rows = conn.execute(query.order_by(pipeline_runs.c.started_at.desc()).limit(2)).all()
        if not rows:
            what = "no unfinished run" if run == "last" else f"no run with id {run!r}"
            raise PipelineRunNotFoundError(
                f"Pipeline {pipeline!r} has {what} to resume",
                hint="List runs with: loopline runs ls",
            )
        if run != "last" and len(rows) > 1:
            raise PipelineRunNotFoundError(
                f"Run id prefix {run!r} matches several runs of pipeline {pipeline!r}; "
                "give more characters"
            )
        found = rows[0]
        steps = (
            conn.execute(
                sa.select(
                    step_runs.c.step,
                    step_runs.c.output_format,
                    step_runs.c.output_digest,
                    step_runs.c.run_id,
                    step_runs.c.cache_key,
                ).where(
                    step_runs.c.pipeline_run_id == found.id,
                    step_runs.c.status.in_(("done", "cached", "resumed")),
                )
            )
            .mappings()
            .all()
        )
    reusable = {row["step"]: dict(row) for row in steps if stores.cas.exists(row["output_digest"])}
    return found.id, dict(found.params), reusable
