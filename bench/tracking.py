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

Listing (``--listing-runs``, default 10,000; ``--skip-listing`` to leave it out): the same
runs (10 params, 20 metrics each, as in bench/ui.py) are written into a loopline project
and an MLflow store, then each tool lists 1,000 of them as JSON in a whole process, from
interpreter start to exit, timed from outside: ``loopline runs ls --json -n 1000`` (and
with a filter and a sort, the regular path) against a script that calls MLflow's
``search_runs(max_results=1000)`` and prints ``json.dumps`` of the runs'
``to_dictionary()``, and ``mlflow runs list`` (a text table of date, name and id of the
first 1,000 runs; it has no JSON). Also the SDK calls
alone, in process. Both tools run with their bytecode cached (``PYTHONPYCACHEPREFIX`` in
a temporary folder, warmed by a first call), as installed packages are. Target: loopline's
whole process under 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # bench/ui.py: the runs both tools list

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


# -- listing ---------------------------------------------------------------------------------

TARGET_LISTING_S = 0.3
LISTED = 1000

LOOPLINE_LIST_SDK = """
import json, statistics, sys, time
from loopline.config import load_settings
from loopline.store.stores import Stores
from loopline.tracking import Tracker
from loopline.tracking.listing import dumps_listing
repeat = int(sys.argv[1])
with Stores.open(load_settings()) as stores:
    tracker = Tracker(stores)
    out = {}
    for name, call in (
        ("list_runs", lambda: dumps_listing(tracker.list_runs(limit=1000))),
        ("search_runs", lambda: json.dumps(
            [r.as_dict() for r in tracker.search_runs(limit=1000)], indent=2, default=str
        ).encode()),
    ):
        call()
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            data = call()
            times.append(time.perf_counter() - t)
        out[name] = {"median_s": statistics.median(times), "bytes": len(data)}
print(json.dumps(out))
"""

MLFLOW_LIST = """
import json, logging, sys, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
from mlflow.tracking import MlflowClient
uri, exp, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
found = MlflowClient(tracking_uri=uri).search_runs([exp], max_results=n)
sys.stdout.write(json.dumps([r.to_dictionary() for r in found]))
"""

MLFLOW_LIST_SDK = """
import json, logging, statistics, sys, time, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
from mlflow.tracking import MlflowClient
uri, exp, n, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
client = MlflowClient(tracking_uri=uri)
client.search_runs([exp], max_results=n)
times = []
for _ in range(repeat):
    t = time.perf_counter()
    found = client.search_runs([exp], max_results=n)
    data = json.dumps([r.to_dictionary() for r in found])
    times.append(time.perf_counter() - t)
print(json.dumps({"median_s": statistics.median(times), "bytes": len(data)}))
"""


