"""Drift detection: loopline against Evidently's DataDriftPreset and a plain numpy/scipy
computation, on the same data in the same run; then ``monitor run`` over a logged window.

Data (seeded, written once as .npy files every tool reads): reference and current, each N
rows x 25 columns: num_0..num_19 standard normal, cat_0..cat_4 with 3/7/11/15/19 levels;
the current side has num_0..num_4 shifted by +0.5 sd. Each tool runs in a process of its
own (Evidently in its own venv, outside the repository, created on first use with
``pandas<3``: Evidently 0.7 does not import with pandas 3), and reports its compute time
(imports and data loading excluded), its peak memory above what the loaded data took, and
the columns it flags.

    python bench/drift.py                       # 100,000 and 1,000,000 rows
    python bench/drift.py --rows 100000 --skip-evidently
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

EVIDENTLY_VERSION = "0.7.23"
DEFAULT_VENV = Path.home() / ".cache" / "loopline-bench" / "evidently"
LEVELS = (3, 7, 11, 15, 19)
SHIFTED = [f"num_{i}" for i in range(5)]

MAKE_DATA = """
import sys, numpy as np
from pathlib import Path
n, out = int(sys.argv[1]), Path(sys.argv[2])
for side, seed in (("reference", 1), ("current", 2)):
    rng = np.random.default_rng(seed)
    num = rng.normal(0.0, 1.0, (n, 20))
    if side == "current":
        num[:, :5] += 0.5
    np.save(out / f"{side}_num.npy", num)
    cats = np.column_stack([rng.integers(0, k, n) for k in (3, 7, 11, 15, 19)])
    np.save(out / f"{side}_cat.npy", cats.astype(np.int8))
"""

# Each child prints one JSON line: seconds, peak_mb (above the loaded data), drifted.
PEAK = """
def peak_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")
def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")
"""

LOAD = """
import numpy as np
from pathlib import Path
d = Path(sys.argv[1])
data = {
    s: (np.load(d / f"{s}_num.npy"), np.load(d / f"{s}_cat.npy"))
    for s in ("reference", "current")
}
"""

LOOPLINE = (
    "import sys, json, time\n"
    + PEAK
    + LOAD
    + """
import pyarrow as pa
from concurrent.futures import ThreadPoolExecutor
from loopline.monitor.drift import feature_drift
from loopline.monitor.sketches import build_categorical_reference, build_numeric_reference
import scipy.special  # imported up front like the other tools' libraries
def columns(side):
    num, cat = data[side]
    out = {f"num_{i}": pa.array(num[:, i]) for i in range(num.shape[1])}
    for j in range(cat.shape[1]):
        out[f"cat_{j}"] = pa.array(cat[:, j].astype(str))
    return out
ref, cur = columns("reference"), columns("current")
base = rss_mb()
start = time.perf_counter()
def one(name):
    if name.startswith("num"):
        r = build_numeric_reference(ref[name])
    else:
        r = build_categorical_reference(ref[name])
    s = r.new_sketch()
    s.update(cur[name])
    return feature_drift(name, r, s)
with ThreadPoolExecutor(2) as ex:
    results = list(ex.map(one, list(ref)))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb() - base,
                  "drifted": sorted(r.feature for r in results if r.drifted)}))
"""
)

PLAIN = (
    "import sys, json, time\n"
    + PEAK
    + LOAD
    + """
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance
base = rss_mb()
start = time.perf_counter()
drifted = []
rn, rc = data["reference"]
cn, cc = data["current"]
for i in range(rn.shape[1]):
    if wasserstein_distance(rn[:, i], cn[:, i]) / np.std(rn[:, i]) > 0.1:
        drifted.append(f"num_{i}")
for j in range(rc.shape[1]):
    k = int(max(rc[:, j].max(), cc[:, j].max())) + 1
    p = np.bincount(rc[:, j], minlength=k) / len(rc)
    q = np.bincount(cc[:, j], minlength=k) / len(cc)
    if jensenshannon(p, q) > 0.1:
        drifted.append(f"cat_{j}")
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb() - base, "drifted": sorted(drifted)}))
"""
)

EVIDENTLY = (
    "import sys, json, time\n"
    + PEAK
    + LOAD
    + """
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
def frame(side):
    num, cat = data[side]
    df = pd.DataFrame(num, columns=[f"num_{i}" for i in range(num.shape[1])])
    for j in range(cat.shape[1]):
        df[f"cat_{j}"] = pd.Series(cat[:, j].astype(str))
    return df
