"""The everyday steps on the command line: the shipped example by name, datasets split
and validated without their label, run artifacts, registering a model, traffic shares,
and what a failure shows (one line, its exit code, the frames that matter)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e.cli import init, one_line_error, python, run

BROKEN = """
from loopline.pipeline import Pipeline, step

def lookup(frame):
    return frame["no such column"]

@step
def one() -> dict:
    return {"a": 1}

@step
def two(one: dict) -> int:
    return lookup(one)

pipeline = Pipeline("broken", [one, two])
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project that ran the shipped example (small and quick) by its name."""
    root = init(tmp_path_factory.mktemp("everyday"))
    out = run(
        "run", "example:credit_risk", "-p", "n_rows=1500", "-p", "n_trials=2", cwd=root
    ).stdout
    assert "register: registered credit_risk/1" in out
    return root


def _step_run(project: Path, step: str) -> str:
    runs = json.loads(run("runs", "ls", "--json", "-n", "100", cwd=project).stdout)
    return str(next(r["id"] for r in runs if r["name"] == step and r["status"] == "finished"))


def test_datasets_versions_split_and_features_only(project: Path) -> None:
    versions = json.loads(
        run("data", "versions", "credit_applications", "--json", cwd=project).stdout
    )
    assert [v["version"] for v in versions] == [1]
    split = json.loads(
        run("data", "split", "credit_applications@1", "--seed", "5", "--json", cwd=project).stdout
    )
    assert sum(split["sizes"].values()) == 1500
    assert split["seed"] == 5
    again = json.loads(
        run("data", "split", "credit_applications@1", "--seed", "5", "--json", cwd=project).stdout
    )
    assert again["id"] == split["id"]  # the recorded split, not a new one

    def validate(*extra: str, code: int = 0) -> str:
        args = ("data", "validate", "credit_applications", "data/new_applications.csv")
        return run(*args, *extra, cwd=project, code=code).stdout

    assert "missing_column" in validate(code=1)  # no label in a production batch
    # --features-only leaves out the label the project's gates name for this dataset
    assert json.loads(validate("--features-only", "--json"))["ok"] is True
    validate("--features-only", "--target", "default")
    usage = run("data", "validate", "credit_applications", "--target", "x", cwd=project, code=2)
    assert "--target goes with --features-only" in one_line_error(usage)


def test_run_artifacts_are_listed_and_fetched(project: Path) -> None:
    evaluation = _step_run(project, "evaluation")
    listed = json.loads(run("runs", "artifacts", evaluation, "--json", cwd=project).stdout)
    names = {a["name"] for a in listed}
    assert {"tuned_evaluation.json", "baseline_evaluation.html"} <= names
    report = json.loads(
        run("runs", "artifact", "get", evaluation[:10], "tuned_evaluation.json", cwd=project).stdout
    )
    assert "metrics" in report
    out = project / "report.html"
    run("runs", "artifact", "get", evaluation, "tuned_evaluation.html", "-o", str(out), cwd=project)
    assert out.read_text().lstrip().lower().startswith("<!doctype html")
    missing = run(
        "runs", "artifact", "get", evaluation, "tuned_evaluaton.json", cwd=project, code=1
    )
    assert "did you mean 'tuned_evaluation.json'" in one_line_error(missing)


def test_register_from_a_run_and_from_a_file_says_the_serving_path(project: Path) -> None:
    python(
        "from loopline.examples.credit_risk.data import generate_applications\n"
        "generate_applications(200, seed=9).to_csv('sample.csv', index=False)\n",
        cwd=project,
    )
    baseline = _step_run(project, "baseline")
    out = run(
        "models",
        "register",
        "loans",
        "--from-run",
        baseline,
        "--sample",
        "sample.csv",
        "--drop",
        "default",
        cwd=project,
    ).stdout
    # The default preprocessing's text imputer has no ONNX converter: the terminal says so.
    assert "loans/1 registered (sklearn); serves with the native model (conversion " in out
    # The step's run records no dataset it read: the monitoring reference waits for one,
    # and the terminal says how to give it.
    assert "no monitoring reference yet (Model loans/1 records no training dataset" in out
    assert "--reference DATASET@VERSION" in out
    shown = json.loads(run("models", "show", "loans/1", "--json", cwd=project).stdout)
    assert shown["run_id"].startswith(baseline[:8])

    python(
        "import pandas as pd, skops.io\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "X = pd.DataFrame({'mean radius': [1.0, 2.0, 3.0, 4.0], 'x/y': [0.0, 1.0, 0.0, 1.0]})\n"
        "X.to_csv('rows.csv', index=False)\n"
        "skops.io.dump(LogisticRegression().fit(X, [0, 0, 1, 1]), 'model.skops')\n",
        cwd=project,
    )
    made = json.loads(
        run(
            "models",
            "register",
            "tiny",
            "model.skops",
            "--sample",
            "rows.csv",
            "--json",
            cwd=project,
        ).stdout
    )
    assert made["onnx"]["status"] == "kept"
    assert made["onnx"]["input_names"] == {"mean radius": "mean_radius", "x/y": "x_y"}
    assert made["serving_path"].startswith("serves with ONNX Runtime")
    # A bare file has no training data on record: no reference yet, and the reason.
    assert made["monitor_reference"] is None
    assert "training" in made["monitor_reference_error"]
    tuned = _step_run(project, "tuned")
    lgbm = run(
        "models",
        "register",
        "lgbm",
        "--from-run",
        tuned,
        "--sample",
        "sample.csv",
        "--drop",
        "default",
        cwd=project,
    ).stdout
    assert "serves with the native model (" in lgbm
    both = run(
        "models",
        "register",
        "x",
        "model.skops",
        "--from-run",
        tuned,
        "--sample",
        "rows.csv",
        cwd=project,
        code=2,
    )
    assert "either MODEL_FILE or --from-run" in one_line_error(both)


def test_traffic_set_and_clear(project: Path) -> None:
    moved = json.loads(
        run(
            "traffic",
            "set",
            "credit_risk",
            "credit_risk@challenger",
            "10",
            "--alias",
            "champion",
            "--json",
            cwd=project,
        ).stdout
    )
    assert moved["before"] is None
    assert (moved["after"]["percent"], moved["after"]["mode"]) == (10.0, "canary")
    shown = run("traffic", "clear", "credit_risk", "--alias", "champion", cwd=project).stdout
    assert "canary 10% to credit_risk@challenger → all of credit_risk@champion" in shown
    again = run("traffic", "clear", "credit_risk", "--alias", "champion", cwd=project).stdout
    assert "no split was set" in again
    bad = run("traffic", "set", "credit_risk", "credit_risk@challenger", "150", cwd=project, code=2)
    assert one_line_error(bad).startswith("error: loopline traffic set: Invalid value")


def test_usage_and_configuration_mistakes_exit_2_on_one_line(project: Path) -> None:
    param = run("run", "example:credit_risk", "-p", "n_rows=abc", cwd=project, code=2)
    assert "expects int, got 'abc'" in one_line_error(param)
    assert param.stdout == ""  # no empty table before the error
    forced = run("models", "promote", "credit_risk", "1", "--force", cwd=project, code=2)
    line = one_line_error(forced)
    assert line.startswith("error: loopline models promote: --force needs --reason")
    assert line.endswith("See: loopline models promote --help")
    typo = run("dat", "ls", cwd=project, code=2)
    assert "Did you mean 'data'?" in one_line_error(typo)
    example = run("run", "example:credit_rsk", cwd=project, code=1)
    assert "did you mean 'credit_risk'?" in one_line_error(example)
    alias = run("models", "show", "credit_risk@champ", cwd=project, code=1)
    assert "did you mean credit_risk@champion?" in one_line_error(alias)
    exposed = run("serve", "credit_risk@champion", "--host", "0.0.0.0", cwd=project, code=2)
    assert "Refusing to serve on 0.0.0.0 without authentication" in one_line_error(exposed)


def test_a_failing_step_shows_where_and_keeps_its_traceback(project: Path) -> None:
    (project / "broken.py").write_text(BROKEN)
    failed = run("run", "broken.py", cwd=project, code=1)
    err = failed.stderr
    assert "step 'two' failed:" in err
    assert f'File "{project / "broken.py"}", line 5, in lookup' in err
    assert err.strip().splitlines()[-1].startswith("error: Pipeline 'broken' failed")
    assert "--resume" in err
    debug = run("--debug", "run", "broken.py", cwd=project, code=1)
    assert "in execute_step" not in err
    assert len(debug.stderr.splitlines()) > len(err.splitlines())

    runs = json.loads(run("runs", "ls", "-e", "broken", "--json", cwd=project).stdout)
    pipeline_run = next(r["id"] for r in runs if r["name"] == "broken")
    shown = json.loads(run("runs", "show", pipeline_run, "--json", cwd=project).stdout)
    assert shown["traceback"].rstrip().endswith("KeyError: 'no such column'")
    assert "in lookup" in shown["traceback"]
