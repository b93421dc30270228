"""Pipelines on the Ray executor: the same outputs as on the local one, computed in Ray
workers (other processes), independent steps at once, retries and tracebacks as locally.

The pipeline is a file loaded from a path, with a sibling module it imports, as a user's
project would have it: Ray workers can import neither, so the executor ships them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from loopline.execute import Executor, LocalExecutor
from loopline.pipeline.errors import PipelineError
from loopline.pipeline.loader import load_pipeline
from loopline.pipeline.runner import run_pipeline
from loopline.store.stores import Stores
from loopline.tracking import Tracker

pytestmark = pytest.mark.ray

FLOW = '''
import os
import time
from pathlib import Path

import numpy as np

from flow_helpers import scaled
from loopline.pipeline import Pipeline, StepContext, step


def _arrive(folder, name):
    """Both branches must be running at once, or this times out."""
    Path(folder, name).touch()
    deadline = time.monotonic() + 60
    while len(list(Path(folder).glob("arrived-*"))) < 2:
        if time.monotonic() > deadline:
            raise TimeoutError("the other branch never ran at the same time")
        time.sleep(0.02)


@step
def left(ctx: StepContext, barrier: str = "", seed: int = 0) -> np.ndarray:
    if barrier:
        _arrive(barrier, "arrived-left")
    ctx.run.set_tag("pid", str(os.getpid()))
    return scaled(np.random.default_rng(seed).normal(size=(500, 4)), 2.0)


@step
def right(ctx: StepContext, barrier: str = "", seed: int = 0) -> dict:
    if barrier:
        _arrive(barrier, "arrived-right")
    ctx.run.set_tag("pid", str(os.getpid()))
    return {"offset": float(seed) + 0.5, "names": ["a", "b", "c", "d"]}


@step(retries=1, backoff=0.0)
def join(ctx: StepContext, left: np.ndarray, right: dict, flaky: str = "") -> dict:
    ctx.run.set_tag("pid", str(os.getpid()))
    if flaky and not Path(flaky).exists():
        Path(flaky).touch()
        raise RuntimeError("first attempt fails on purpose")
    means = (left + right["offset"]).mean(axis=0)
    return dict(zip(right["names"], means.round(12).tolist()))


@step(cpus=2)
def wide(join: dict, explode: bool = False) -> float:
    if explode:
        raise ValueError("the wide step exploded")
    return sum(join.values())


pipeline = Pipeline("rayflow", [left, right, join, wide])
'''


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "flow_helpers.py").write_text("def scaled(x, k):\n    return x * k\n")
    (code / "flow.py").write_text(FLOW)
    return code / "flow.py"


def _run(flow: Path, stores: Stores, executor: Executor, **params: object) -> object:
    pipeline, path = load_pipeline(str(flow))
    return run_pipeline(
        pipeline,
        stores,
        params=params,
        executor=executor,
        use_cache=False,
        tracker=Tracker(stores),
        source=path,
    )


def _pids(stores: Stores, result: object) -> set[int]:
    tracker = Tracker(stores)
    return {
        int(tracker.get_run(rec.run_id).tags["pid"])
        for rec in result.steps.values()  # type: ignore[attr-defined]
        if rec.run_id and rec.step != "wide"
    }


def test_a_pipeline_on_ray_gives_the_local_outputs_computed_in_workers(
    flow: Path, stores: Stores, ray_executor: Executor, tmp_path: Path
) -> None:
    with LocalExecutor(2) as local:
        expected = _run(flow, stores, local, seed=3)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    got = _run(flow, stores, ray_executor, seed=3, barrier=str(barrier))
    assert got.ok, got.error  # type: ignore[attr-defined]
    # Content-addressed outputs: equal digests are equal values, step by step.
    for name in ("left", "right", "join", "wide"):
        assert got.steps[name].status == "done"  # type: ignore[attr-defined]
        assert (
            got.steps[name].output_digest  # type: ignore[attr-defined]
            == expected.steps[name].output_digest  # type: ignore[attr-defined]
        )
    assert got.output("wide") == pytest.approx(expected.output("wide"))  # type: ignore[attr-defined]
    pids = _pids(stores, got)
    assert os.getpid() not in pids  # every step ran in a Ray worker
    # left and right met at the barrier, so they ran at the same time, in two workers.
    assert len(pids) >= 2
    assert _pids(stores, expected) == {os.getpid()}


def test_a_failing_step_on_ray_is_retried_and_reported_with_its_traceback(
    flow: Path, stores: Stores, ray_executor: Executor, tmp_path: Path
) -> None:
    flaky = tmp_path / "flaky-marker"
    got = _run(flow, stores, ray_executor, flaky=str(flaky), explode=True)
    assert not got.ok  # type: ignore[attr-defined]
    join, wide = got.steps["join"], got.steps["wide"]  # type: ignore[attr-defined]
    assert join.status == "done"
    assert join.attempts == 2  # the first attempt failed in a worker and was retried
    assert wide.status == "failed"
    assert "ValueError: the wide step exploded" in (wide.error or "")
    assert "flow.py" in (wide.traceback or "")  # the user's own frames, from the worker
    assert 'raise ValueError("the wide step exploded")' in (wide.traceback or "")
    assert "step 'wide' failed" in (got.error or "")  # type: ignore[attr-defined]
    # Resuming on Ray keeps the steps that succeeded.
    pipeline, path = load_pipeline(str(flow))
    resumed = run_pipeline(
        pipeline,
        stores,
        resume=got.id,  # type: ignore[attr-defined]
        params={"explode": False},
        executor=ray_executor,
        source=path,
    )
    assert resumed.ok
    assert {n: r.status for n, r in resumed.steps.items()} == {
        "left": "resumed",
        "right": "resumed",
        "join": "resumed",
        "wide": "done",
    }


def test_a_step_asking_for_more_than_the_cluster_has_is_refused_before_anything_runs(
    tmp_path: Path, stores: Stores, ray_executor: Executor
) -> None:
    (tmp_path / "big.py").write_text(
        "from loopline.pipeline import Pipeline, step\n\n"
        "@step\n"
        "def small() -> int:\n    return 1\n\n"
        "@step(gpus=1)\n"
        "def train(small: int) -> int:\n    return small\n\n"
        "pipeline = Pipeline('big', [small, train])\n"
    )
    pipeline, path = load_pipeline(str(tmp_path / "big.py"))
    with pytest.raises(PipelineError, match=r"Step 'train'.*GPU.*the Ray cluster has 0"):
        run_pipeline(pipeline, stores, executor=ray_executor, source=path)
    assert Tracker(stores).search_runs(experiment="big") == []
