"""Servers under load (bounded in count and time, 127.0.0.1 only): malformed requests mixed
in, a hot swap while requests flow, and a graceful stop that must not lose a logged row."""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import time
import uuid
from typing import Any

import httpx
import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

Project = Any
Server = Any


def _malformed(rows: list[dict[str, Any]], rng: random.Random) -> tuple[bytes, str]:
    kind = rng.randrange(5)
    if kind == 0:
        return b'[{"age": 3,', "application/json"
    if kind == 1:
        bad = [dict(rows[0], age="forty")]
        return _dumps(bad), "application/json"
    if kind == 2:
        bad = [{k: v for k, v in rows[0].items() if k != "income"}]
        return _dumps(bad), "application/json"
    if kind == 3:
        return _dumps(rows), "text/xml"
    return _dumps([dict(rows[0], region="mars")]), "application/json"


def _dumps(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)


async def _load(
    url: str,
    bodies: list[tuple[bytes, str, bool, str]],
    concurrency: int,
    stop_after: float,
) -> list[tuple[str, bool, int | None, dict[str, Any] | None]]:
    """POST each body (bounded by ``stop_after`` seconds); (id, valid, status, json)."""
    results: list[tuple[str, bool, int | None, dict[str, Any] | None]] = []
    queue: asyncio.Queue[tuple[bytes, str, bool, str]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    deadline = time.monotonic() + stop_after
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty() and time.monotonic() < deadline:
                body, ctype, valid, rid = queue.get_nowait()
                try:
                    r = await client.post(
                        "/predict",
                        content=body,
                        headers={"Content-Type": ctype, "X-Request-Id": rid},
                    )
                except httpx.HTTPError:
                    results.append((rid, valid, None, None))
                    continue
                data = (
                    r.json()
                    if r.headers.get("content-type", "").startswith("application/json")
                    else None
                )
                results.append((rid, valid, r.status_code, data))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def test_load_with_ten_percent_malformed(server: Server, project: Project) -> None:
    rng = random.Random(3)
    rows = project.rows(50)
    bodies = []
    for i in range(800):
        rid = f"load-{i}-{uuid.uuid4().hex[:6]}"
        if rng.random() < 0.10:
            body, ctype = _malformed(rows, rng)
            bodies.append((body, ctype, False, rid))
        else:
            n = rng.choice((1, 1, 1, 5, 20))
            start = rng.randrange(0, 50 - n)
            bodies.append((_dumps(rows[start : start + n]), "application/json", True, rid))
    results = asyncio.run(_load(server.url, bodies, concurrency=32, stop_after=40))
    assert len(results) == len(bodies)
    bad = [
        (rid, status)
        for rid, valid, status, _ in results
        if not valid and not (400 <= (status or 0) < 500)
    ]
    good = [(rid, status) for rid, valid, status, _ in results if valid and status != 200]
    assert bad == []
    assert good == []
    assert sum(1 for r in results if not r[1]) > 40


def test_hot_swap_during_load_fails_nothing(start_server: Any, project: Project) -> None:
    project.set_alias("swap", 1)
    srv = start_server("churn@swap", "--workers", "2")
    rows = project.rows(20)
    body = _dumps(rows[:3])
    expected = {v: project.expected_proba(v, rows[:3]) for v in (1, 2)}

    def move() -> None:
        time.sleep(1.0)
        project.set_alias("swap", 2)

    mover = threading.Thread(target=move)
    mover.start()
    started = time.monotonic()
    results: list[tuple[float, int | None, dict[str, Any] | None]] = []

    async def run() -> None:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=srv.url, timeout=30, limits=limits) as client:

            async def worker() -> None:
                while time.monotonic() - started < 4.5:
                    try:
                        r = await client.post(
                            "/predict", content=body, headers={"content-type": "application/json"}
                        )
                        results.append((time.monotonic() - started, r.status_code, r.json()))
                    except httpx.HTTPError:
                        results.append((time.monotonic() - started, None, None))

            await asyncio.gather(*(worker() for _ in range(16)))

    asyncio.run(run())
    mover.join()
    assert results
    failed = [r for r in results if r[1] != 200]
    assert failed == []
    versions = [r[2]["version"] for r in results if r[2] is not None]
    assert 1 in versions
    assert 2 in versions
    for _, _, data in results:
        assert data is not None
        np.testing.assert_allclose(data["probabilities"], expected[data["version"]], atol=1e-5)
    tail = [r[2]["version"] for r in results if r[0] > 4.0 and r[2] is not None]
    assert tail
    assert set(tail) == {2}


def test_sigterm_during_load_loses_no_answered_request(start_server: Any, project: Project) -> None:
    from loopline.monitor.predictions import read_predictions

    srv = start_server("churn@prod", "--workers", "2", env={"LOOPLINE_SERVE_LOG_FLUSH_S": "60"})
    rows = project.rows(10)
    answered: list[str] = []
    stop_at = time.monotonic() + 2.0

    async def run() -> None:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=srv.url, timeout=30, limits=limits) as client:

            async def worker() -> None:
                while time.monotonic() < stop_at + 10:
                    rid = f"term-{uuid.uuid4().hex}"
                    try:
                        r = await client.post(
                            "/predict", json=rows[:2], headers={"X-Request-Id": rid}
                        )
                    except httpx.HTTPError:
                        return  # the server is gone
                    if r.status_code == 200:
                        answered.append(rid)
                    elif r.status_code != 503:
                        raise AssertionError(r.text)

            async def terminate() -> None:
                await asyncio.sleep(stop_at - time.monotonic())
                srv.proc.send_signal(signal.SIGTERM)

            await asyncio.gather(terminate(), *(worker() for _ in range(16)))

    asyncio.run(run())
    assert srv.proc.wait(60) == 0, srv.output()
    assert len(answered) > 50
    with project.stores() as stores:
        table = read_predictions(stores.objects, model="churn", columns=["request_id", "role"])
    logged = set(table.column("request_id").to_pylist())
    missing = [rid for rid in answered if rid not in logged]
    assert missing == []
