"""``loopline run`` as a user runs it: caching, ``--describe``, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e.cli import init, one_line_error
from e2e.cli import run as loopline

TOY = """
import pandas as pd
from loopline.pipeline import Pipeline, StepContext, step

@step
def make_data(n_rows: int = 1_000, seed: int = 0) -> pd.DataFrame:
    half = n_rows // 2
    return pd.DataFrame({"plan": ["basic", "pro"] * half, "churned": [True, False] * half})

@step
def churn_by_plan(make_data: pd.DataFrame, ctx: StepContext) -> dict[str, float]:
    rates = make_data.groupby("plan")["churned"].mean()
    ctx.note(f"{len(rates)} plans")
    return {str(k): float(v) for k, v in rates.items()}

pipeline = Pipeline("toy", [make_data, churn_by_plan])
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = init(tmp_path)
    (root / "pipelines" / "toy.py").write_text(TOY)
    return root


def test_a_pipeline_runs_then_hits_the_cache(project: Path) -> None:
    first = json.loads(
        loopline("run", "pipelines/toy.py", "-p", "n_rows=500", "--json", cwd=project).stdout
    )
    assert first["status"] == "finished"
    assert [s["status"] for s in first["steps"]] == ["done", "done"]
    assert first["steps"][1]["notes"] == ["2 plans"]
    second = json.loads(
        loopline("run", "pipelines/toy.py", "-p", "n_rows=500", "--json", cwd=project).stdout
    )
    assert [s["status"] for s in second["steps"]] == ["cached", "cached"]
    live = loopline("run", "pipelines/toy.py", "-p", "n_rows=600", cwd=project).stdout
    assert "churn_by_plan: 2 plans" in live  # the notes of the steps that ran
    cached = loopline("run", "pipelines/toy.py", "-p", "n_rows=600", cwd=project).stdout
    assert "cached" in cached
    assert "2 plans" not in cached  # nothing ran, nothing noted

    runs = json.loads(loopline("runs", "ls", "--json", cwd=project).stdout)
    assert any(r["name"] == "toy" for r in runs)


def test_describe_lists_the_examples_steps_and_params(project: Path) -> None:
    for target in ("pipelines/example.py", "example:credit_risk"):
        out = json.loads(loopline("run", target, "--describe", "--json", cwd=project).stdout)
        assert out["pipeline"] == "credit_risk"
        steps = [s["step"] for s in out["steps"]]
        assert steps[0] == "applications"
        assert steps[-1] == "register"
        assert {"tuned", "baseline", "evaluation"} <= set(steps)
        assert out["params"] == {
            "n_rows": 5000,
            "n_trials": 12,
            "seed": 0,
            "data": "",
            "promote": True,
            "strict_categories": False,
        }


def test_bad_params_and_missing_files_are_one_line_errors(project: Path) -> None:
    bad = loopline("run", "pipelines/toy.py", "-p", "n_rows=lots", cwd=project, code=2)
    assert "expects int, got 'lots'" in one_line_error(bad)
    assert bad.stdout == ""
    missing = loopline("run", "nope.py", cwd=project, code=1)
    line = one_line_error(missing)
    assert "No pipeline file" in line
    assert "example:credit_risk" in line
    unknown = loopline("run", "pipelines/toy.py", "-p", "n_row=1", cwd=project, code=2)
    assert "has no parameter 'n_row' (did you mean 'n_rows'?)" in one_line_error(unknown)
    named = loopline("run", "pipelines/toy.py:tyo", cwd=project, code=1)
    assert "did you mean 'toy'?" in one_line_error(named)
    usage = loopline("run", "pipelines/toy.py", "-p", "n_rows", cwd=project, code=2)
    assert "expected KEY=VALUE" in one_line_error(usage)
