"""``loopline keys`` and ``loopline feedback import`` as a user runs them, and ``loopline
serve`` refusing an exposed address without auth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

Project = Any


def run(project: Project, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPLINE_")}
    env.update(NO_COLOR="1", COLUMNS="200")
    proc = subprocess.run(
        [sys.executable, "-m", "loopline", *args],
        cwd=project.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def test_keys_create_ls_revoke(project: Project) -> None:
    created = json.loads(
        run(project, "keys", "create", "--role", "read", "--name", "cli", "--json").stdout
    )
    assert created["key"].startswith(f"ll_{created['key_id']}_")
    listed = json.loads(run(project, "keys", "ls", "--json").stdout)
    assert created["key_id"] in [k["key_id"] for k in listed]
    assert all("key" not in k for k in listed)  # never shown again
    run(project, "keys", "revoke", created["key_id"])
    listed = json.loads(run(project, "keys", "ls", "--all", "--json").stdout)
    assert next(k for k in listed if k["key_id"] == created["key_id"])["active"] is False
    bad = run(project, "keys", "revoke", "ffffffffffff", check=False)
    assert bad.returncode == 1
    assert "No API key" in bad.stderr


def test_feedback_import(project: Project, tmp_path: Path) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,row,label\ncli-a,0,1\ncli-a,1,0\n,0,1\n")
    out = json.loads(run(project, "feedback", "import", str(labels), "--json").stdout)
    assert (out["unknown"], out["invalid"]) == (2, 1)
    again = json.loads(run(project, "feedback", "import", str(labels), "--json").stdout)
    assert again["duplicate"] == 2


def test_serve_refuses_an_exposed_address_without_auth(project: Project) -> None:
    proc = run(project, "serve", "churn@prod", "--host", "0.0.0.0", check=False)
    assert proc.returncode == 2  # a configuration error
    assert "without authentication" in proc.stderr
    missing = run(project, "serve", "churn@nope", check=False)
    assert missing.returncode == 1
    assert "no alias 'nope'" in missing.stderr
