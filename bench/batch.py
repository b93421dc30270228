"""Batch transform: ``loopline predict`` beside ``mlflow models predict`` and the in-process
limit, in the same run.

Model: ``RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0)`` fitted on
``make_classification(n_samples=10_000, n_features=20, random_state=0)`` as a DataFrame
f0..f19, registered with ``onnx=True``. Input: N rows x 20 float64 features drawn from a
seeded normal, as Parquet (and as CSV for MLflow, whose ``models predict`` reads CSV or
JSON only). Rows, each a whole process:

- ``loopline predict``: ``python -m loopline predict bench@prod IN.parquet OUT.parquet``
  with the prediction log on (and once more with ``--no-log``, for the log's share);
- ``mlflow models predict``: MLflow 3.17.2 in its own virtual environment,
  ``-t csv --env-manager local`` (its pyfunc returns ``predict_proba``);
- ``limit``: the in-process floor, in one process: ``pd.read_parquet``, one
  ``predict_proba`` of the scikit-learn model, ``DataFrame.to_parquet``.

Figures per row: wall seconds (median of ``--repeat``), rows/s, the process's peak RSS
(``wait4``'s rusage of the child), and for loopline the log's bytes against the input's
and its share of the wall and CPU time (logged run minus the ``--no-log`` run). Outputs are
checked: loopline's classes equal the limit's and its probabilities agree within 1e-5.

    .venv/bin/python bench/batch.py                    # 1,000,000 rows, medians of 3
    .venv/bin/python bench/batch.py --rows 200000 --repeat 1 --skip-mlflow
    .venv/bin/python bench/batch.py --json
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

# MLflow's own venv, shared with bench/serving.py (this folder is on sys.path when a
# benchmark runs as a script).
from serving import mlflow_venv

_MB = 1024 * 1024

SETUP = """
import pickle, sys
from pathlib import Path
import numpy as np, pandas as pd
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from loopline.config import default_toml, settings_for
from loopline.registry import Registry
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores

root, rows, csv = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
(root / "loopline.toml").write_text(default_toml())
settings = settings_for(root, environ={})
with Database(settings.metadata_url, create=True) as db:
    migrate.upgrade(db)
X, y = make_classification(n_samples=10_000, n_features=20, random_state=0)
cols = [f"f{i}" for i in range(20)]
model = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(
    pd.DataFrame(X, columns=cols), y)
(root / "model.pkl").write_bytes(pickle.dumps(model))
with Stores.open(settings) as stores:
    reg = Registry(stores)
    mv = reg.register("bench", model, sample=pd.DataFrame(X[:200], columns=cols), onnx=True)
    reg.set_alias("bench", "prod", mv.version)
rng = np.random.default_rng(1)
frame = pd.DataFrame(rng.normal(size=(rows, 20)), columns=cols)
frame.to_parquet(root / "input.parquet", row_group_size=100_000)
if csv:
    frame.to_csv(root / "input.csv", index=False)
"""

LIMIT = """
import pickle, sys, time
t0 = time.perf_counter()
import pandas as pd
model = pickle.loads(open(sys.argv[1], "rb").read())
frame = pd.read_parquet(sys.argv[2])
proba = model.predict_proba(frame)
out = frame.copy()
out["prediction"] = model.classes_[proba.argmax(axis=1)]
for i, c in enumerate(model.classes_):
    out[f"proba.{c}"] = proba[:, i]
out.to_parquet(sys.argv[3])
print(time.perf_counter() - t0)
"""

MLFLOW_SAVE = """
import pickle, sys
import mlflow.sklearn
model = pickle.loads(open(sys.argv[1], "rb").read())
kwargs = dict(pyfunc_predict_fn="predict_proba")
try:
    mlflow.sklearn.save_model(model, sys.argv[2], skops_trusted_types=["sklearn.tree._tree.Tree"],
                              **kwargs)
except TypeError:
    mlflow.sklearn.save_model(model, sys.argv[2], **kwargs)
