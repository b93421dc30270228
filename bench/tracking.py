"""Metric logging throughput: loopline beside MLflow 3.17.2, in one invocation.

    python bench/tracking.py                       # 10,000 points + 100 params, both tools
    python bench/tracking.py --mlflow-points 1000  # MLflow's per-call path on fewer points
    python bench/tracking.py --skip-mlflow --json

Each tool logs into one run on a fresh SQLite store: ``--points`` metric points one call
at a time, plus ``--params`` params, and the run is ended, so that every point is durable
when the clock stops (loopline's figure includes the final flush). MLflow is also measured
through ``MlflowClient.log_batch`` (1,000 points per call), its fastest path. MLflow runs
in its own virtual environment outside the repository (created on first use, under
``~/.cache/loopline-bench/mlflow``), as a subprocess that times itself, so neither tool's
import nor interpreter start counts in the throughput. Also timed, in fresh processes:
``import`` of the tracking API plus starting a run (target < 0.3 s for loopline).

MLflow's per-call path takes about 90 s for 10,000 points on SQLite; ``--mlflow-points``
runs it on fewer points (throughput is per point, so the figure is comparable).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

MLFLOW_VERSION = "3.17.2"
DEFAULT_VENV = Path.home() / ".cache" / "loopline-bench" / "mlflow"
TARGET_PER_CALL_RATIO = 200.0
TARGET_START_S = 0.3

LOOPLINE_LOG = """
import json, sys, time
from pathlib import Path
from loopline.config import settings_for
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores
from loopline.tracking import Tracker
from loopline.tracking.tables import metrics
import sqlalchemy as sa

root, points, n_params = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
env = {"LOOPLINE_METADATA_URL": f"sqlite:///{root / 'loopline.db'}"}
t = time.perf_counter()
settings = settings_for(root, environ=env)
with Database(settings.metadata_url, create=True) as db:
    migrate.upgrade(db)
new_store = time.perf_counter() - t
stores = Stores.open(settings)
tracker = Tracker(stores)
run = tracker.start_run("bench", "per-call")
t = time.perf_counter()
for i in range(n_params):
    run.log_param(f"p{i}", i)
params_s = time.perf_counter() - t
t = time.perf_counter()
for i in range(points):
    run.log_metric("loss", 1.0 / (i + 1), step=i)
calls_s = time.perf_counter() - t
t = time.perf_counter()
run.finish()
finish_s = time.perf_counter() - t
with stores.db.read() as conn:
    durable = conn.execute(
        sa.select(sa.func.count()).select_from(metrics).where(metrics.c.run_id == run.id)
    ).scalar_one()
record = tracker.get_run(run.id)
print(json.dumps({
    "new_store_s": new_store, "params_s": params_s, "calls_s": calls_s,
    "finish_s": finish_s, "durable_points": durable, "params_logged": len(record.params),
}))
"""

LOOPLINE_START = """
import sys, time
t = time.perf_counter()
from pathlib import Path
from loopline.config import settings_for
from loopline.store.stores import Stores
from loopline.tracking import Tracker
root = Path(sys.argv[1])
stores = Stores.open(settings_for(root, environ={
    "LOOPLINE_METADATA_URL": f"sqlite:///{root / 'loopline.db'}"}))
run = Tracker(stores).start_run("bench", "start")
elapsed = time.perf_counter() - t
run.finish()
print(elapsed)
"""

MLFLOW_LOG = """
import json, logging, os, sys, time, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
root = sys.argv[1]
points, n_params, batch_points = (int(a) for a in sys.argv[2:5])
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric
uri = f"sqlite:///{root}/mlflow.db"
mlflow.set_tracking_uri(uri)
t = time.perf_counter()
exp = mlflow.set_experiment("bench")
new_store = time.perf_counter() - t
with mlflow.start_run(run_name="per-call") as run:
    t = time.perf_counter()
    for i in range(n_params):
        mlflow.log_param(f"p{i}", i)
    params_s = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(points):
        mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
    calls_s = time.perf_counter() - t
