"""A server's life as ``loopline serve`` lives it: it owns its port (a second server on it
fails with exit 2 and takes no traffic), it stops when its model cannot be loaded at all
(exit 4 for a tampered package), and any sequence of stop signals is a graceful stop that
writes every answered prediction to the log and exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

Project = Any
Server = Any


# -- the port ---------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_server_on_a_port_in_use_fails_and_takes_no_traffic(
    start_server: Any, project: Project, workers: int
) -> None:
    first = start_server("churn@prod", "--workers", str(workers))
    for second_workers in ("1", "2"):
        second = start_server(
            "churn@prod", "--workers", second_workers, port=first.port, ready=False
        )
        code = second.proc.wait(90)
        out = second.output()
        assert code == 2, out
        assert f"127.0.0.1:{first.port}: the port is in use" in out
        assert "serving" not in out  # it said nothing about serving
    # Fresh connections all reach the first server, which is ready.
    rows = project.rows(2)
    statuses = []
    for _ in range(60):
        with httpx.Client(base_url=first.url, timeout=30) as client:
            statuses.append(client.post("/predict", json=rows).status_code)
    assert statuses == [200] * 60
    assert first.proc.poll() is None


def _wait_gone(pid: int) -> None:
    """Until every thread of process ``pid`` has exited: reaped, or all zombies.

    Neither an empty ``/proc/PID/fd`` nor a zombie leader is enough. A dying process
    empties its file table first and releases the files at the end of its exit; and the
    threads share that table, so the files close only as the *last* thread exits, while
    the leader may already show as a zombie. Until then the listening socket still takes
    connections, then resets them. A thread that has exited has released everything."""
    tasks = Path(f"/proc/{pid}/task")
    for _ in range(400):
        if not tasks.exists():
            return  # reaped
        with contextlib.suppress(OSError, IndexError):  # a thread went while being read
            states = [
                (t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks.iterdir()
            ]
            if all(state in ("Z", "X") for state in states):
                return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} has not exited 20 s after SIGKILL")


def test_a_restarted_worker_takes_connections_only_once_it_has_loaded(
    start_server: Any, project: Project
) -> None:
    import os

    srv = start_server("churn@prod", "--workers", "2")
    pids: set[int] = set()
    for _ in range(200):
        with httpx.Client(base_url=srv.url, timeout=30) as client:
            pids.add(client.get("/admin/status").json()["worker"]["pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    _wait_gone(victim)  # its socket closes with it (connections already queued there reset)
    rows = project.rows(2)
    statuses = []
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (len(statuses) < 150 or len(seen) < 2):
        with httpx.Client(base_url=srv.url, timeout=30) as client:  # a fresh connection
            r = client.post("/predict", json=rows)
            statuses.append(r.status_code)
            if r.status_code == 200:
                seen.add(client.get("/admin/status").json()["worker"]["pid"])
    assert set(statuses) == {200}, statuses
    assert len(seen) == 2  # the restarted worker answers too, once loaded
    assert "restarting it" in srv.output()


# -- a model that cannot be loaded ------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_a_tampered_package_stops_the_server_with_exit_4(
    start_server: Any, broken_project: Path, workers: int
) -> None:
    srv = start_server("churn@tampered", "--workers", str(workers), cwd=broken_project, ready=False)
    code = srv.proc.wait(120)
    out = srv.output()
    assert code == 4, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    assert "churn/2" in errors[0]
    assert "'model.skops'" in errors[0]


def test_a_missing_package_file_is_an_integrity_failure_too(
    start_server: Any, broken_project: Path
) -> None:
    srv = start_server("churn@missing", cwd=broken_project, ready=False)
    code = srv.proc.wait(120)
    out = srv.output()
    assert code == 4, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    assert "churn/3" in errors[0]
    assert "no such object" in errors[0]


def test_the_intact_version_of_the_same_project_serves(
    start_server: Any, broken_project: Path
) -> None:
    srv = start_server("churn@good", cwd=broken_project)
    r = httpx.get(srv.url + "/health/ready", timeout=30)
    assert r.json()["version"] == 1
    assert srv.stop() == 0


# -- stopping ---------------------------------------------------------------------------

SEQUENCES = {
    "int": (signal.SIGINT,),
    "int-int": (signal.SIGINT, signal.SIGINT),
    "term": (signal.SIGTERM,),
    "term-int": (signal.SIGTERM, signal.SIGINT),
    "int-term-int": (signal.SIGINT, signal.SIGTERM, signal.SIGINT),
    "term-term": (signal.SIGTERM, signal.SIGTERM),
}


@pytest.mark.parametrize(
    ("workers", "sequence"),
    [(1, name) for name in SEQUENCES] + [(2, "int-int"), (2, "term-int")],
)
def test_any_stop_signal_sequence_logs_every_answered_prediction_and_exits_0(
    start_server: Any, project: Project, workers: int, sequence: str
) -> None:
    from loopline.monitor.predictions import read_predictions

    srv = start_server(
        "churn@prod", "--workers", str(workers), env={"LOOPLINE_SERVE_LOG_FLUSH_S": "600"}
    )
    rows = project.rows(3)
    answered: list[str] = []
    tag = uuid.uuid4().hex[:8]
    signals = SEQUENCES[sequence]

    async def run() -> None:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=srv.url, timeout=30, limits=limits) as client:

            async def worker() -> None:
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline:
                    rid = f"sig-{tag}-{uuid.uuid4().hex[:12]}"
                    try:
                        r = await client.post("/predict", json=rows, headers={"X-Request-Id": rid})
                    except httpx.HTTPError:
                        return  # the server has stopped listening
                    if r.status_code == 200:
                        answered.append(rid)
                    elif r.status_code != 503:
                        raise AssertionError(r.text)

            async def stop() -> None:
                await asyncio.sleep(1.5)
                for sig in signals:
                    srv.proc.send_signal(sig)
                    await asyncio.sleep(0.05)

            await asyncio.gather(stop(), *(worker() for _ in range(16)))

    asyncio.run(run())
    assert srv.proc.wait(90) == 0, srv.output()
    assert len(answered) > 20
    with project.stores() as stores:
        table = read_predictions(stores.objects, model="churn", columns=["request_id"])
    logged = {rid for rid in table.column("request_id").to_pylist() if rid.startswith(f"sig-{tag}")}
    missing = [rid for rid in answered if rid not in logged]
    assert missing == [], f"{len(missing)} of {len(answered)} answered predictions not logged"


# -- bad input through a real server ------------------------------------------------------


def _nested(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def _counted(server: Server, routes: tuple[str, ...]) -> dict[tuple[str, str], float]:
    text = httpx.get(server.url + "/metrics", timeout=30).text
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if not line.startswith("loopline_requests_total{"):
            continue
        route = line.split('route="', 1)[1].split('"', 1)[0]
        status = line.split('status="', 1)[1].split('"', 1)[0]
        if route in routes:
            key = (route, status)
            out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def test_deeply_nested_values_are_counted_4xx_json_answers(server: Server) -> None:
    routes = ("predict", "invocations", "v2_infer")
    before = _counted(server, routes)
    sent = 0
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for depth in (300, 600, 5000):
            for kind in ("list", "dict"):
                deep = _nested(depth, kind)
                row = '{"age": %s, "income": 1.0, "plan": "pro", "active": true, "region": "north"}'
                tensor = {"name": "age", "datatype": "DEEP", "shape": [1], "data": [1]}
                bodies = [
                    ("/predict", f"[{row % deep}]"),
                    ("/invocations", f'{{"dataframe_records": [{row % deep}]}}'),
                    ("/v2/models/churn/infer", json.dumps({"inputs": [tensor]})),
                ]
                for path, text in bodies:
                    text = text.replace('"DEEP"', deep)
                    r = client.post(
                        path, content=text.encode(), headers={"content-type": "application/json"}
                    )
                    assert 400 <= r.status_code < 500, (path, depth, kind, r.text[:200])
                    assert r.headers["content-type"] == "application/json"
                    r.json()
                    sent += 1
    after = _counted(server, routes)
    grown = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    assert all(400 <= int(status) < 500 for _, status in grown), grown
    assert sum(grown.values()) == sent
