"""``loopline init --ci github``: the workflow parses, has the steps CI needs in order,
and its commands run as written, job after job, each in a fresh checkout of the project
against shared stores given as the workflow's secrets (the install step, which needs the
network, aside): the push to main trains, gates and promotes; the pull request validates
the new data, runs the project's tests and passes the gates; the events reach the
project's webhook."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.cli import TIMEOUT_S, clean_env, init, run
from loopline import __version__
from unit.alarm.test_webhook import Receiver

WORKFLOW = Path(".github") / "workflows" / "loopline.yml"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _workflow(project: Path) -> dict[Any, Any]:
    data = yaml.safe_load((project / WORKFLOW).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _runs(job: dict[str, Any]) -> list[str]:
    """The ``run:`` commands of a job after its install step, in order."""
    names = [step.get("name") for step in job["steps"]]
    after = names.index("Install") + 1
    return [step["run"].strip() for step in job["steps"][after:] if "run" in step]


def test_the_workflow_has_the_steps_ci_needs(tmp_path: Path) -> None:
    project = init(tmp_path, "p", "--ci", "github")
    data = _workflow(project)
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "pull_request" in triggers
    assert triggers["push"]["branches"] == ["main"]
    for secret in ("LOOPLINE_METADATA_URL", "LOOPLINE_ARTIFACTS_URL"):
        assert data["env"][secret] == f"${{{{ secrets.{secret} }}}}"

    check, train = data["jobs"]["check"], data["jobs"]["train"]
    assert "pull_request" in check["if"]
    assert "push" in train["if"]
    for job in (check, train):
        uses = [step.get("uses") for step in job["steps"][:2]]
        assert uses == ["actions/checkout@v4", "actions/setup-python@v5"]
        assert job["steps"][1]["with"]["python-version"] == "3.11"
        install = next(step["run"] for step in job["steps"] if step.get("name") == "Install")
        assert "pip install -r requirements.txt" in install
        assert f'"loopline[train,onnx,postgres,s3]=={__version__}"' in install
    assert _runs(check) == [
        "loopline db upgrade",
        "loopline data validate credit_applications data/new_applications.csv --features-only",
        'if [ -d tests ]; then python -m pytest tests; else echo "no tests/ folder"; fi',
        "loopline check",
        "loopline events deliver",
    ]
    assert _runs(train) == [
        "loopline db upgrade",
        "loopline run pipelines/example.py",
        "loopline events deliver",
    ]
    # The gates CI runs are pinned to a dataset version.
    assert 'holdout = "credit_applications@1"' in (project / "loopline.toml").read_text()


def test_init_keeps_an_existing_workflow_and_names_an_unpinned_holdout(tmp_path: Path) -> None:
    project = init(tmp_path)
    toml = project / "loopline.toml"
    toml.write_text(toml.read_text().replace('"credit_applications@1"', '"credit_applications"'))
    report = json.loads(run("init", str(project), "--ci", "github", "--json", cwd=tmp_path).stdout)
    assert ".github/workflows/loopline.yml" in report["created"]
    assert any("is not pinned" in note for note in report["notes"])
    (project / WORKFLOW).write_text("# mine\n")
    again = json.loads(run("init", str(project), "--ci", "github", "--json", cwd=tmp_path).stdout)
    assert ".github/workflows/loopline.yml" in again["kept"]
    assert (project / WORKFLOW).read_text() == "# mine\n"


def _checkout(project: Path, to: Path) -> Path:
    """What a CI job checks out: the project's files without what git ignores (the
    embedded store)."""
    ignored = {line.strip("/") for line in (project / ".gitignore").read_text().split()}
    shutil.copytree(project, to, ignore=lambda _, names: [n for n in names if n in ignored])
    return to


def _run_job(job: dict[str, Any], env: dict[str, str], checkout: Path) -> list[str]:
    """Each ``run:`` step after the install, in order, with bash as Actions runs it."""
    outputs = []
    for command in _runs(job):
        done = subprocess.run(
            ["bash", "-eo", "pipefail", "-c", command],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}\n{done.stdout[-3000:]}"
        outputs.append(done.stdout)
    return outputs


@pytest.mark.slow
def test_the_workflow_runs_as_written(tmp_path: Path, receiver: Receiver) -> None:
    project = init(tmp_path, "repo", "--ci", "github")
    (project / "tests").mkdir()
    (project / "tests" / "test_project.py").write_text(
        "from pathlib import Path\n\n\n"
        "def test_the_pipeline_is_there():\n"
        '    assert Path("pipelines/example.py").is_file()\n'
    )
    with (project / "loopline.toml").open("a") as f:
        f.write(
            f'\n[actions.ci]\nkind = "webhook"\nurl = "{receiver.url}"\n\n'
            '[events]\nwebhooks = ["ci"]\nkinds = ["model.*", "gate.*"]\n'
        )
    data = _workflow(project)
    shared = tmp_path / "shared"
    (shared / "artifacts").mkdir(parents=True)
    secrets = {
        "LOOPLINE_METADATA_URL": f"sqlite:///{shared / 'meta.db'}",
        "LOOPLINE_ARTIFACTS_URL": str(shared / "artifacts"),
    }
    env = clean_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for name, value in data["env"].items():
        env[name] = re.sub(
            r"\$\{\{\s*secrets\.(\w+)\s*\}\}", lambda m: secrets.get(m.group(1), ""), str(value)
        )

    # A push to main: train, gate, promote; then tell the webhook.
    train = _run_job(data["jobs"]["train"], env, _checkout(project, tmp_path / "main"))
    assert "promoted credit_risk/1 to champion" in train[1]
    assert "delivered 3" in train[2]  # registered, challenger, champion
    kinds = [json.loads(body)["kind"] for _, body in receiver.received]
    assert kinds == ["model.register", "model.set", "model.promote"]

    # A pull request, in a fresh checkout: the data, the tests, the gates.
    check = _run_job(data["jobs"]["check"], env, _checkout(project, tmp_path / "pr"))
    assert "1 passed" in check[2]
    assert "credit_risk: passed" in check[3]
    assert "delivered 0" in check[4]  # nothing failed, nothing moved
    assert not (tmp_path / "pr" / ".loopline").exists()  # the shared stores were used
