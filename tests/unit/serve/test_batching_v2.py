"""The micro-batcher (batches under load, no wait when alone, isolation of a bad job, small
calls of a fast model in the event loop and nothing else) and the V2 tensor codec (JSON
and binary)."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson
import pytest

from loopline.registry import Signature
from loopline.serve import v2
from loopline.serve.batching import Arrivals, BatcherClosed, Job, MicroBatcher
from loopline.serve.bodies import HTTPProblem


def _job(n: int = 1, rid: str = "r") -> Job:
    return Job({"x": np.arange(n)}, n, rid, time.time(), time.perf_counter())


def test_concurrent_jobs_share_calls_and_a_lone_job_does_not_wait() -> None:
    calls: list[int] = []

    def run(jobs: Sequence[Job]) -> list[Any]:
        time.sleep(0.01)
        calls.append(len(jobs))
        return [j.n_rows for j in jobs]

    async def main() -> tuple[list[int], float]:
        arrivals = Arrivals()
        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(run, pool, max_rows=100, max_wait_s=0.5, arrivals=arrivals)
            b.start()
            t = time.perf_counter()
            assert await b.submit_nowait(_job()) == 1
            alone = time.perf_counter() - t
            futures = [b.submit_nowait(_job(2, f"r{i}")) for i in range(30)]
            results = await asyncio.gather(*futures)
            await b.close()
            with pytest.raises(BatcherClosed):
                b.submit_nowait(_job())
        return results, alone

    results, alone = asyncio.run(main())
    assert results == [2] * 30
    assert alone < 0.25  # did not wait max_wait_s for company
    assert len(calls) < 10
    assert max(calls) > 1


def test_a_failing_job_fails_alone() -> None:
    def run(jobs: Sequence[Job]) -> list[Any]:
        if any(j.request_id == "bad" for j in jobs):
            raise ValueError("boom")
        return ["ok" for _ in jobs]

    async def main() -> list[Any]:
        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(run, pool, max_rows=100, max_wait_s=0)
            b.start()
            futures = [b.submit_nowait(_job(1, rid)) for rid in ("a", "bad", "c")]
            out = await asyncio.gather(*futures, return_exceptions=True)
            await b.close()
            return out

    out = asyncio.run(main())
    assert out[0] == "ok"
    assert isinstance(out[1], ValueError)
    assert out[2] == "ok"


def _threads_of_calls(
    sleeps: Sequence[float], rows: int, *, inline_s: float
) -> tuple[list[bool], MicroBatcher]:
    """Submit one job of ``rows`` rows per entry of ``sleeps`` (each call sleeps that long),
    one after another: whether each call ran in the event loop's thread."""
    in_loop: list[bool] = []
    pending = list(sleeps)

    async def main() -> MicroBatcher:
        loop_thread = threading.get_ident()

        def run(jobs: Sequence[Job]) -> list[Any]:
            in_loop.append(threading.get_ident() == loop_thread)
            time.sleep(pending.pop(0))
            return [j.n_rows for j in jobs]

        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(run, pool, max_rows=1000, max_wait_s=0, inline_s=inline_s)
            b.start()
            for _ in range(len(sleeps)):
                assert await b.submit_nowait(_job(rows)) == rows
            await b.close()
        return b

    batcher = asyncio.run(main())
    return in_loop, batcher


def test_small_calls_of_a_fast_model_run_in_the_event_loop_once_timed() -> None:
    in_loop, b = _threads_of_calls([0.0] * 5, 4, inline_s=0.05)
    assert in_loop == [False, True, True, True, True]  # the first call is timed in the thread
    assert b.inline_batches == 4
    assert b.small_call_s is not None
    assert b.small_call_s < 0.05


def test_a_slow_model_keeps_its_calls_in_the_worker_thread() -> None:
    in_loop, b = _threads_of_calls([0.06] * 3, 4, inline_s=0.05)
    assert in_loop == [False, False, False]
    assert b.inline_batches == 0