def _clean_env(cache: Path) -> dict[str, str]:
    """The environment of a timed process: no LOOPLINE_/MLFLOW_ settings, bytecode cached
    in ``cache`` (as an installed package has it), whatever this shell says."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LOOPLINE_", "MLFLOW_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def time_process(command: list[str], cwd: Path, env: dict[str, str], repeat: int) -> dict[str, Any]:
    """Median wall time of ``command`` from start to exit (after one warming call), and
    the bytes it printed."""
    subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=True, timeout=600)
    times = []
    out = b""
    for _ in range(repeat):
        t = time.perf_counter()
        proc = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, check=True, timeout=600
        )
        times.append(time.perf_counter() - t)
        out = proc.stdout
    return {"median_s": statistics.median(times), "min_s": min(times), "stdout": out}


def _loopline_command() -> list[str]:
    script = Path(sys.executable).parent / "loopline"
    return [str(script)] if script.exists() else [sys.executable, "-m", "loopline"]


def bench_listing(args: argparse.Namespace) -> dict[str, Any]:
    """``runs ls --json -n 1000`` over ``--listing-runs`` runs, loopline and MLflow."""
    from ui import _values, fill_loopline

    n = args.listing_runs
    data = _values(n, 20, 10)
    out: dict[str, Any] = {"runs": n, "listed": min(LISTED, n), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="loopline-bench-list-") as tmp:
        root = Path(tmp)
        env = _clean_env(root / "pycache")
        project = root / "project"
        (project / ".loopline").mkdir(parents=True)
        (project / "loopline.toml").write_text('store = ".loopline"\n')
        db = project / ".loopline" / "loopline.db"
        out["loopline_fill_s"] = fill_loopline(f"sqlite:///{db}", project / ".loopline", data)
        ll = _loopline_command()
        rows: dict[str, Any] = {}
        python = [sys.executable, "-c", "pass"]
        rows["python -c pass"] = time_process(python, project, env, args.repeat)
        ls = [*ll, "runs", "ls", "--json", "-n", str(LISTED)]
        plain = time_process(ls, project, env, args.repeat)
        listed = json.loads(plain["stdout"])
        if len(listed) != out["listed"] or len(listed[0]["metrics"]) != 20:
            raise SystemExit("loopline runs ls --json listed the wrong runs")
        rows["loopline runs ls --json -n 1000"] = plain
        search = ["-f", "params.model = rf", "--sort", "-metrics.m3"]
        rows["loopline runs ls --json -n 1000, filter + sort"] = time_process(
            [*ls, *search], project, env, args.repeat
        )
        sdk = json.loads(run_in(sys.executable, LOOPLINE_LIST_SDK, project, env, args.repeat))
        out["loopline_sdk"] = sdk
        if args.skip_mlflow:
            out["rows"] = _summary(rows)
            out["load_after"] = os.getloadavg()
            return out
        mlflow_python = ensure_mlflow(Path(args.mlflow_venv).expanduser())
        store, exp, out["mlflow_fill_s"] = mlflow_store(mlflow_python, data, root, env)
        uri = f"sqlite:///{store}"
        ml = time_process(
            [mlflow_python, "-c", textwrap.dedent(MLFLOW_LIST), uri, exp, str(LISTED)],
            root,
            env,
            args.repeat,
        )
        if len(json.loads(ml["stdout"])) != out["listed"]:  # also checks a reused store
            raise SystemExit("MLflow search_runs listed the wrong runs")
        rows[f"MLflow {MLFLOW_VERSION} search_runs(max_results=1000) -> JSON"] = ml
        ml_env = env | {"MLFLOW_TRACKING_URI": uri}
        rows["mlflow runs list (first 1,000: date, name, id)"] = time_process(
            [mlflow_python, "-m", "mlflow", "runs", "list", "--experiment-id", exp],
            root,
            ml_env,
            args.repeat,
        )
        out["mlflow_sdk"] = json.loads(
            run_in(mlflow_python, MLFLOW_LIST_SDK, root, env, uri, exp, LISTED, args.repeat)
        )
    out["rows"] = _summary(rows)
    out["load_after"] = os.getloadavg()
    return out


def mlflow_store(
    python: str, data: list[dict[str, Any]], root: Path, env: dict[str, str]
) -> tuple[Path, str, float | None]:
    """An MLflow SQLite store holding ``data``: (its file, the experiment id, seconds the
    fill took or None when reused). MLflow's client writes about 8 runs a second here, so
    the store of these seeded runs is kept beside its venv and reused (it is only read)."""
    import hashlib

    from ui import MLFLOW_FILL

    key = hashlib.sha256(json.dumps(data, default=str, sort_keys=True).encode()).hexdigest()[:16]
    store = DEFAULT_VENV.parent / f"mlflow-listing-{len(data)}-{key}.db"
    about = store.with_suffix(".json")
    if store.exists() and about.exists():
        return store, str(json.loads(about.read_text())["experiment"]), None
    dump = root / "runs.json"
    dump.write_text(json.dumps([item | {"start": item["start"].timestamp()} for item in data]))
    partial = root / "mlflow.db"
    filled = json.loads(run_in(python, MLFLOW_FILL, root, env, f"sqlite:///{partial}", dump))
    store.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(partial, store)
    about.write_text(json.dumps({"experiment": filled["experiment"], "runs": len(data)}))
    return store, str(filled["experiment"]), float(filled["fill_s"])


def run_in(python: str, code: str, cwd: Path, env: dict[str, str], *args: object) -> str:
    proc = subprocess.run(
        [python, "-c", textwrap.dedent(code), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=7200,
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed ({python}):\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def _summary(rows: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {"median_s": r["median_s"], "min_s": r["min_s"], "bytes": len(r["stdout"])}
        for name, r in rows.items()
    }


def print_listing(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = result["rows"]
    t = Table(
        title=f"Listing {result['listed']:,} of {result['runs']:,} runs as JSON (10 params, "
        "20 metrics each; SQLite; whole processes, median wall time)",
        title_justify="left",
    )
    for col in ("what", "ms", "bytes", "note"):
        t.add_column(col, justify="left" if col in ("what", "note") else "right")
    ours = rows["loopline runs ls --json -n 1000"]
    ml_name = f"MLflow {MLFLOW_VERSION} search_runs(max_results=1000) -> JSON"
    for name, r in rows.items():
        note = ""
        if name == "loopline runs ls --json -n 1000":
            ok = "met" if r["median_s"] < TARGET_LISTING_S else "MISSED"
            note = f"target < {TARGET_LISTING_S * 1000:.0f} ms: {ok}"
        elif name == ml_name:
            note = (
                f"loopline: {r['median_s'] / ours['median_s']:.1f}x faster, "
                f"{ours['bytes'] / r['bytes']:.2f}x the bytes"
            )
        t.add_row(name, f"{r['median_s'] * 1000:.0f}", f"{r['bytes']:,}", note)
    sdk = result["loopline_sdk"]
    t.add_row(
        "in process: Tracker.list_runs(limit=1000) + JSON",
        f"{sdk['list_runs']['median_s'] * 1000:.0f}",
        f"{sdk['list_runs']['bytes']:,}",
        "the listing statement",
    )
    t.add_row(
        "in process: Tracker.search_runs(limit=1000) + as_dict JSON",
        f"{sdk['search_runs']['median_s'] * 1000:.0f}",
        f"{sdk['search_runs']['bytes']:,}",
        "full records, indented (runs ls before)",
    )
    if "mlflow_sdk" in result:
        ml = result["mlflow_sdk"]
        t.add_row(
            "in process: MLflow search_runs + JSON",
            f"{ml['median_s'] * 1000:.0f}",
            f"{ml['bytes']:,}",
            "",
        )
    Console(width=max(Console().width, 132)).print(t)
    before, after = result["load_before"], result["load_after"]
    print(f"load average {before[0]:.2f} before, {after[0]:.2f} after")


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
    parser.add_argument(
        "--listing-runs", type=int, default=10_000, help="runs in the store for the listing"
    )
    parser.add_argument("--skip-listing", action="store_true", help="leave the listing out")
    parser.add_argument("--skip-logging", action="store_true", help="leave metric logging out")
    args = parser.parse_args(argv)
    if args.points < 1 or args.params < 0 or (args.mlflow_points or 1) < 1:
        parser.error("--points and --mlflow-points must be >= 1, --params >= 0")
    if args.listing_runs < 1:
        parser.error("--listing-runs must be >= 1")
    result: dict[str, Any] = {} if args.skip_logging else bench(args)
    if not args.skip_listing:
        result["listing"] = bench_listing(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if not args.skip_logging:
        print_table(result)
    if not args.skip_listing:
        print_listing(result["listing"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
