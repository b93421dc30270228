"""Four processes add to datasets at once: the same content makes one version, and
different contents get distinct, gapless version numbers (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import sqlalchemy as sa

from loopline.store.db import migrate
from loopline.store.db.engine import Database

WORKERS = 4

# Each worker imports everything, says "ready", waits for "go" on stdin (so all start
# adding together), then adds the same frame to "same" and its own frame to "different".
ADDER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import pandas as pd
    from loopline.config import Settings
    from loopline.data import Datasets
    from loopline.store.stores import Stores

    url, artifacts, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    root = Path(artifacts).parent
    settings = Settings(
        project_dir=root, store_dir=root, metadata_url=url, artifacts_url=artifacts
    )
    with Stores.open(settings) as stores:
        ds = Datasets(stores)
        ds.list()  # connect before the start line
        print("ready", flush=True)
        sys.stdin.readline()
        same = ds.add("same", pd.DataFrame({"x": range(1000)}))
        different = ds.add("different", pd.DataFrame({"x": range(1000), "seed": seed}))
    print(json.dumps([
        {"version": v.version, "created": v.created, "digest": v.digest}
        for v in (same, different)
    ]))
    """
)


def test_concurrent_adds(metadata_url: str, tmp_path: Path) -> None:
    with Database(metadata_url, create=True) as db:
        migrate.upgrade(db)
    artifacts = tmp_path / "artifacts"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ADDER, metadata_url, str(artifacts), str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(WORKERS)
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
    for p in procs:  # release them all before waiting for any
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * WORKERS, [err for _, err in outputs]
    results = [json.loads(out) for out, _ in outputs]

    same = [r[0] for r in results]
    assert {r["version"] for r in same} == {1}
    assert len({r["digest"] for r in same}) == 1
    assert sum(r["created"] for r in same) == 1

    different = [r[1] for r in results]
    assert sorted(r["version"] for r in different) == list(range(1, WORKERS + 1))
    assert all(r["created"] for r in different)

    with Database(metadata_url) as db, db.read() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT d.name, d.current_version, count(v.id) FROM ll_datasets d "
                "JOIN ll_dataset_versions v ON v.dataset_id = d.id "
                "GROUP BY d.name, d.current_version ORDER BY d.name"
            )
        ).all()
    assert [tuple(r) for r in rows] == [("different", WORKERS, WORKERS), ("same", 1, 1)]