client = MlflowClient(uri)
batch_run = client.create_run(exp.experiment_id, run_name="log-batch")
now = int(time.time() * 1000)
t = time.perf_counter()
for start in range(0, batch_points, 1000):
    chunk = [Metric("loss", 1.0 / (i + 1), now, i)
             for i in range(start, min(start + 1000, batch_points))]
    client.log_batch(batch_run.info.run_id, metrics=chunk)
client.set_terminated(batch_run.info.run_id)
batch_s = time.perf_counter() - t
durable = len(client.get_metric_history(run.info.run_id, "loss"))
print(json.dumps({
    "version": mlflow.__version__, "new_store_s": new_store, "params_s": params_s,
    "calls_s": calls_s, "batch_s": batch_s, "durable_points": durable,
}))
"""

MLFLOW_START = """
import sys, time, logging, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
t = time.perf_counter()
import mlflow
mlflow.set_tracking_uri(f"sqlite:///{sys.argv[1]}/mlflow.db")
mlflow.set_experiment("bench")
run = mlflow.start_run(run_name="start")
elapsed = time.perf_counter() - t
mlflow.end_run()
print(elapsed)
"""


def run_script(python: str, code: str, *args: object, timeout: float = 3600) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLINE_", "MLFLOW_"))}
    env["MLFLOW_TRACKING_URI"] = ""
    proc = subprocess.run(
        [python, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed ({python}):\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def ensure_mlflow(venv: Path) -> str:
    """The python of a venv holding MLflow, created (outside the repository) if missing."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import mlflow, sys; sys.stdout.write(mlflow.__version__)"]
    if python.exists():
        found = subprocess.run(check, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout == MLFLOW_VERSION:
            return str(python)
    print(
        f"creating the MLflow {MLFLOW_VERSION} venv in {venv} (a few minutes)...", file=sys.stderr
    )
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if subprocess.run([*pip, f"mlflow=={MLFLOW_VERSION}"]).returncode != 0:
        # Seen with newer pandas releases: pin below 3 and try again.
        subprocess.run([*pip, f"mlflow=={MLFLOW_VERSION}", "pandas<3"], check=True)
    subprocess.run(check, check=True, capture_output=True)
    return str(python)


def median_of(python: str, code: str, root: Path, repeat: int) -> float:
    return statistics.median(float(run_script(python, code, root)) for _ in range(repeat))


def bench(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"points": args.points, "params": args.params}
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="loopline-bench-") as tmp:
            runs.append(
                json.loads(run_script(sys.executable, LOOPLINE_LOG, tmp, args.points, args.params))
            )
    # Median repetition by total time to durable.
    runs.sort(key=lambda r: r["calls_s"] + r["finish_s"])
    ll = runs[len(runs) // 2]
    if ll["durable_points"] != args.points or ll["params_logged"] != args.params:
        raise SystemExit(f"loopline lost data: {ll}")
    with tempfile.TemporaryDirectory(prefix="loopline-bench-") as tmp:
        run_script(sys.executable, LOOPLINE_LOG, tmp, 1, 0)  # create the store
        ll["start_s"] = median_of(sys.executable, LOOPLINE_START, Path(tmp), args.repeat)
    ll["points_per_s"] = args.points / (ll["calls_s"] + ll["finish_s"])
    out["loopline"] = ll
    if args.skip_mlflow:
        return out
    python = ensure_mlflow(Path(args.mlflow_venv).expanduser())
    mlflow_points = args.mlflow_points or args.points
    with tempfile.TemporaryDirectory(prefix="loopline-bench-mlflow-") as tmp:
        ml = json.loads(
            run_script(python, MLFLOW_LOG, tmp, mlflow_points, args.params, args.points)
        )
        ml["start_s"] = median_of(python, MLFLOW_START, Path(tmp), args.repeat)
    if ml["durable_points"] != mlflow_points:
        raise SystemExit(f"MLflow lost data: {ml}")
    ml["points"] = mlflow_points
    ml["points_per_s"] = mlflow_points / ml["calls_s"]
    ml["batch_points_per_s"] = args.points / ml["batch_s"]
    out["mlflow"] = ml
    out["ratio_per_call"] = ll["points_per_s"] / ml["points_per_s"]
    out["ratio_vs_log_batch"] = ll["points_per_s"] / ml["batch_points_per_s"]
    return out


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    ll = result["loopline"]
    ml = result.get("mlflow")
    n = result["points"]
    t = Table(
        title=f"Metric logging into one run on SQLite ({n:,} points, {result['params']} params)",
        title_justify="left",
    )
    for col in ("what", "points", "seconds", "points/s", "note"):
        t.add_column(col, justify="left" if col in ("what", "note") else "right")
    ll_s = ll["calls_s"] + ll["finish_s"]
    t.add_row(
        "loopline run.log_metric, per call",
        f"{n:,}",
        f"{ll_s:.3f}",
        f"{ll['points_per_s']:,.0f}",
        f"calls {ll['calls_s']:.3f} s + final flush {ll['finish_s']:.3f} s; all durable",
    )
    if ml:
        t.add_row(
            f"MLflow {ml['version']} log_metric, per call",
            f"{ml['points']:,}",
            f"{ml['calls_s']:.2f}",
            f"{ml['points_per_s']:,.0f}",
            "synchronous: durable on return",
        )
        t.add_row(
            "MLflow MlflowClient.log_batch, 1,000/call",
            f"{n:,}",
            f"{ml['batch_s']:.3f}",
            f"{ml['batch_points_per_s']:,.0f}",
            "",
        )
    t.add_row("loopline 100 x log_param", "", f"{ll['params_s']:.4f}", "", "buffered, then flushed")
    if ml:
        t.add_row("MLflow 100 x log_param", "", f"{ml['params_s']:.3f}", "", "")
    t.add_row(
        "loopline import + start a run",
        "",
        f"{ll['start_s']:.3f}",
        "",
        f"target < {TARGET_START_S} s: {'met' if ll['start_s'] < TARGET_START_S else 'MISSED'}",
    )
    if ml:
        t.add_row("MLflow import + start a run", "", f"{ml['start_s']:.3f}", "", "")
        t.add_row(
            "new store (migrations)",
            "",
            f"{ll['new_store_s']:.3f} / {ml['new_store_s']:.3f}",
            "",
            "loopline / MLflow",
        )
    Console().print(t)
    if ml:
        per_call = result["ratio_per_call"]
        vs_batch = result["ratio_vs_log_batch"]
        ok_call = "met" if per_call >= TARGET_PER_CALL_RATIO else "MISSED"
        ok_batch = "met" if vs_batch > 1 else "MISSED"
        print(
            f"loopline per call vs MLflow per call: {per_call:,.0f}x "
            f"(target >= {TARGET_PER_CALL_RATIO:.0f}x: {ok_call})"
        )
        print(f"loopline per call vs MLflow log_batch: {vs_batch:.1f}x (target > 1x: {ok_batch})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10_000, help="metric points per run")
    parser.add_argument("--params", type=int, default=100, help="params per run")
    parser.add_argument(
        "--mlflow-points",
        type=int,
        default=None,
        help="points for MLflow's per-call path (default: --points; ~90 s for 10,000)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="loopline repetitions (median)")
    parser.add_argument("--skip-mlflow", action="store_true", help="measure loopline only")
    parser.add_argument("--mlflow-venv", default=str(DEFAULT_VENV), help="MLflow's venv")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.points < 1 or args.params < 0 or (args.mlflow_points or 1) < 1:
        parser.error("--points and --mlflow-points must be >= 1, --params >= 0")
    result = bench(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
