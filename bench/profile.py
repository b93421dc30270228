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
  categorical column (the baseline; it computes fewer statistics).

::

    .venv/bin/python bench/profile.py              # 1,000,000 rows x 25 columns
    .venv/bin/python bench/profile.py --rows 100000
    .venv/bin/python bench/profile.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

NUMERIC = 20
LEVELS = (3, 7, 11, 15, 19)


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
    summary = {
        "rows": args.rows,
        "columns": NUMERIC + len(LEVELS),
        "cpus": os.cpu_count(),
        "results": results,
        "profile_vs_pandas": round(pandas_s / profile_s, 1) if profile_s else None,
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
