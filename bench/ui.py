"""The web UI's runs table and runs API on many runs, beside MLflow's tracking server.

    python bench/ui.py                      # 10,000 runs x 20 metrics x 10 params, SQLite
                                            # and PostgreSQL (when reachable), and MLflow
    python bench/ui.py --runs 2000 --skip-mlflow --json

The same runs (``--runs`` runs, each with ``--metrics`` metrics and ``--params`` params,
one of which, ``model``, takes four values) are written into a fresh loopline store
and a fresh MLflow store. Then, against real servers on 127.0.0.1 (``loopline ui``'s
app on uvicorn; ``mlflow server``), the median over ``--repeat`` requests of:

- the runs page: the first 100 rows, sorted by a metric, filtered by a param (HTML);
- the runs API: 1,000 runs with their params and metrics (JSON);
- MLflow: ``MlflowClient.search_runs(max_results=1000)`` through its server, plainly
  and with the same filter and sort (``params.model = 'rf'``, ``metrics.m3 DESC``).

Targets: page < 100 ms, 1,000-run JSON < 200 ms. PostgreSQL is the server named by
``LOOPLINE_BENCH_POSTGRES_URL`` (default: the one ``make test`` starts); a fresh database
is created there and dropped afterwards. MLflow runs in its own virtual environment
(``~/.cache/loopline-bench/mlflow``, created on first use, as for bench/tracking.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from tracking import MLFLOW_VERSION, ensure_mlflow

PG_URL = "postgresql+psycopg://loopline:loopline@127.0.0.1:5432/loopline_test"
TARGET_PAGE_S = 0.100
TARGET_API_S = 0.200
MODELS = ("rf", "lr", "xgb", "svm")
PAGE = "/runs?filter=params.model+%3D+rf&sort=-metrics.m3"
API = "/api/runs?per_page=1000"


def _values(runs: int, n_metrics: int, n_params: int, seed: int = 7) -> list[dict[str, Any]]:
    """The runs both tools get: names, params (``model`` first) and metric values."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i in range(runs):
        params = {"model": MODELS[i % len(MODELS)]}
        params |= {f"p{j}": str(rng.randint(0, 1000)) for j in range(1, n_params)}
        out.append(
            {
                "name": f"run-{i:05d}",
                "start": start + timedelta(seconds=i),
                "params": params,
                "metrics": {f"m{j}": rng.random() for j in range(n_metrics)},
            }
        )
    return out


# -- loopline -------------------------------------------------------------------------------


def fill_loopline(url: str, root: Path, data: list[dict[str, Any]]) -> float:
    """A migrated store at ``url`` holding ``data``, written in bulk; seconds taken."""
    import sqlalchemy as sa

    from loopline.store.db import migrate
    from loopline.store.db.engine import Database
    from loopline.tracking.tables import latest_metrics, metrics, params, runs

    t = time.perf_counter()
    with Database(url, create=True) as db:
        migrate.upgrade(db)
        run_rows, param_rows, point_rows, latest_rows = [], [], [], []
        for item in data:
            run_id = uuid.uuid4().hex
            end = item["start"] + timedelta(seconds=30)
            run_rows.append(
                {
                    "id": run_id,
                    "experiment": "bench",
                    "name": item["name"],
                    "status": "finished",
                    "start_time": item["start"],
                    "end_time": end,
                    "heartbeat_at": end,
                }
            )
            param_rows += [
                {"run_id": run_id, "key": k, "value": v} for k, v in item["params"].items()
            ]
            stamp = end.timestamp()
            for key, value in item["metrics"].items():
                point = {
                    "run_id": run_id,
                    "key": key,
                    "step": 0,
                    "timestamp": stamp,
                    "value": value,
                }
                point_rows.append(point)
                latest_rows.append(point | {"points": 1})
        with db.write() as conn:
            for table, rows in (
                (runs, run_rows),
                (params, param_rows),
                (metrics, point_rows),
                (latest_metrics, latest_rows),
            ):
                for start in range(0, len(rows), 20_000):
                    conn.execute(sa.insert(table), rows[start : start + 20_000])
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    return time.perf_counter() - t


