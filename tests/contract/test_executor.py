"""The Executor contract, run against every executor: the local one (threads) and Ray (a
local Ray instance with 2 CPUs, started once per test process)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loopline.execute import Executor, LocalExecutor, Resources
from loopline.execute.errors import ExecutorError

Factory = Callable[[int], Executor]


def _local(parallelism: int) -> Executor:
    return LocalExecutor(parallelism)


@pytest.fixture(params=["local", pytest.param("ray", marks=pytest.mark.ray)])
def make(request: pytest.FixtureRequest) -> Iterator[Factory]:
    made: list[Executor] = []

    def factory(parallelism: int) -> Executor:
        if request.param == "local":
            ex = _local(parallelism)
        else:
            request.getfixturevalue("ray_executor")  # the test process's Ray instance
            from loopline.execute.ray import RayExecutor

            ex = RayExecutor(parallelism=parallelism)
        made.append(ex)
        return ex

    yield factory
    for ex in made:
        ex.shutdown(cancel=True)


def _square(x: int) -> int:
    return x * x


def _fail(message: str) -> int:
    raise ValueError(message)


def test_results_come_back_in_their_futures(make: Factory) -> None:
    ex = make(2)
    futures = [ex.submit(_square, i) for i in range(20)]
    assert [f.result(timeout=60) for f in futures] == [i * i for i in range(20)]
    assert ex.parallelism == 2
    assert isinstance(ex.name, str)
    assert ex.name


def test_an_exception_is_the_futures_and_the_executor_keeps_working(make: Factory) -> None:
    ex = make(2)
    bad = ex.submit(_fail, "boom in unit 3")
    with pytest.raises(ValueError, match="boom in unit 3"):
        bad.result(timeout=60)
    assert ex.submit(_square, 7).result(timeout=60) == 49


def _meet_at(folder: str, name: str, parties: int) -> int:
    """Arrive at a barrier made of files (it works across processes): wait until
    ``parties`` units arrived, then return this unit's process id."""
    Path(folder, name).touch()
    deadline = time.monotonic() + 60
    while len(list(Path(folder).iterdir())) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError("the other units never ran at the same time as this one")
        time.sleep(0.02)
    return os.getpid()


def test_units_run_at_the_same_time_up_to_parallelism(make: Factory, tmp_path: Path) -> None:
    ex = make(2)
    futures = [ex.submit(_meet_at, str(tmp_path), f"unit-{i}", 2) for i in range(2)]
    pids = {f.result(timeout=120) for f in futures}
    if ex.shares_memory:
        assert pids == {os.getpid()}
    else:  # two Ray workers, neither of them this process
        assert len(pids) == 2
        assert os.getpid() not in pids


def test_resources_are_checked(make: Factory) -> None:
    ex = make(1)
    with pytest.raises(ExecutorError, match="cpus must be > 0"):
        ex.submit(_square, 2, resources=Resources(cpus=0))
    with pytest.raises(ExecutorError, match="memory_mb"):
        ex.submit(_square, 2, resources=Resources(memory_mb=-5))
    assert ex.submit(_square, 3, resources=Resources(cpus=1)).result(timeout=60) == 9


def test_a_shut_down_executor_refuses_work(make: Factory) -> None:
    ex = make(1)
    assert ex.submit(_square, 4).result(timeout=60) == 16
    ex.shutdown()
    with pytest.raises(ExecutorError, match="shut down"):
        ex.submit(_square, 5)


def test_a_unit_in_another_process_gets_the_worker_traceback(make: Factory) -> None:
    ex = make(1)
    if ex.shares_memory:
        pytest.skip("runs in this process")
    with pytest.raises(ValueError, match="boom in unit 3") as info:
        ex.submit(_fail, "boom in unit 3").result(timeout=60)
    assert "_fail" in str(info.value)  # the worker's frames come with it


def test_the_local_executor_refuses_what_this_machine_cannot_give() -> None:
    with LocalExecutor(1) as ex:
        with pytest.raises(ExecutorError, match="GPU"):
            ex.submit(_square, 2, resources=Resources(gpus=1))
        with pytest.raises(ExecutorError, match="CPUs"):
            ex.submit(_square, 2, resources=Resources(cpus=10_000))
    with pytest.raises(ExecutorError, match="parallelism"):
        LocalExecutor(0)


@pytest.mark.ray
def test_the_ray_executor_refuses_what_the_cluster_cannot_give(
    ray_executor: Executor,
) -> None:
    with pytest.raises(ExecutorError, match="GPU"):
        ray_executor.submit(_square, 2, resources=Resources(gpus=1))
    with pytest.raises(ExecutorError, match="CPUs; the Ray cluster has 2"):
        ray_executor.submit(_square, 2, resources=Resources(cpus=3))
    with pytest.raises(ExecutorError, match="memory"):
        ray_executor.submit(_square, 2, resources=Resources(memory_mb=10**9))
    # What fits is scheduled on it.
    assert ray_executor.submit(_square, 3, resources=Resources(cpus=2)).result(60) == 9


@pytest.mark.ray
def test_code_loaded_from_a_pipeline_file_runs_in_ray_workers(
    ray_executor: Executor, tmp_path: Path
) -> None:
    """A pipeline file (and the sibling module it imports) cannot be imported by a
    worker: the executor ships them by value."""
    (tmp_path / "helpers_for_ray.py").write_text("def twice(x):\n    return 2 * x\n")
    (tmp_path / "flow.py").write_text(
        "import os\n"
        "from helpers_for_ray import twice\n"
        "from loopline.pipeline import Pipeline, step\n\n"
        "@step\n"
        "def source() -> int:\n"
        "    return twice(21)\n\n"
        "def where(x):\n"
        "    return os.getpid(), twice(x)\n\n"
        "pipeline = Pipeline('flow', [source])\n"
    )
    from loopline.pipeline.loader import load_pipeline

    pipeline, _ = load_pipeline(str(tmp_path / "flow.py"))
    fn = pipeline.steps["source"].fn
    where = fn.__globals__["where"]
    pid, value = ray_executor.submit(where, 5).result(timeout=120)
    assert value == 10
    assert pid != os.getpid()
    assert ray_executor.submit(fn).result(timeout=120) == 42