"""


def measured(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` to its end: wall seconds, CPU seconds (user + system) and peak RSS (MB),
    of it and the children it waited for (``wait4``'s rusage), and its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... exited {proc.returncode}:\n{stderr[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall": wall, "cpu": cpu, "rss_mb": usage.ru_maxrss / 1024, "stdout": stdout}


def _folder_bytes(folder: Path) -> tuple[int, set[Path]]:
    files = {p for p in folder.rglob("*.parquet")} if folder.exists() else set()
    return sum(p.stat().st_size for p in files), files


def setup(root: Path, rows: int, csv: bool) -> None:
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SETUP), str(root), str(rows), "1" if csv else "0"],
        check=True,
    )


def run_loopline(root: Path, env: dict[str, str], log: bool, tag: str) -> dict[str, Any]:
    logs = root / ".loopline" / "artifacts" / "predictions"
    _, before = _folder_bytes(logs)
    target = root / f"out-loopline-{tag}.parquet"
    cmd = [sys.executable, "-m", "loopline", "predict", "bench@prod", "input.parquet"]
    cmd += [str(target), "--json"] + ([] if log else ["--no-log"])
    row = measured(cmd, cwd=root, env=env)
    _, after = _folder_bytes(logs)
    new = after - before
    row["log_bytes"] = sum(p.stat().st_size for p in new)
    row["summary"] = json.loads(row.pop("stdout"))
    row["output"] = target
    return row


def run_limit(root: Path) -> dict[str, Any]:
    target = root / "out-limit.parquet"
    (root / "limit.py").write_text(textwrap.dedent(LIMIT))
    cmd = [sys.executable, "limit.py", "model.pkl", "input.parquet", str(target)]
    row = measured(cmd, cwd=root)
    row["inner"] = float(row.pop("stdout").strip().splitlines()[-1])
    row["output"] = target
    return row


def run_mlflow(root: Path, venv: Path) -> dict[str, Any]:
    model_dir = root / "mlflow-model"
    if not model_dir.exists():
        (root / "mlflow_save.py").write_text(textwrap.dedent(MLFLOW_SAVE))
        subprocess.run(
            [str(venv / "bin" / "python"), "mlflow_save.py", "model.pkl", str(model_dir)],
            cwd=root,
            check=True,
            capture_output=True,
        )
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}"}
    target = root / "out-mlflow.json"
    cmd = [str(venv / "bin" / "mlflow"), "models", "predict", "-m", str(model_dir)]
    cmd += ["-i", "input.csv", "-t", "csv", "-o", str(target), "--env-manager", "local"]
    row = measured(cmd, cwd=root, env=env)
    row.pop("stdout")
    row["output"] = target
    return row


def compare(loopline_out: Path, limit_out: Path) -> dict[str, Any]:
    import numpy as np
    import pyarrow.parquet as pq

    a = pq.read_table(loopline_out)
    b = pq.read_table(limit_out)
    probas = [c for c in b.column_names if c.startswith("proba.")]
    pa_ = np.column_stack([a[c].to_numpy() for c in probas])
    pb = np.column_stack([b[c].to_numpy() for c in probas])
    labels_a = np.asarray(a["prediction"].to_pylist())
    labels_b = np.asarray(b["prediction"].to_pylist())
    return {
        "rows": a.num_rows == b.num_rows,
        "max_abs_diff": float(np.max(np.abs(pa_ - pb))) if len(pa_) else 0.0,
        "label_mismatches": int(np.sum(labels_a.astype(str) != labels_b.astype(str))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--keep", metavar="DIR", help="Work in DIR and keep it.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    venv = None if args.skip_mlflow else mlflow_venv()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="loopline-batch-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    load = [os.getloadavg()[0]]
    runs: dict[str, list[dict[str, Any]]] = {"loopline": [], "no-log": [], "limit": []}
    if venv is not None:
        runs["mlflow"] = []
    try:
        root = work / "project"
        if not (root / "input.parquet").exists():
            setup(root, args.rows, csv=venv is not None)
        input_bytes = (root / "input.parquet").stat().st_size
        for i in range(args.repeat):  # interleaved, so a busy moment hits every row
            runs["limit"].append(run_limit(root))
            runs["loopline"].append(run_loopline(root, env, True, str(i)))
            runs["no-log"].append(run_loopline(root, env, False, f"nolog{i}"))
            if venv is not None:
                runs["mlflow"].append(run_mlflow(root, venv))
            load.append(os.getloadavg()[0])
        check = compare(runs["loopline"][-1]["output"], runs["limit"][-1]["output"])
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    def med(name: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[name]))

    limit_wall = med("limit", "wall")
    rows_out = []
    labels = {
        "loopline": "loopline predict",
        "no-log": "loopline predict --no-log",
        "mlflow": "mlflow models predict",
        "limit": "limit (pandas + sklearn)",
    }
    for name, label in labels.items():
        if name not in runs:
            continue
        wall = med(name, "wall")
        rows_out.append(
            {
                "row": label,
                "wall_s": wall,
                "cpu_s": med(name, "cpu"),
                "rows_per_s": args.rows / wall,
                "peak_rss_mb": med(name, "rss_mb"),
                "vs_limit": wall / limit_wall,
            }
        )
    log_bytes = med("loopline", "log_bytes")
    log_s = med("loopline", "wall") - med("no-log", "wall")
    log_cpu = med("loopline", "cpu") - med("no-log", "cpu")
    summary = runs["loopline"][-1]["summary"]
    report = {
        "rows": args.rows,
        "repeat": args.repeat,
        "table": rows_out,
        "limit_inner_s": med("limit", "inner"),
        "input_mb": input_bytes / _MB,
        "log_mb": log_bytes / _MB,
        "log_vs_input": log_bytes / input_bytes,
        "log_s": log_s,
        "log_share": log_s / med("loopline", "wall"),
        "log_cpu_s": log_cpu,
        "log_cpu_share": log_cpu / med("loopline", "cpu"),
        "scoring_path": summary.get("path"),
        "check": check,
        "load": {"start": load[0], "max": max(load), "end": load[-1]},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"batch transform: {args.rows:,} rows x 20 features, medians of {args.repeat}")
    for col in ("", "wall s", "CPU s", "rows/s", "peak RSS MB", "vs limit"):
        t.add_column(col, justify="right" if col else "left")
    for r in rows_out:
        t.add_row(
            r["row"],
            f"{r['wall_s']:.2f}",
            f"{r['cpu_s']:.2f}",
            f"{r['rows_per_s']:,.0f}",
            f"{r['peak_rss_mb']:,.0f}",
            f"{r['vs_limit']:.2f}x",
        )
    console.print(t)
    console.print(
        f"limit inside its process (after interpreter start): {report['limit_inner_s']:.2f} s; "
        f"loopline scoring path: {report['scoring_path']}"
    )
    console.print(
        f"prediction log: {report['log_mb']:.1f} MB for a {report['input_mb']:.1f} MB input "
        f"({report['log_vs_input']:.2f}x), {log_s:.2f} s = {report['log_share']:.0%} of the wall, "
        f"{log_cpu:.2f} CPU s = {report['log_cpu_share']:.0%} of the CPU"
    )
    console.print(
        f"output vs limit: max |proba diff| {check['max_abs_diff']:.2g}, "
        f"{check['label_mismatches']} label mismatches"
    )
    console.print(
        f"load average: {load[0]:.2f} at start, {max(load):.2f} max, {load[-1]:.2f} at end"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
