"""Dataset profiling and adding at scale, against pandas' describe as a baseline.

Builds a seeded table of 20 numeric columns (normal) and 5 categorical columns (3, 7, 11,
15 and 19 levels), then times, in the same run:

- ``profile``: :func:`loopline.data.profile.compute_profile` on the canonical table
  (quantiles, histograms, category counts: what drift detection needs);
- ``add``: a full ``Datasets.add`` of the DataFrame into a fresh local project (conversion
  to Arrow, content hashing, profile, schema inference and validation, Parquet write to
  the content-addressed store, the database record);
- ``add again``: adding the same data again (hashing finds the version; nothing is stored);
- ``pandas describe``: ``DataFrame.describe(include='all')`` plus ``value_counts`` per
  categorical column (the baseline; it computes fewer statistics);
- ``data add peak memory``: ``loopline data add`` of a CSV file of ``--memory-rows`` rows
  (10 columns: integers, floats, text, booleans, dates) in a subprocess, its peak resident
  memory (``VmHWM``) less the peak of the same command adding a 10-row CSV (the same
  modules imported, the same stores opened), beside the CSV's size.

::

    .venv/bin/python bench/profile.py              # 1,000,000 rows x 25 columns; 5M-row CSV
    .venv/bin/python bench/profile.py --rows 100000 --memory-rows 500000
    .venv/bin/python bench/profile.py --memory-rows 0   # no memory measurement
    .venv/bin/python bench/profile.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NUMERIC = 20
LEVELS = (3, 7, 11, 15, 19)
MIB = 1024 * 1024


def make_frame(rows: int, seed: int = 0) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {
        f"x{i:02d}": rng.normal(loc=i, scale=1 + i / 10, size=rows) for i in range(NUMERIC)
    }
    for i, k in enumerate(LEVELS):
        levels = np.array([f"c{i}_level{j:02d}" for j in range(k)])
        data[f"cat{i}"] = levels[rng.integers(0, k, size=rows)]
    return pd.DataFrame(data)


def write_csv(path: Path, rows: int, seed: int = 0) -> int:
    """A CSV of customer-like rows (no quoted fields, as pandas writes them); its size."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    plans = np.array(["basic", "plus", "pro", "enterprise"])
    regions = np.array([f"region_{i:02d}" for i in range(12)])
    options = pacsv.WriteOptions(quoting_style="none")
    step = 500_000
    with pacsv.CSVWriter(str(path), _csv_schema(), write_options=options) as writer:
        for start in range(0, rows, step):
            n = min(step, rows - start)
            writer.write_table(
                pa.table(
                    {
                        "id": np.arange(start, start + n),
                        "tenure": rng.integers(1, 73, n),
                        "charges": rng.normal(70, 20, n).round(2),
                        "total": (rng.gamma(2.0, 800.0, n)).round(2),
                        "score": rng.random(n).round(6),
                        "plan": plans[rng.integers(0, len(plans), n)],
                        "region": regions[rng.integers(0, len(regions), n)],
                        "customer": np.char.add("C", rng.integers(0, 10**7, n).astype(str)),
                        "churned": rng.random(n) < 0.25,
                        "signup": (np.datetime64("2015-01-01") + rng.integers(0, 3650, n)).astype(
                            "datetime64[D]"
                        ),
                    },
                    schema=_csv_schema(),
                )
            )
    return path.stat().st_size


def _csv_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.int64()),
            ("tenure", pa.int64()),
            ("charges", pa.float64()),
            ("total", pa.float64()),
            ("score", pa.float64()),
            ("plan", pa.string()),
            ("region", pa.string()),
            ("customer", pa.string()),
            ("churned", pa.bool_()),
            ("signup", pa.date32()),
        ]
    )


# Runs the CLI in this process and, at exit, writes its peak resident memory (VmHWM, of
# this process alone) to the file named by the first argument. ``ru_maxrss`` of a child
# would not do: at exec, Linux folds the parent's peak into it.
_PEAK_CLI = """
import atexit, sys
from pathlib import Path
out = Path(sys.argv[1])
def peak():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            out.write_text(str(int(line.split()[1]) * 1024))
atexit.register(peak)
from loopline.cli.main import main
main(sys.argv[2:])
"""