def test_a_model_that_slows_down_goes_back_to_the_worker_thread() -> None:
    # Fast, then one call of 0.4 s: the average is then over 0.05 s, the next call goes to
    # the thread, and stays there until fast calls bring the average down again.
    in_loop, _ = _threads_of_calls([0.0, 0.0, 0.4, 0.0, 0.0], 4, inline_s=0.05)
    assert in_loop[:3] == [False, True, True]
    assert in_loop[3] is False


def test_a_large_batch_always_goes_to_the_worker_thread() -> None:
    in_loop, b = _threads_of_calls([0.0] * 3, 65, inline_s=0.05)
    assert in_loop == [False, False, False]
    assert b.small_call_s is None  # large calls are not what decides small ones


def test_a_call_failing_in_the_event_loop_fails_only_its_bad_job() -> None:
    ran_in_loop: list[bool] = []

    async def main() -> list[Any]:
        loop_thread = threading.get_ident()

        def run(jobs: Sequence[Job]) -> list[Any]:
            ran_in_loop.append(threading.get_ident() == loop_thread)
            if any(j.request_id == "bad" for j in jobs):
                raise ValueError("boom")
            return ["ok" for _ in jobs]

        with ThreadPoolExecutor(1) as pool:
            b = MicroBatcher(run, pool, max_rows=100, max_wait_s=0, inline_s=0.05)
            b.start()
            assert await b.submit_nowait(_job(1, "first")) == "ok"  # timed in the thread
            futures = [b.submit_nowait(_job(1, rid)) for rid in ("a", "bad", "c")]
            out = await asyncio.gather(*futures, return_exceptions=True)
            await b.close()
            return out

    out = asyncio.run(main())
    assert ran_in_loop[:2] == [False, True]  # the batch of three failed in the loop
    assert out[0] == "ok"
    assert isinstance(out[1], ValueError)
    assert out[2] == "ok"


def test_inline_calls_can_be_turned_off() -> None:
    in_loop, _ = _threads_of_calls([0.0] * 3, 4, inline_s=0.0)
    assert True not in in_loop


def test_v2_json_and_binary_tensors() -> None:
    import pandas as pd

    sig = Signature.infer(pd.DataFrame({"a": [1.0, 2.0], "s": ["x", "y"]}))
    body = {
        "id": "q1",
        "inputs": [
            {"name": "a", "datatype": "FP32", "shape": [2, 1], "data": [[1.5], [2.5]]},
            {"name": "s", "datatype": "BYTES", "shape": [2], "data": ["x", "y"]},
        ],
    }
    req = v2.parse_infer(orjson.dumps(body), None)
    cols = v2.to_columns(req, sig)
    assert cols["a"].tolist() == [1.5, 2.5]
    assert cols["s"].tolist() == ["x", "y"]
    raw_a = np.array([1.0, 2.0], dtype="<f8").tobytes()
    raw_s = b"".join(struct.pack("<I", len(v)) + v for v in (b"x", b"yy"))
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "a",
                    "datatype": "FP64",
                    "shape": [2],
                    "parameters": {"binary_data_size": len(raw_a)},
                },
                {
                    "name": "s",
                    "datatype": "BYTES",
                    "shape": [2],
                    "parameters": {"binary_data_size": len(raw_s)},
                },
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    req = v2.parse_infer(head + raw_a + raw_s, str(len(head)))
    assert v2.to_columns(req, sig)["s"].tolist() == ["x", "yy"]
    tensors = v2.output_tensors(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), "INT64", {})
    data, headers = v2.encode_response({"model_name": "m"}, tensors, {}, True)
    n = int(headers["inference-header-content-length"])
    meta = orjson.loads(data[:n])
    assert [o["parameters"]["binary_data_size"] for o in meta["outputs"]] == [16, 32]
    for bad in (
        b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [3], "data": [1]}]}',
        b'{"inputs": [{"name": "a", "datatype": "INT9", "shape": [1], "data": [1]}]}',
        b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": ["x"]}]}',
        b'{"inputs": []}',
    ):
        with pytest.raises(HTTPProblem) as info:
            v2.parse_infer(bad, None)
        assert info.value.status == 400
