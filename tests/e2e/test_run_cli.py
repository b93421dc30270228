"""``loopline run`` on the example pipeline that ``loopline init`` writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def loopline(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPLINE_", "AWS_"))}
    env.update(NO_COLOR="1", COLUMNS="160")
    proc = subprocess.run(
        [sys.executable, "-m", "loopline", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def test_example_pipeline_runs_then_hits_the_cache(tmp_path: Path) -> None:
    loopline("init", "p", cwd=tmp_path)
    project = tmp_path / "p"
    first = json.loads(
        loopline("run", "pipelines/example.py", "-p", "n_rows=500", "--json", cwd=project).stdout
    )
    assert first["status"] == "finished"
    assert [s["status"] for s in first["steps"]] == ["done", "done"]
    second = json.loads(
        loopline("run", "pipelines/example.py", "-p", "n_rows=500", "--json", cwd=project).stdout
    )
    assert [s["status"] for s in second["steps"]] == ["cached", "cached"]
    live = loopline("run", "pipelines/example.py", "-p", "n_rows=500", cwd=project).stdout
    assert "churn_by_plan" in live
    assert "cached" in live

    runs = json.loads(loopline("runs", "ls", "--json", cwd=project).stdout)
    assert any(r["name"] == "example" for r in runs)


def test_describe_lists_steps_and_params(tmp_path: Path) -> None:
    loopline("init", "p", cwd=tmp_path)
    out = json.loads(
        loopline("run", "pipelines/example.py", "--describe", "--json", cwd=tmp_path / "p").stdout
    )
    assert [s["step"] for s in out["steps"]] == ["make_data", "churn_by_plan"]
    assert out["params"] == {"n_rows": 1000, "seed": 0}


def test_failing_step_exits_1_and_names_the_resume_command(tmp_path: Path) -> None:
    loopline("init", "p", cwd=tmp_path)
    project = tmp_path / "p"
    (project / "pipelines" / "broken.py").write_text(
        "from loopline.pipeline import Pipeline, step\n\n"
        "@step\ndef one() -> int:\n    return 1\n\n"
        "@step\ndef two(one: int) -> int:\n    raise RuntimeError('no luck')\n\n"
        "pipeline = Pipeline('broken', [one, two])\n"
    )
    proc = loopline("run", "pipelines/broken.py", cwd=project, check=False)
    assert proc.returncode == 1
    assert "RuntimeError: no luck" in proc.stderr
    assert "--resume" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_param_and_missing_file_are_one_line_errors(tmp_path: Path) -> None:
    loopline("init", "p", cwd=tmp_path)
    project = tmp_path / "p"
    bad = loopline("run", "pipelines/example.py", "-p", "n_rows=lots", cwd=project, check=False)
    assert bad.returncode == 1
    assert "expects int, got 'lots'" in bad.stderr
    missing = loopline("run", "nope.py", cwd=project, check=False)
    assert missing.returncode == 1
    assert "No pipeline file" in missing.stderr
    unknown = loopline("run", "pipelines/example.py", "-p", "rows=1", cwd=project, check=False)
    assert "has no parameter 'rows'" in unknown.stderr