def peak_rss(args: list[str], cwd: Path) -> int:
    """Peak resident memory (bytes) of ``loopline ARGS`` run in ``cwd`` (it must succeed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env["NO_COLOR"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peak"
        done = subprocess.run(
            [sys.executable, "-c", _PEAK_CLI, str(out), *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"loopline {' '.join(args)} failed with exit code {done.returncode}")
        return int(out.read_text())


def add_memory(rows: int) -> dict[str, Any]:
    """Peak memory of ``loopline data add`` of a CSV of ``rows`` rows, above a 10-row add."""
    from loopline.config import settings_for
    from loopline.store.db import migrate
    from loopline.store.db.engine import Database

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        (project / "loopline.toml").write_text("")
        migrate.upgrade(Database(settings_for(project, environ={}).metadata_url, create=True))
        small, big = Path(tmp) / "small.csv", Path(tmp) / "big.csv"
        write_csv(small, 10)
        size = write_csv(big, rows)
        baseline = peak_rss(["data", "add", "small", str(small)], project)
        start = time.perf_counter()
        peak = peak_rss(["data", "add", "big", str(big)], project)
        seconds = time.perf_counter() - start
    return {
        "rows": rows,
        "csv_bytes": size,
        "baseline_bytes": baseline,
        "peak_bytes": peak,
        "above_baseline_bytes": peak - baseline,
        "ratio": round((peak - baseline) / size, 2),
        "seconds": round(seconds, 1),
    }


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best = float("inf")
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    parser.add_argument(
        "--memory-rows",
        type=int,
        default=5_000_000,
        help="rows of the CSV whose `data add` peak memory is measured (default 5,000,000; "
        "0 skips it)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)

    import pyarrow as pa

    from loopline.config import settings_for
    from loopline.data import Datasets
    from loopline.data.content import normalise_table, table_digest
    from loopline.data.profile import compute_profile
    from loopline.store.db import migrate
    from loopline.store.db.engine import Database
    from loopline.store.stores import Stores

    frame = make_frame(args.rows)
    cats = [f"cat{i}" for i in range(len(LEVELS))]
    table, _ = normalise_table(pa.Table.from_pandas(frame, preserve_index=False))

    results: list[dict[str, Any]] = []

    def record(what: str, seconds: float, detail: str) -> None:
        results.append({"what": what, "seconds": round(seconds, 3), "detail": detail})

    t, digest = timed(lambda: table_digest(table), args.repeat)
    record("content digest", t, f"sha256 {digest[:12]} of all rows")
    t, profile = timed(lambda: compute_profile(table), args.repeat)
    record(
        "profile",
        t,
        f"{len(profile.columns)} columns: quantiles, histograms, top categories",
    )

    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(Path(tmp), environ={})
        migrate.upgrade(Database(settings.metadata_url, create=True))
        with Stores.open(settings) as stores:
            ds = Datasets(stores)
            start = time.perf_counter()
            version = ds.add("bench", frame)
            record(
                "add (new version)",
                time.perf_counter() - start,
                f"{version.ref}: {version.bytes / 1e6:.1f} MB Parquet",
            )
            start = time.perf_counter()
            again = ds.add("bench", frame)
            record(
                "add (same data again)",
                time.perf_counter() - start,
                f"{again.ref}, created={again.created}",
            )

    def baseline() -> Any:
        described = frame.describe(include="all")
        counts = [frame[c].value_counts() for c in cats]
        return described, counts

    t, _ = timed(baseline, args.repeat)
    record("pandas describe(include='all') + value_counts", t, "baseline")

    profile_s = next(r["seconds"] for r in results if r["what"] == "profile")
    pandas_s = results[-1]["seconds"]
    memory = add_memory(args.memory_rows) if args.memory_rows > 0 else None
    if memory is not None:
        record(
            "data add peak memory (CSV)",
            memory["seconds"],
            f"{memory['rows']:,} rows, CSV {memory['csv_bytes'] / MIB:,.0f} MiB: peak "
            f"{memory['above_baseline_bytes'] / MIB:,.0f} MiB above the baseline "
            f"({memory['ratio']}x the CSV; baseline {memory['baseline_bytes'] / MIB:,.0f} MiB)",
        )
    summary = {
        "rows": args.rows,
        "columns": NUMERIC + len(LEVELS),
        "cpus": os.cpu_count(),
        "results": results,
        "profile_vs_pandas": round(pandas_s / profile_s, 1) if profile_s else None,
        "add_memory": memory,
    }
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    out = Table(
        title=f"{args.rows:,} rows x {summary['columns']} columns "
        f"({NUMERIC} numeric, {len(LEVELS)} categorical), {os.cpu_count()} CPUs, "
        f"best of {args.repeat}",
        title_justify="left",
    )
    out.add_column("what")
    out.add_column("seconds", justify="right")
    out.add_column("detail")
    for r in results:
        out.add_row(r["what"], f"{r['seconds']:.3f}", r["detail"])
    console = Console()
    console.print(out)
    console.print(f"profile is {summary['profile_vs_pandas']}x faster than the pandas baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
