"""``loopline models ...`` as a user runs it: a subprocess in a project made by ``init``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REGISTER = textwrap.dedent(
    """
    import numpy as np, pandas as pd
    from sklearn.linear_model import LogisticRegression
    from loopline.config import load_settings
    from loopline.registry import Registry
    from loopline.store.stores import Stores

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"tenure": rng.integers(0, 60, 80), "plan": rng.choice(["a", "b"], 80)})
    X["plan_b"] = (X["plan"] == "b").astype(float)
    X = X.drop(columns=["plan"])
    y = (X["tenure"] > 30).astype(int)
    with Stores.open(load_settings()) as stores:
        reg = Registry(stores)
        for i in range(3):
            reg.register(
                "churn",
                LogisticRegression(C=1.0 + i).fit(X, y),
                sample=X,
                run_id=f"run-{i}",
                datasets=[{"name": "customers", "version": 1, "digest": "ab" * 32}],
                metrics={"f1": 0.8 + i / 100},
                code_commit="abc1234",
                description="churn model",
            )
    """
)


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLINE_", "AWS_"))}
    env.update({"NO_COLOR": "1", "COLUMNS": "200"})
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def ll(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("-m", "loopline", *args, cwd=cwd, check=check)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    ll("init", "proj", cwd=root)
    project = root / "proj"
    run("-c", REGISTER, cwd=project)
    return project


def test_ls_and_show(project: Path) -> None:
    listing = json.loads(ll("models", "ls", "--json", cwd=project).stdout)
    assert [(m["name"], m["latest_version"]) for m in listing] == [("churn", 3)]
    table = ll("models", "ls", cwd=project).stdout
    assert "churn" in table
    assert "latest" in table

    shown = json.loads(ll("models", "show", "churn/2", "--json", cwd=project).stdout)
    assert shown["ref"] == "churn/2"
    assert shown["run_id"] == "run-1"
    assert shown["code_commit"] == "abc1234"
    assert shown["datasets"][0]["name"] == "customers"
    assert shown["metrics"] == {"f1": 0.81}
    assert shown["versions"] == [1, 2, 3]
    assert set(shown["manifest"]["files"]) == {"model.skops"}
    human = ll("models", "show", "churn", cwd=project).stdout
    for text in ("churn/3", "lineage", "run-2", "model.skops", "tenure", "signature"):
        assert text in human, human


def test_alias_promote_rollback_and_history(project: Path) -> None:
    ll("models", "alias", "churn", "1", "production", "--reason", "first", cwd=project)
    moved = json.loads(
        ll("models", "promote", "churn", "2", "--alias", "production", "--json", cwd=project).stdout
    )
    assert (moved["from_version"], moved["to_version"], moved["action"]) == (1, 2, "promote")
    out = ll("models", "rollback", "churn", "--alias", "production", cwd=project).stdout
    assert "churn@production: version 2 → version 1" in out

    shown = json.loads(ll("models", "show", "churn@production", "--json", cwd=project).stdout)
    assert shown["version"] == 1
    assert shown["aliases"] == ["production"]
    moves = [(m["action"], m["from_version"], m["to_version"]) for m in shown["alias_history"]]
    assert moves == [("set", None, 1), ("promote", 1, 2), ("rollback", 2, 1)]
    human = ll("models", "show", "churn@production", cwd=project).stdout
    assert "alias history" in human
    assert "rollback" in human


def test_errors_are_one_line_with_the_next_command(project: Path) -> None:
    missing = ll("models", "show", "churn@staging", cwd=project, check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "error: Model 'churn' has no alias 'staging'; "
        "set one with: loopline models alias churn 3 staging"
    )
    unknown = ll("models", "show", "nope", cwd=project, check=False)
    assert unknown.returncode == 1
    assert "loopline models ls" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    force = ll("models", "promote", "churn", "3", "--force", cwd=project, check=False)
    assert force.returncode == 2
    assert "--reason" in force.stderr
