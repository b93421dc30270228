"""Scale-out: hyperparameter search and batch transform on the local executor and on Ray,
beside Ray Tune (with Optuna's sampler) on the same search, in the same run.

Search: 32 trials of a RandomForestClassifier (n_estimators 20..120, max_depth 2..14,
max_features 0.2..1.0, one core per trial) on ``make_classification(n_samples=4000,
n_features=20, random_state=0)``, scored by 3-fold cross-validated accuracy, the folds
reported as intermediate values (the median pruner may stop a trial early). Rows:

- ``loopline local``: ``search(...)`` in one process (the local executor's default);
- ``loopline ray``: ``search(..., executor=RayExecutor())``: 2 Ray workers sharing the study
  in the metadata database (SQLite here; PostgreSQL on a cluster);
- ``ray tune``: ``tune.Tuner`` with ``OptunaSearch`` (TPE, same seed) and 2 concurrent trials
  on the same Ray instance, with ASHA-free defaults (no pruning: Tune's median stopping rule
  needs more trials than this).

Batch transform: ``loopline predict`` of N rows x 20 features (Parquet in and out, the
prediction log on, the model's ONNX export) as a whole process, on the local executor (the
chunks in threads of that process) and with ``--executor ray`` (shards of the input scored
in 2 Ray workers, merged by the driver), the two outputs compared column by column (all
but ``request_id``, whose run id differs by run).

Each configuration runs in a process of its own, with Ray started with 2 CPUs in it (Ray's
start-up is counted in its wall time and shown on its own). The last table projects the
search and the batch transform to larger clusters from the measured costs; for the batch
transform also on a cluster already up ("Ray up": without Ray's start-up).

    .venv/bin/python bench/scale.py                  # 32 trials three ways, 2,000,000 rows
    .venv/bin/python bench/scale.py --trials 16 --skip-tune --rows 200000 --json
    .venv/bin/python bench/scale.py --skip-search    # the batch transform only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

# bench/batch.py's project setup (this folder is on sys.path when a benchmark runs as a
# script).
from batch import SETUP as BATCH_SETUP

HERE = Path(__file__).resolve().parent

OBJECTIVE = """
import time
import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import StratifiedKFold

X, y = make_classification(n_samples=4000, n_features=20, n_informative=8, random_state=0)
FOLDS = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))

def score(params, report=None):
    scores = []
    for i, (train, test) in enumerate(FOLDS):
        model = RandomForestClassifier(
            n_estimators=int(params["n_estimators"]),
            max_depth=int(params["max_depth"]),
            max_features=float(params["max_features"]),
            n_jobs=1,
            random_state=0,
        ).fit(X[train], y[train])
        scores.append(float((model.predict(X[test]) == y[test]).mean()))
        if report is not None and report(float(np.mean(scores)), i):
            break
    return float(np.mean(scores))
"""

LOOPLINE_SEARCH = (
    OBJECTIVE
    + """
import json, sys
from pathlib import Path
from loopline.config import default_toml, settings_for
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores
from loopline.train import FloatRange, IntRange, search

kind, n_trials, root = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
(root / "loopline.toml").write_text(default_toml())
settings = settings_for(root, environ={})
with Database(settings.metadata_url, create=True) as db:
    migrate.upgrade(db)
t0 = time.perf_counter()
executor = None
ray_start = 0.0
if kind == "ray":
    from loopline.execute.ray import RayExecutor
    executor = RayExecutor(num_cpus=2)
    ray_start = time.perf_counter() - t0
space = {"n_estimators": IntRange(20, 120), "max_depth": IntRange(2, 14),
         "max_features": FloatRange(0.2, 1.0)}
with Stores.open(settings) as stores:
    result = search(stores, lambda p, report, run: score(p, report), space, study="bench",
                    n_trials=n_trials, seed=0, executor=executor)
wall = time.perf_counter() - t0
if executor is not None:
    executor.shutdown()
print(json.dumps({"wall": wall, "ray_start": ray_start, "best": result.best_value,
                  "complete": result.n_complete, "pruned": result.n_pruned}))
"""
)

RAY_TUNE = (
    OBJECTIVE
    + """
import json, sys
import ray
from ray import tune
from ray.tune.search.optuna import OptunaSearch

n_trials, root = int(sys.argv[1]), sys.argv[2]
t0 = time.perf_counter()
ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
ray_start = time.perf_counter() - t0

def trainable(config):
    tune.report({"accuracy": score(config)})

