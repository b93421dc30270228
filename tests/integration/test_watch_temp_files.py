"""The watcher's temporary copies of inputs: swept when their watcher died, kept while it
lives, and never leaking a file descriptor."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopline.store import tempfiles
from loopline.store.stores import Stores
from loopline.trigger.watch import TEMP_PREFIX, TEMP_SUFFIX, Watcher

DEAD_WATCHER = """
import os, sys
from loopline.store import tempfiles
fd, name = tempfiles.create(sys.argv[1], sys.argv[2], sys.argv[3], mode=0o600)
os.write(fd, b"a copy of an input, half written")
print(name)
os._exit(0)
"""


def _watch_fds() -> list[str]:
    """Open descriptors of this process on watcher temporary files."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if TEMP_PREFIX in target:
            found.append(target)
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_the_watcher_sweeps_dead_watchers_temporary_files_and_leaks_none(
    sqlite_stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegression

    from loopline.registry import Registry

    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))
    dead = Path(
        subprocess.run(
            [sys.executable, "-c", DEAD_WATCHER, str(temp_dir), TEMP_PREFIX, TEMP_SUFFIX],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
    )
    live_fd, live = tempfiles.create(temp_dir, TEMP_PREFIX, TEMP_SUFFIX)  # this process's
    os.close(live_fd)
    old_legacy = temp_dir / f"{TEMP_PREFIX}k3j_9x2a{TEMP_SUFFIX}"  # a mkstemp name
    old_legacy.write_bytes(b"x")
    then = time.time() - tempfiles.DEFAULT_GRACE_S - 60
    os.utime(old_legacy, (then, then))
    young_legacy = temp_dir / f"{TEMP_PREFIX}p0q1r2s3{TEMP_SUFFIX}"
    young_legacy.write_bytes(b"x")
    unrelated = temp_dir / "someone-else.tmp"
    unrelated.write_bytes(b"x")

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x1": rng.normal(size=60), "x2": rng.normal(size=60)})
    reg = Registry(sqlite_stores)
    mv = reg.register("m", LogisticRegression().fit(X, (X["x1"] > 0).astype(int)), sample=X)
    reg.set_alias("m", "prod", mv.version)
    src, dest = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(4):
        X.iloc[: 10 + i].to_csv(src / f"f{i}.csv", index=False)

    watcher = Watcher(
        sqlite_stores, str(src), "m@prod", str(dest), settle_s=0, log_predictions=False
    )
    try:
        outcomes = watcher.run_once()
    finally:
        watcher.close()
    assert [(o.key, o.status) for o in outcomes] == [(f"f{i}.csv", "done") for i in range(4)]
    assert _watch_fds() == []  # each temporary copy was closed, not only unlinked
    assert not dead.exists()
    assert not old_legacy.exists()
    assert sorted(p.name for p in temp_dir.iterdir()) == sorted(
        [Path(live).name, young_legacy.name, unrelated.name]
    )
