"""The closed loop, unattended, over seeded scenarios; drift detection beside Evidently's.

Each scenario gets a fresh project (the credit-risk champion trained from a seed), a
``loopline serve`` subprocess, the loop controller, and seeded traffic through the real
HTTP endpoint (labels come back for part of it, a few seconds late). Windows are 4 s
here; the code paths are those of 5-minute windows. For each scenario it reports:

- detection: monitor windows from the change to the first alarm (target: within 2);
- the outcome and how long after the change it came (promoted, rolled back, refused);
- what serves at the end (100% on one version: unattended recovery);
- failed requests over the whole scenario, and within 5 s of every traffic move;
- bad promotions (a promotion where the scenario's challenger is bad) and bad
  challengers rolled back or refused.

Beside it, the same logged windows go through Evidently's ``DataDriftPreset`` (its
default dataset-drift rule: half the columns drifted), against the same training
reference, in Evidently's own venv: when it would have flagged, and how often it
flags windows where nothing changed.

    python bench/loop.py                          # every scenario, with Evidently
    python bench/loop.py --scenarios drift steady --skip-evidently
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drift import DEFAULT_VENV, ensure_evidently, run

EVIDENTLY_WINDOWS = """
import sys, json, glob
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
folder = sys.argv[1]
reference = pd.read_parquet(folder + "/reference.parquet")
flags = []
for path in sorted(glob.glob(folder + "/window-*.parquet")):
    current = pd.read_parquet(path)
    if len(current) < 30:
        flags.append(None)
        continue
    result = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    share = None
    for metric in result.dict()["metrics"]:
        config = metric.get("config") or {}
        if str(config.get("type", "")).endswith("DriftedColumnsCount"):
            value = metric.get("value")
            share = value.get("share") if isinstance(value, dict) else None
    flags.append(None if share is None else bool(share >= 0.5))
print(json.dumps({"flags": flags}))
"""


def export_windows(root: Path, outcome: Any, folder: Path) -> list[tuple[float, float]]:
    """The scenario's logged inputs per monitor window, and the champion's training rows,
    as Parquet files for the Evidently child."""
    from datetime import UTC, datetime

    from loopline.config import settings_for
    from loopline.data import Datasets
    from loopline.monitor.predictions import inputs_frame, read_predictions
    from loopline.store.stores import Stores

    folder.mkdir(parents=True, exist_ok=True)
    with Stores.open(settings_for(root, environ={})) as stores:
        reference = Datasets(stores).load("credit_applications", 1).drop(columns=["default"])
        reference.to_parquet(folder / "reference.parquet")
        windows = sorted(set(outcome.windows))
        for i, (start, end) in enumerate(windows):
            table = read_predictions(
                stores.objects,
                model="credit_risk",
                start=datetime.fromtimestamp(start, UTC),
                end=datetime.fromtimestamp(end, UTC),
            )
            if "role" in table.column_names:
                import pyarrow.compute as pc

                table = table.filter(pc.equal(table["role"], "primary"))
            frame = inputs_frame(table) if table.num_rows else reference.head(0)
            frame = frame.reindex(columns=reference.columns)
            frame.to_parquet(folder / f"window-{i:04d}.parquet")
    return windows


def play(name: str, evidently: str | None, base: Path) -> dict[str, Any]:
    from loopline.project.cycle import SCENARIOS, Cycle, CycleSettings, Hooks, prepare_project

    cfg = CycleSettings()
    scenario = SCENARIOS[name]
    root = base / name
    hooks = Hooks()
    try:
        prepare_project(root, cfg, hooks.url)
        with Cycle(root, cfg, hooks) as cycle:
            outcome = cycle.play(scenario)
    finally:
        hooks.close()
    out = outcome.to_dict()
    out.pop("timeline")
    out["bad_challenger"] = scenario.expect in ("rolled_back", "refused")
    if evidently is not None:
        folder = base / f"{name}-evidently"
        windows = export_windows(root, outcome, folder)
        flags = run(evidently, EVIDENTLY_WINDOWS, folder, timeout=1800)["flags"]
        change = outcome.change_at
        before = [
            f for (s, _), f in zip(windows, flags, strict=True) if change is None or s < change
        ]
        after = [
            (i, f)
            for i, ((s, e), f) in enumerate(zip(windows, flags, strict=True))
            if change is not None and e > change
        ]
        first = next((k for k, (_, f) in enumerate(after) if f), None)
        out["evidently"] = {
            "windows": len(flags),
            "false_alarms": sum(1 for f in before if f),
            "quiet_windows": sum(1 for f in before if f is not None),
            "detection_windows": None if first is None else first + 1,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    from loopline.project.cycle import SCENARIOS

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--evidently-venv", default=str(DEFAULT_VENV))
    parser.add_argument("--json", metavar="FILE", help="Also write the results as JSON.")
    args = parser.parse_args(argv)
    evidently = None if args.skip_evidently else ensure_evidently(Path(args.evidently_venv))
    results = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="loopline-bench-loop-") as tmp:
        for name in args.scenarios:
            print(f"scenario {name} ...", file=sys.stderr, flush=True)
            results.append(play(name, evidently, Path(tmp)))
    total = time.perf_counter() - started
    print()
    head = (
        f"{'scenario':<16}{'expected':<13}{'outcome':<13}{'detect':>8}{'to outcome':>12}"
        f"{'serving':>16}{'failed':>8}{'at moves':>9}{'moves':>7}{'hooks':>7}"
    )
    if evidently is not None:
        head += f"{'Evidently detect':>18}{'false alarms':>14}"
    print(head)
    print("-" * len(head))
    for r in results:
        detect = "-" if r["detection_windows"] is None else f"{r['detection_windows']} win"
        outcome_s = "-" if r["outcome_s"] is None else f"{r['outcome_s']:.0f} s"
        serving = r["serving"] + ("" if r["split"] is None else "+split")
        line = (
            f"{r['scenario']:<16}{r['expect'] or 'nothing':<13}{r['final'] or 'nothing':<13}"
            f"{detect:>8}{outcome_s:>12}{serving:>16}{r['failed_requests']:>8}"
            f"{r['failed_during_moves']:>9}{r['moves']:>7}{r['webhooks']:>7}"
        )
        if "evidently" in r:
            e = r["evidently"]
            ed = "-" if e["detection_windows"] is None else f"{e['detection_windows']} win"
            line += f"{ed:>18}{e['false_alarms']:>8} of {e['quiet_windows']:<3}"
        print(line)
    changed = [r for r in results if r["expect"] and r["scenario"] != "bad_challenger"]
    detected = [r for r in changed if r["detection_windows"] is not None]
    within = [r for r in detected if r["detection_windows"] <= 2]
    bad = [r for r in results if r["bad_challenger"]]
    bad_promotions = sum(1 for r in bad if r["final"] == "promoted")
    print()
    print(f"detected within 2 windows: {len(within)} of {len(changed)} changes")
    print(f"outcome as expected: {sum(r['ok'] for r in results)} of {len(results)} scenarios")
    print(
        f"bad promotions: {bad_promotions}; bad challengers stopped: "
        f"{sum(1 for r in bad if r['final'] in ('rolled_back', 'refused'))} of {len(bad)}"
    )
    print(
        f"failed requests: {sum(r['failed_requests'] for r in results)} in "
        f"{sum(r['requests'] for r in results):,} requests; during the "
        f"{sum(r['moves'] for r in results)} traffic moves: "
        f"{sum(r['failed_during_moves'] for r in results)}"
    )
    print(f"total {total:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
