"""CLI start-up time: ``loopline --help`` and ``--version`` beside bare ``python -c pass``.

    python bench/cli_start.py [--runs 20] [--json]

Prints the median wall time of each over the runs, measured in the same invocation, and
how far loopline is above bare Python (the target: within 0.15 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_OVERHEAD_S = 0.15


def loopline_exe() -> list[str]:
    exe = Path(sys.executable).parent / "loopline"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("loopline")
    return [found] if found else [sys.executable, "-m", "loopline"]


def median_time(cmd: list[str], runs: int) -> float:
    times = []
    env = {**os.environ, "NO_COLOR": "1"}
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "loopline --help": [*loopline_exe(), "--help"],
        "loopline --version": [*loopline_exe(), "--version"],
    }
    for cmd in cases.values():  # warm the OS file cache once
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    results = {name: median_time(cmd, args.runs) for name, cmd in cases.items()}
    base = results["python -c pass"]
    if args.json:
        print(
            json.dumps(
                {
                    "runs": args.runs,
                    "median_s": results,
                    "overhead_s": {k: v - base for k, v in results.items()},
                    "target_overhead_s": TARGET_OVERHEAD_S,
                },
                indent=2,
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"CLI start, median of {args.runs} runs", title_justify="left")
    for col in ("command", "median", "over bare python", f"target ≤ {TARGET_OVERHEAD_S:.2f} s"):
        table.add_column(col, justify="right" if col != "command" else "left")
    for name, value in results.items():
        over = value - base
        verdict = (
            "" if name.startswith("python") else ("met" if over <= TARGET_OVERHEAD_S else "MISSED")
        )
        table.add_row(name, f"{value * 1000:.0f} ms", f"{over * 1000:+.0f} ms", verdict)
    Console().print(table)


if __name__ == "__main__":
    main()
