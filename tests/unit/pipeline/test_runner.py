"""Running pipelines for real: caching, edits, retries, failures, resume, lineage."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from loopline.pipeline import Pipeline, StepContext, step
from loopline.pipeline.loader import load_pipeline
from loopline.pipeline.runner import run_pipeline
from loopline.pipeline.tables import step_runs
from loopline.store.stores import Stores
from loopline.tracking import Tracker

CALLS: list[str] = []
FLAKY = {"left": 0}


@step
def make(n_rows: int = 20, seed: int = 0) -> pd.DataFrame:
    CALLS.append("make")
    return pd.DataFrame({"x": range(seed, seed + n_rows)})


@step
def square(make: pd.DataFrame) -> pd.DataFrame:
    CALLS.append("square")
    return make.assign(y=make.x**2)


@step
def summary(square: pd.DataFrame, ctx: StepContext) -> dict[str, float]:
    CALLS.append("summary")
    ctx.run.log_metric("rows", len(square))
    return {"sum_y": float(square.y.sum())}


PIPE = Pipeline("squares", [make, square, summary])


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    FLAKY["left"] = 0


def test_run_then_cached_run_executes_nothing(stores: Stores) -> None:
    first = run_pipeline(PIPE, stores)
    assert first.ok, first.error
    assert CALLS == ["make", "square", "summary"]
    assert first.output("summary") == {"sum_y": float(sum(i * i for i in range(20)))}

    CALLS.clear()
    second = run_pipeline(PIPE, stores)
    assert second.ok
    assert CALLS == []  # nothing ran
    assert {r.status for r in second.steps.values()} == {"cached"}
    assert second.output("summary") == first.output("summary")


def test_changed_param_reruns_only_what_depends_on_it(stores: Stores) -> None:
    run_pipeline(PIPE, stores)
    CALLS.clear()
    result = run_pipeline(PIPE, stores, params={"n_rows": 5})
    assert CALLS == ["make", "square", "summary"]
    assert result.params == {"n_rows": 5, "seed": 0}
    CALLS.clear()
    # same output of make -> downstream cached even with --no-cache off
    assert run_pipeline(PIPE, stores, params={"n_rows": 5}).ok
    assert CALLS == []


def test_no_cache_forces_every_step(stores: Stores) -> None:
    run_pipeline(PIPE, stores)
    CALLS.clear()
    run_pipeline(PIPE, stores, use_cache=False)
    assert CALLS == ["make", "square", "summary"]


def test_edited_step_runs_again_and_upstream_stays_cached(stores: Stores, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    source = textwrap.dedent(
        f"""
        from pathlib import Path
        from loopline.pipeline import Pipeline, step

        LOG = Path({str(calls)!r})

        @step
        def base(n: int = 3) -> list[int]:
            with LOG.open("a") as f:
                f.write("base\\n")
            return list(range(n))

        @step
        def scaled(base: list[int]) -> list[int]:
            with LOG.open("a") as f:
                f.write("scaled\\n")
            return [v * 10 for v in base]

        pipeline = Pipeline("edit", [base, scaled])
        """
    )
    file = tmp_path / "edit_pipeline.py"
    file.write_text(source)
    pipe, _ = load_pipeline(str(file))
    assert run_pipeline(pipe, stores).output("scaled") == [0, 10, 20]
    assert calls.read_text().split() == ["base", "scaled"]

    file.write_text(source.replace("v * 10", "v * 100"))
    calls.write_text("")
    pipe2, _ = load_pipeline(f"{file}:pipeline")
    result = run_pipeline(pipe2, stores)
    assert result.output("scaled") == [0, 100, 200]
    assert calls.read_text().split() == ["scaled"]  # base was not executed again
    assert result.steps["base"].status == "cached"
    assert result.steps["scaled"].status == "done"


def test_retries_with_backoff_then_success(stores: Stores) -> None:
    FLAKY["left"] = 2

    @step(retries=3, backoff=0.01)
    def flaky(make: pd.DataFrame) -> int:
        if FLAKY["left"] > 0:
            FLAKY["left"] -= 1
            raise ConnectionError("transient")
        return len(make)

    result = run_pipeline(Pipeline("flaky", [make, flaky]), stores)
    assert result.ok
    assert result.steps["flaky"].attempts == 3
    assert result.output("flaky") == 20
    # each attempt is a tracked child run; two failed, one finished
    tracker = Tracker(stores)
    children = tracker.search_runs(parent_id=result.run_id, limit=None)
    statuses = sorted(r.status for r in children if r.name == "flaky")
    assert statuses == ["failed", "failed", "finished"]


def test_failure_skips_downstream_and_resume_continues_from_it(stores: Stores) -> None:
    FLAKY["left"] = 1

    @step
    def fragile(square: pd.DataFrame) -> int:
        CALLS.append("fragile")
        if FLAKY["left"] > 0:
            FLAKY["left"] -= 1
            raise ValueError("bad row 7")
        return len(square)

    @step
    def report(fragile: int) -> str:
        CALLS.append("report")
        return f"{fragile} rows"

    pipe = Pipeline("resumable", [make, square, fragile, report])
    failed = run_pipeline(pipe, stores, params={"n_rows": 7}, use_cache=False)
    assert failed.status == "failed"
    assert "fragile" in (failed.error or "")
    assert "ValueError: bad row 7" in (failed.error or "")
    assert failed.steps["report"].status == "skipped"
    assert CALLS == ["make", "square", "fragile"]

    CALLS.clear()
    resumed = run_pipeline(pipe, stores, resume=failed.id[:10], use_cache=False)
    assert resumed.ok
    assert CALLS == ["fragile", "report"]  # make and square were not executed again
    assert resumed.steps["make"].status == "resumed"
    assert resumed.params["n_rows"] == 7  # the resumed run's parameters
    assert resumed.output("report") == "7 rows"


def test_independent_steps_run_in_parallel(stores: Stores) -> None:
    inside: list[int] = []
    peak: list[int] = []
    lock = threading.Lock()

    def busy() -> None:
        with lock:
            inside.append(1)
            peak.append(len(inside))
        time.sleep(0.3)
        with lock:
            inside.pop()

    @step(cache=False)
    def left(make: pd.DataFrame) -> int:
        busy()
        return 1

    @step(cache=False)
    def right(make: pd.DataFrame) -> int:
        busy()
        return 2

    result = run_pipeline(Pipeline("par", [make, left, right]), stores)
    assert result.ok
    assert max(peak) == 2  # both were inside at the same time


def test_lineage_records_inputs_outputs_and_runs(stores: Stores) -> None:
    result = run_pipeline(PIPE, stores)
    with stores.db.read() as conn:
        rows = {
            r.step: r
            for r in conn.execute(
                sa.select(step_runs).where(step_runs.c.pipeline_run_id == result.id)
            )
        }
    assert rows["square"].inputs == {"make": rows["make"].output_digest}
    assert rows["summary"].inputs == {"square": rows["square"].output_digest}
    tracker = Tracker(stores)
    summary_run = tracker.get_run(rows["summary"].run_id)
    assert summary_run.parent_id == result.run_id
    assert summary_run.metrics["rows"] == 20
    assert summary_run.tags["loopline.output"] == rows["summary"].output_digest
    pipeline_run = tracker.get_run(result.run_id)
    assert pipeline_run.status == "finished"
    assert pipeline_run.params["n_rows"] == "20"


def test_unstorable_output_fails_the_step_with_the_reason(stores: Stores) -> None:
    @step
    def weird() -> object:
        return threading.Lock()

    result = run_pipeline(Pipeline("weird", [weird]), stores)
    assert result.status == "failed"
    assert "cannot store safely" in (result.error or "")
