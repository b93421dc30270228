"""``loopline models ...`` as a user runs it: a subprocess in a project made by ``init``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from e2e.cli import init, python
from e2e.cli import run as ll

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


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    project = init(root, "proj")
    python(REGISTER, cwd=project)
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
    assert set(shown["manifest"]["files"]) == {"model.skops", "model.onnx"}  # ONNX by default
    human = ll("models", "show", "churn", cwd=project).stdout
    for text in ("churn/3", "lineage", "run-2", "model.skops", "tenure", "signature"):
        assert text in human, human
    assert "serving: serves with ONNX Runtime, parity " in human


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
    missing = ll("models", "show", "churn@staging", cwd=project, code=1)
    assert missing.stderr.strip() == (
        "error: Model 'churn' has no alias 'staging'; its aliases are production; "
        "set one with: loopline models alias churn 3 staging"
    )
    typo = ll("models", "show", "churn@prod", cwd=project, code=1)
    assert "did you mean churn@production?" in typo.stderr
    invalid = ll("models", "show", "churn@no way", cwd=project, code=2)  # bad usage
    assert "Invalid alias 'no way'" in invalid.stderr
    unknown = ll("models", "show", "nope", cwd=project, code=1)
    assert "loopline models ls" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    force = ll("models", "promote", "churn", "3", "--force", cwd=project, code=2)
    assert "--reason" in force.stderr
