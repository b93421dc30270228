"""A watcher process killed with SIGKILL mid-run and restarted scores each file exactly once."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from e2e.cli import clean_env, command, init
from loopline.config import settings_for
from loopline.registry import Registry
from loopline.store.stores import Stores
from loopline.trigger.tables import trigger_files

N_FILES = 6
ROWS = 2000


def test_a_killed_watcher_resumes_without_rescoring_or_skipping(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    project = init(tmp_path, "proj")
    env = clean_env()
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x1": rng.normal(size=100), "x2": rng.normal(size=100)})
    y = (X["x1"] > 0).astype(int)
    settings = settings_for(project, environ=env)
    with Stores.open(settings) as stores:
        reg = Registry(stores)
        mv = reg.register("m", LogisticRegression().fit(X, y), sample=X)
        reg.set_alias("m", "prod", mv.version)
    src, dest = project / "in", project / "out"
    src.mkdir()
    for i in range(N_FILES):
        n = ROWS + i
        frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
        frame.to_csv(src / f"f{i}.csv", index=False)
    args = ["watch", "in", "--model", "m@prod", "--out", "out", "--settle", "0", "--poll", "0.1"]
    args += ["--chunk-rows", "100"]

    first = subprocess.Popen(
        command(*args),
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(p.suffix == ".parquet" for p in dest.glob("*")):
                break
            time.sleep(0.02)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)

    second = subprocess.run(
        command(*args, "--once", "--json"),
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 0, second.stderr

    with Stores.open(settings) as stores, stores.db.read() as conn:
        rows = conn.execute(sa.select(trigger_files).order_by(trigger_files.c.key)).all()
    assert [r.key for r in rows] == [f"f{i}.csv" for i in range(N_FILES)]
    assert {r.status for r in rows} == {"done"}
    assert all(r.attempts <= 2 for r in rows)
    outputs = sorted(p.name for p in dest.glob("*.parquet"))
    assert outputs == sorted(r.output_key for r in rows)  # one output per file, no extras
    for i, row in enumerate(rows):
        assert row.rows_scored in (ROWS + i, None)  # None: recovered, not scored again
        assert len(pd.read_parquet(dest / row.output_key)) == ROWS + i
    assert not [p for p in dest.rglob("*") if p.is_file() and ".tmp" in p.parts]
    recovered = [o for o in json.loads(second.stdout) if o["status"] == "recovered"]
    assert all(o["output_key"] in outputs for o in recovered)
