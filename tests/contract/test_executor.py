"""The Executor contract, run against every executor (the local one here; a cluster
executor runs the same suite)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import wait

import pytest

from loopline.execute import Executor, LocalExecutor, Resources
from loopline.execute.errors import ExecutorError

Factory = Callable[[int], Executor]


def _local(parallelism: int) -> Executor:
    return LocalExecutor(parallelism)


@pytest.fixture(params=[_local], ids=["local"])
def make(request: pytest.FixtureRequest) -> Iterator[Factory]:
    made: list[Executor] = []

    def factory(parallelism: int) -> Executor:
        ex = request.param(parallelism)
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


def test_units_run_at_the_same_time_up_to_parallelism(make: Factory) -> None:
    ex = make(2)
    if not ex.shares_memory:
        pytest.skip("a barrier needs shared memory")
    barrier = threading.Barrier(2, timeout=30)

    def meet() -> int:
        return barrier.wait()  # both must be running at once, or this times out

    done, _ = wait([ex.submit(meet), ex.submit(meet)], timeout=60)
    assert sorted(f.result() for f in done) == [0, 1]


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


def test_the_local_executor_refuses_what_this_machine_cannot_give() -> None:
    with LocalExecutor(1) as ex:
        with pytest.raises(ExecutorError, match="GPU"):
            ex.submit(_square, 2, resources=Resources(gpus=1))
        with pytest.raises(ExecutorError, match="CPUs"):
            ex.submit(_square, 2, resources=Resources(cpus=10_000))
    with pytest.raises(ExecutorError, match="parallelism"):
        LocalExecutor(0)