tuner = tune.Tuner(
    tune.with_resources(trainable, {"cpu": 1}),
    param_space={"n_estimators": tune.randint(20, 121), "max_depth": tune.randint(2, 15),
                 "max_features": tune.uniform(0.2, 1.0)},
    tune_config=tune.TuneConfig(
        search_alg=OptunaSearch(metric="accuracy", mode="max", seed=0),
        num_samples=n_trials, max_concurrent_trials=2),
    run_config=tune.RunConfig(storage_path=root, verbose=0),
)
results = tuner.fit()
best = results.get_best_result(metric="accuracy", mode="max")
wall = time.perf_counter() - t0
print(json.dumps({"wall": wall, "ray_start": ray_start, "best": best.metrics["accuracy"],
                  "complete": len(results), "pruned": 0}))
ray.shutdown()
"""
)

ONE_TRIAL = (
    OBJECTIVE
    + """
import json
t0 = time.perf_counter()
score({"n_estimators": 90, "max_depth": 8, "max_features": 0.6})
print(json.dumps({"trial": time.perf_counter() - t0}))
"""
)


def _child(code: str, *args: str, timeout: float = 3600) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env["RAY_DEDUP_LOGS"] = "0"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode != 0:
        raise SystemExit(f"a benchmark child failed:\n{proc.stderr[-4000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    return dict(json.loads(line))


# -- batch transform ----------------------------------------------------------------------


def _batch(rows: int, work: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    root = work / "batch"
    root.mkdir()
    subprocess.run(
        # bench/batch.py's project: the same forest, registered with ONNX, and its input.
        [sys.executable, "-c", textwrap.dedent(BATCH_SETUP), str(root), str(rows), "0"],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    out: list[dict[str, Any]] = []
    tables = {}
    for kind in ("local", "ray"):
        target = root / f"out-{kind}.parquet"
        run_env = dict(env)
        if kind == "ray":  # a local Ray instance of 2 CPUs, started by the command
            run_env.update(LOOPLINE_EXECUTOR_KIND="ray", LOOPLINE_EXECUTOR_NUM_CPUS="2")
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "loopline", "predict", "bench@prod"),
                *(str(root / "input.parquet"), str(target), "--executor", kind, "--json"),
            ],
            cwd=root,
            env=run_env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"loopline predict --executor {kind} failed:\n{proc.stderr[-3000:]}")
        summary = json.loads(proc.stdout)
        table = pq.read_table(target)
        tables[kind] = table.drop_columns(["request_id"])
        out.append(
            {
                "executor": kind,
                "rows": rows,
                "wall": wall,
                "rows_per_s": rows / wall,
                "scoring_s": summary["seconds"],
                "merge_s": summary.get("merge_seconds", 0.0),
                "worker_s": summary.get("worker_seconds", 0.0),
                "startup_s": wall - summary["total_seconds"],
                "workers": len(summary["workers"]),
                "path": summary["path"],
                "logged": summary["logged_rows"],
            }
        )
    same = tables["local"].equals(tables["ray"])
    for row in out:
        row["same_output"] = same
    return out


def _batch_projection(local: dict[str, Any], ray_row: dict[str, Any]) -> list[dict[str, Any]]:
    """Wall time of the batch transform on N Ray workers from what was measured: Ray's
    start and the driver's fixed costs, plus the shards' worker-seconds (model loads
    included) spread over N, plus the driver's merge of the parts (serial: it grows with
    the rows, not with the workers; counted whole, though it overlaps the shards)."""
    fixed = ray_row["wall"] - ray_row["scoring_s"]
    merge = ray_row["merge_s"]
    work = ray_row["worker_s"]
    # Starting Ray here is most of the fixed cost; a cluster that is already up only
    # takes a connection (the local run's start-up stands in for the rest).
    ray_start = max(0.0, ray_row["startup_s"] - local["startup_s"])
    rows = []
    for workers in (2, 8, 32, 128):
        projected = fixed + work / workers + merge
        running = projected - ray_start
        rows.append(
            {
                "workers": workers,
                "rows": ray_row["rows"],
                "projected_s": projected,
                "speedup": local["wall"] / projected,
                "running_s": running,
                "running_speedup": local["wall"] / running,
            }
        )
    return rows


# -- report -------------------------------------------------------------------------------


def _projection(local: dict[str, Any], ray_row: dict[str, Any], trials: int) -> list[dict]:  # type: ignore[type-arg]
    """Wall time of the search on N workers from what was measured: the fixed cost (Ray's
    start, the study's set-up) plus ceil(trials / N) rounds of the mean trial time, and
    the overhead per trial seen on 2 workers (dispatch, the shared study)."""
    per_trial = local["wall"] / trials
    fixed = ray_row["ray_start"]
    rounds_2 = math.ceil(trials / 2)
    overhead = max(0.0, (ray_row["wall"] - fixed) / rounds_2 - per_trial)
    rows = []
    for workers in (2, 8, 32, 128):
        rounds = math.ceil(trials / workers)
        rows.append(
            {
                "workers": workers,
                "trials": trials,
                "projected_s": fixed + rounds * (per_trial + overhead),
                "speedup": local["wall"] / (fixed + rounds * (per_trial + overhead)),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--skip-tune", action="store_true", help="Leave out Ray Tune.")
    parser.add_argument("--skip-search", action="store_true", help="Leave out the search.")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--skip-batch", action="store_true", help="Leave out the batch rows.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    work = Path(tempfile.mkdtemp(prefix="loopline-scale-"))
    trial = 0.0
    search_rows: list[dict[str, Any]] = []
    projection: list[dict[str, Any]] = []
    batch_rows: list[dict[str, Any]] = []
    batch_projection: list[dict[str, Any]] = []
    try:
        if not args.skip_search:
            trial = _child(ONE_TRIAL)["trial"]
            for name, code, extra in (
                ("loopline local", LOOPLINE_SEARCH, ("local",)),
                ("loopline ray", LOOPLINE_SEARCH, ("ray",)),
                *((("ray tune", RAY_TUNE, ()),) if not args.skip_tune else ()),
            ):
                folder = work / name.replace(" ", "-")
                folder.mkdir()
                row = _child(code, *extra, str(args.trials), str(folder))
                search_rows.append({"tool": name, **row})
            base = search_rows[0]["wall"]
            for row in search_rows:
                row["speedup"] = base / row["wall"]
            projection = _projection(search_rows[0], search_rows[1], args.trials)
        if not args.skip_batch:
            batch_rows = _batch(args.rows, work)
            batch_projection = _batch_projection(batch_rows[0], batch_rows[1])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report = {
        "trials": args.trials,
        "one_trial_s": trial,
        "search": search_rows,
        "projection": projection,
        "batch": batch_rows,
        "batch_projection": batch_projection,
        "load": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    console = Console()
    if search_rows:
        t = Table(title=f"search: {args.trials} trials (one trial alone: {trial:.2f} s)")
        for col in (
            "tool",
            "wall s",
            "ray start s",
            "best accuracy",
            "complete",
            "pruned",
            "vs local",
        ):
            t.add_column(col, justify="left" if col == "tool" else "right")
        for r in search_rows:
            t.add_row(
                r["tool"],
                f"{r['wall']:.1f}",
                f"{r['ray_start']:.1f}" if r["ray_start"] else "-",
                f"{r['best']:.4f}",
                str(r["complete"]),
                str(r["pruned"]),
                f"{r['speedup']:.2f}x",
            )
        console.print(t)
    if batch_rows:
        b = Table(title=f"loopline predict: {args.rows:,} rows x 20 features (log on)")
        columns = ("executor", "workers", "wall s", "start-up s", "worker s", "merge s")
        for col in (*columns, "rows/s", "same"):
            b.add_column(col, justify="right")
        for r in batch_rows:
            b.add_row(
                r["executor"],
                str(r["workers"]),
                f"{r['wall']:.1f}",
                f"{r['startup_s']:.1f}",
                f"{r['worker_s']:.1f}" if r["executor"] == "ray" else "-",
                f"{r['merge_s']:.1f}" if r["executor"] == "ray" else "-",
                f"{r['rows_per_s']:,.0f}",
                str(r["same_output"]),
            )
        console.print(b)
    p = Table(title="projected wall time on larger clusters (from the measured costs)")
    for col in ("work", "workers", "size", "projected s", "vs local", "Ray up s", "vs local"):
        p.add_column(col, justify="right")
    for r in projection:
        p.add_row(
            "search",
            str(r["workers"]),
            f"{r['trials']} trials",
            f"{r['projected_s']:.1f}",
            f"{r['speedup']:.1f}x",
            "-",
            "-",
        )
    for r in batch_projection:
        p.add_row(
            "batch",
            str(r["workers"]),
            f"{r['rows']:,} rows",
            f"{r['projected_s']:.1f}",
            f"{r['speedup']:.1f}x",
            f"{r['running_s']:.1f}",
            f"{r['running_speedup']:.1f}x",
        )
    if projection or batch_projection:
        console.print(p)
    console.print(f"load average during the run: {report['load'][0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