@contextmanager
def loopline_server(url: str, root: Path) -> Any:
    """``loopline ui``'s app on uvicorn in a thread, on a free port of 127.0.0.1."""
    import uvicorn

    from loopline.config import settings_for
    from loopline.ui.app import create_app

    settings = settings_for(
        root,
        environ={"LOOPLINE_METADATA_URL": url, "LOOPLINE_ARTIFACTS_URL": str(root / "artifacts")},
    )
    app = create_app(settings, auth=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def time_get(client: Any, url: str, repeat: int, check: Any) -> dict[str, Any]:
    client.get(url).raise_for_status()  # warm: the first request compiles templates
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        answer = client.get(url)
        times.append(time.perf_counter() - t)
        answer.raise_for_status()
    check(answer)
    return {"median_s": statistics.median(times), "min_s": min(times), "bytes": len(answer.content)}


def bench_loopline(url: str, data: list[dict[str, Any]], repeat: int) -> dict[str, Any]:
    import httpx

    with tempfile.TemporaryDirectory(prefix="loopline-bench-ui-") as tmp:
        root = Path(tmp)
        fill_s = fill_loopline(url, root, data)
        rf = sum(1 for item in data if item["params"]["model"] == "rf")
        best = max(
            (item for item in data if item["params"]["model"] == "rf"),
            key=lambda item: item["metrics"]["m3"],
        )

        def page_ok(answer: Any) -> None:
            text = answer.text
            assert f"<b>{rf:,}</b>" in text, "the page does not count the filtered runs"
            assert text.count("<tr data-run=") == min(100, rf), "not 100 rows"
            assert best["name"] in text.split("<tr data-run=")[1], "not sorted by the metric"

        def api_ok(answer: Any) -> None:
            body = answer.json()
            assert len(body["runs"]) == min(1000, len(data))
            first = body["runs"][0]
            assert len(first["params"]) == len(data[0]["params"])
            assert len(first["metrics"]) == len(data[0]["metrics"])

        with loopline_server(url, root) as base, httpx.Client(base_url=base, timeout=60) as client:
            page = time_get(client, PAGE, repeat, page_ok)
            api = time_get(client, API, repeat, api_ok)
    return {"fill_s": fill_s, "page": page, "api": api}


# -- MLflow ---------------------------------------------------------------------------------

MLFLOW_FILL = """
import json, sys, time
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
uri, path = sys.argv[1], sys.argv[2]  # the backend store's URI: filled in process
data = json.load(open(path))
client = MlflowClient(tracking_uri=uri)
exp = client.create_experiment("bench")
t = time.perf_counter()
for item in data:
    start = int(item["start"] * 1000)
    run = client.create_run(exp, start_time=start, run_name=item["name"])
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, v, start, 0) for k, v in item["metrics"].items()],
        params=[Param(k, v) for k, v in item["params"].items()],
    )
    client.set_terminated(run.info.run_id, end_time=start + 30_000)
print(json.dumps({"experiment": exp, "fill_s": time.perf_counter() - t}))
"""

MLFLOW_SEARCH = """
import json, statistics, sys, time
from mlflow.tracking import MlflowClient
uri, exp, repeat, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
client = MlflowClient(tracking_uri=uri)
out = {}
for name, kwargs in (
    ("all", {}),
    ("filtered", {"filter_string": "params.model = 'rf'", "order_by": ["metrics.m3 DESC"]}),
):
    client.search_runs([exp], max_results=1000, **kwargs)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        found = client.search_runs([exp], max_results=1000, **kwargs)
        times.append(time.perf_counter() - t)
    out[name] = {"median_s": statistics.median(times), "min_s": min(times), "runs": len(found)}
    if name == "all":
        assert len(found) == min(1000, n), len(found)
        assert len(found[0].data.metrics) > 0 and len(found[0].data.params) > 0
print(json.dumps(out))
"""


def _script(python: str, code: str, *args: object, timeout: float = 7200) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLINE_", "MLFLOW_"))}
    proc = subprocess.run(
        [python, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise SystemExit(f"MLflow child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_mlflow(python: str, backend: str, data: list[dict[str, Any]], repeat: int) -> Any:
    """MLflow's server on ``backend``: filled through its client on the store itself (in
    process: through the server it writes about 8 runs a second, which would take 20
    minutes for 10,000 runs), then searched through the server."""
    with tempfile.TemporaryDirectory(prefix="loopline-bench-mlflow-ui-") as tmp:
        dump = Path(tmp) / "runs.json"
        dump.write_text(json.dumps([item | {"start": item["start"].timestamp()} for item in data]))
        filled = _script(python, MLFLOW_FILL, backend, dump)
        port = _free_port()
        server = subprocess.Popen(
            [
                python,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                backend,
                "--artifacts-destination",
                str(Path(tmp) / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        )
        try:
            uri = f"http://127.0.0.1:{port}"
            _wait(uri + "/health", server)
            searched = _script(python, MLFLOW_SEARCH, uri, filled["experiment"], repeat, len(data))
        finally:
            server.terminate()
            server.wait(60)
    return {"fill_s": filled["fill_s"], **searched}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the MLflow server exited ({proc.returncode})")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the MLflow server did not start within 2 minutes")


# -- PostgreSQL -----------------------------------------------------------------------------


@contextmanager
def postgres_database(server: str) -> Any:
    """A fresh database on ``server`` (None when it cannot be reached), dropped after."""
    import sqlalchemy as sa

    name = f"ll_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError:
        admin.dispose()
        yield None
        return
    try:
        yield sa.make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _mlflow_postgres(python: str) -> bool:
    """MLflow's venv reaches PostgreSQL through psycopg (installed there when missing)."""
    check = [python, "-c", "import psycopg"]
    if subprocess.run(check, capture_output=True).returncode == 0:
        return True
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    return subprocess.run([*pip, "psycopg[binary]"]).returncode == 0


def bench(args: argparse.Namespace) -> dict[str, Any]:
    data = _values(args.runs, args.metrics, args.params)
    out: dict[str, Any] = {"runs": args.runs, "metrics": args.metrics, "params": args.params}
    python = None if args.skip_mlflow else ensure_mlflow(Path(args.mlflow_venv).expanduser())
    with tempfile.TemporaryDirectory(prefix="loopline-bench-ui-sqlite-") as tmp:
        out["sqlite"] = {"loopline": bench_loopline(f"sqlite:///{tmp}/ui.db", data, args.repeat)}
        if python is not None:
            out["sqlite"]["mlflow"] = bench_mlflow(
                python, f"sqlite:///{tmp}/mlflow.db", data, args.repeat
            )
    if not args.skip_postgres:
        server = os.environ.get("LOOPLINE_BENCH_POSTGRES_URL", PG_URL)
        with postgres_database(server) as url:
            if url is None:
                out["postgresql"] = {"skipped": f"no PostgreSQL at {server}"}
            else:
                out["postgresql"] = {"loopline": bench_loopline(url, data, args.repeat)}
                if python is not None and _mlflow_postgres(python):
                    with postgres_database(server) as other:
                        out["postgresql"]["mlflow"] = bench_mlflow(python, other, data, args.repeat)
    return out


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"Runs table and API: {result['runs']:,} runs x {result['metrics']} metrics x "
        f"{result['params']} params (median of requests to a server on 127.0.0.1)",
        title_justify="left",
    )
    for col in ("database", "what", "ms", "target", "note"):
        t.add_column(col, justify="right" if col == "ms" else "left")
    for db in ("sqlite", "postgresql"):
        part = result.get(db)
        if not part:
            continue
        if "skipped" in part:
            t.add_row(db, "skipped", "", "", part["skipped"])
            continue
        ll = part["loopline"]
        page, api = ll["page"], ll["api"]
        t.add_row(
            db,
            "loopline runs page: 100 rows, filter + sort",
            f"{page['median_s'] * 1000:.1f}",
            f"< {TARGET_PAGE_S * 1000:.0f}: "
            + ("met" if page["median_s"] < TARGET_PAGE_S else "MISSED"),
            f"{page['bytes'] / 1024:.0f} KiB of HTML",
        )
        t.add_row(
            db,
            "loopline /api/runs, 1,000 runs",
            f"{api['median_s'] * 1000:.1f}",
            f"< {TARGET_API_S * 1000:.0f}: "
            + ("met" if api["median_s"] < TARGET_API_S else "MISSED"),
            f"{api['bytes'] / 1024:.0f} KiB of JSON",
        )
        ml = part.get("mlflow")
        if ml:
            t.add_row(
                db,
                f"MLflow {MLFLOW_VERSION} search_runs(max_results=1000)",
                f"{ml['all']['median_s'] * 1000:.1f}",
                "",
                "through mlflow server",
            )
            t.add_row(
                db,
                "MLflow search_runs, filter + sort, 1000",
                f"{ml['filtered']['median_s'] * 1000:.1f}",
                "",
                f"{ml['filtered']['runs']} runs returned",
            )
    Console().print(t)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--params", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=15, help="requests per measure (median)")
    parser.add_argument("--skip-mlflow", action="store_true", help="measure loopline only")
    parser.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--mlflow-venv", default=str(Path.home() / ".cache/loopline-bench/mlflow"))
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.runs < 100 or args.metrics < 4 or args.params < 1:
        parser.error("need --runs >= 100, --metrics >= 4 and --params >= 1")
    result = bench(args)
    print(json.dumps(result, indent=2, default=str) if args.json else "", end="")
    if not args.json:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