ref, cur = frame("reference"), frame("current")
base = rss_mb()
start = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
result = snapshot.dict()
seconds = time.perf_counter() - start
drifted = []
for metric in result["metrics"]:
    config = metric.get("config") or {}
    if str(config.get("type", "")).endswith("ValueDrift"):
        value, threshold = metric.get("value"), float(config.get("threshold") or 0.1)
        method = str(config.get("method", "")).lower()
        p_value = "p_value" in method or "test" in method  # small samples: a p-value
        if value is not None and ((value < threshold) if p_value else (value >= threshold)):
            drifted.append(config["column"])
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb() - base, "drifted": sorted(drifted)}))
"""
)


def run(python: str, code: str, *args: object, timeout: float = 3600) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    proc = subprocess.run(
        [python, "-c", textwrap.dedent(code), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed ({python}):\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def ensure_evidently(venv: Path) -> str:
    """The python of a venv holding Evidently, created (outside the repository) if missing."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import evidently, sys; sys.stdout.write(evidently.__version__)"]
    if python.exists():
        found = subprocess.run(check, capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == EVIDENTLY_VERSION:
            return str(python)
    print(f"creating the Evidently {EVIDENTLY_VERSION} venv in {venv} ...", file=sys.stderr)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, f"evidently=={EVIDENTLY_VERSION}", "pandas<3"], check=True)
    subprocess.run(check, check=True, capture_output=True)
    return str(python)


def monitor_window(rows: int) -> dict[str, Any]:
    """``run_monitor`` over ``rows`` logged predictions of a registered model (the
    reference built beforehand, as registration does): read + every statistic + store."""
    code = """
import sys, json, time, tempfile
import numpy as np
from pathlib import Path
sys.path.insert(0, str(Path(sys.argv[2]) / "tests"))
from conftest import open_stores
from unit.monitor.support import make_frame, make_trained
from loopline.monitor.reference import model_reference
from loopline.monitor.runner import run_monitor
from loopline.monitor.windows import make_window
from loopline.registry import Registry
rows = int(sys.argv[1])
root = Path(tempfile.mkdtemp(prefix="loopline-bench-monitor-"))
with open_stores(root, f"sqlite:///{root / 'meta.db'}") as stores:
    trained = make_trained(stores, n=50_000)
    t0 = time.perf_counter()
    model_reference(stores, Registry(stores).get("churn", trained.version))
    reference_s = time.perf_counter() - t0
    for i in range(0, rows, 100_000):
        frame = make_frame(min(100_000, rows - i), seed=1000 + i, shift=0.5)
        trained.log(frame, prefix=f"b{i}")
    t0 = time.perf_counter()
    report = run_monitor(stores, "churn@production", make_window(window="1h"))
    seconds = time.perf_counter() - t0
    (group,) = report.groups
    print(json.dumps({"seconds": seconds, "reference_s": reference_s, "rows": report.rows,
                      "files": report.files, "points": len(group.points),
                      "drifted": sorted(d.feature for d in group.drift if d.drifted)}))
"""
    return run(sys.executable, code, rows, Path(__file__).resolve().parents[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--monitor-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--evidently-venv", default=str(DEFAULT_VENV))
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    args = parser.parse_args(argv)

    evidently = (
        None if args.skip_evidently else ensure_evidently(Path(args.evidently_venv).expanduser())
    )
    results: list[dict[str, Any]] = []
    for n in args.rows:
        with tempfile.TemporaryDirectory(prefix="loopline-bench-drift-") as tmp:
            subprocess.run([sys.executable, "-c", MAKE_DATA, str(n), tmp], check=True)
            row: dict[str, Any] = {"rows": n}
            row["loopline"] = run(sys.executable, LOOPLINE, tmp)
            row["numpy/scipy"] = run(sys.executable, PLAIN, tmp)
            if evidently is not None:
                row["evidently"] = run(evidently, EVIDENTLY, tmp)
            results.append(row)
    window = monitor_window(args.monitor_rows) if args.monitor_rows else None
    if args.json:
        print(json.dumps({"drift": results, "monitor_run": window}, indent=2))
        return 0
    expected = SHIFTED
    print(
        f"\nDrift of {', '.join(str(r['rows']) for r in results)} rows x 25 columns "
        "(num_0..num_4 shifted by +0.5 sd); compute only, same data, same run"
    )
    header = f"{'rows':>10}  {'tool':<22}{'seconds':>9}{'peak MB':>9}{'x Evidently':>13}  flagged"
    print(header)
    print("-" * len(header))
    for r in results:
        ev = r.get("evidently", {}).get("seconds")
        for tool in ("loopline", "numpy/scipy", "evidently"):
            if tool not in r:
                continue
            m = r[tool]
            speed = f"{ev / m['seconds']:.1f}x" if ev else "-"
            flagged = (
                ", ".join(m["drifted"]) if m["drifted"] != expected else "exactly num_0..num_4"
            )
            line = f"{r['rows']:>10,}  {tool:<22}{m['seconds']:>9.2f}{m['peak_mb']:>9.0f}"
            print(f"{line}{speed:>13}  {flagged}")
    if window is not None:
        flagged = window["drifted"]
        print(
            f"\nloopline monitor run over {window['rows']:,} logged predictions "
            f"({window['files']} Parquet files): {window['seconds']:.2f} s "
            f"(read, every statistic, {window['points']} series rows stored); "
            f"reference built once in {window['reference_s']:.2f} s; flagged {', '.join(flagged)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
