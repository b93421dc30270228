"""The shipped credit-risk example: over data sizes and seeds, its tuned model beats the
linear baseline and passes the gates ``loopline init`` writes, so a new project gets a
champion on its first run."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopline.config import settings_for
from loopline.examples.credit_risk import pipeline as example
from loopline.pipeline.runner import run_pipeline
from loopline.project.create import init_project
from loopline.registry import Registry
from loopline.store.stores import Stores


def _first_run(root: Path, n_rows: int, seed: int) -> tuple[dict[str, float], dict[str, object]]:
    init_project(root, environ={})
    with Stores.open(settings_for(root, environ={})) as stores:
        result = run_pipeline(
            example.pipeline,
            stores,
            params={"n_rows": n_rows, "seed": seed, "n_trials": 6},
            source=example.__file__,
        )
        assert result.ok, result.error
        evaluation = result.output("evaluation")
        registered = result.output("register")
        scores = {n: evaluation[n]["metrics"]["roc_auc"] for n in ("baseline", "tuned")}
        notes = result.steps["register"].notes
        champion = Registry(stores).resolve(f"{example.MODEL}@champion")
        assert champion.version == registered["version"]
    return scores, {**registered, "notes": notes}


@pytest.mark.parametrize(
    ("n_rows", "seed"),
    [
        (3_000, 0),
        pytest.param(3_000, 1, marks=pytest.mark.slow),
        pytest.param(3_000, 2, marks=pytest.mark.slow),
        pytest.param(20_000, 0, marks=pytest.mark.slow),
    ],
)
def test_the_first_run_promotes_a_tuned_champion(tmp_path: Path, n_rows: int, seed: int) -> None:
    scores, registered = _first_run(tmp_path / "p", n_rows, seed)
    assert scores["tuned"] > scores["baseline"] + 0.01, scores
    assert registered["winner"] == "tuned"
    assert registered["promoted"] is True
    notes = registered["notes"]
    assert isinstance(notes, list)
    assert any("serves with" in n for n in notes), notes
    assert any(n.startswith("promoted ") for n in notes), notes


def test_without_a_gates_table_the_version_stays_challenger(tmp_path: Path) -> None:
    root = tmp_path / "p"
    init_project(root, environ={})
    toml = root / "loopline.toml"
    toml.write_text(toml.read_text().split("[gates.")[0])
    with Stores.open(settings_for(root, environ={})) as stores:
        result = run_pipeline(
            example.pipeline,
            stores,
            params={"n_rows": 1_500, "n_trials": 2},
            source=example.__file__,
        )
        assert result.ok, result.error
        registered = result.output("register")
        assert registered["promoted"] is False
        assert any("no [gates.credit_risk]" in n for n in result.steps["register"].notes)
        reg = Registry(stores)
        assert reg.resolve("credit_risk@challenger").version == registered["version"]
        assert "champion" not in reg.get("credit_risk").aliases


def test_init_writes_the_gates_check_uses(tmp_path: Path) -> None:
    from loopline.loop.gates import gate_configs

    report = init_project(tmp_path / "p", environ={})
    config = gate_configs(settings_for(report.project_dir, environ={}))[example.MODEL]
    assert config.holdout == f"{example.DATASET}@1"
    assert config.split == "test"
    assert config.target == example.TARGET
    assert "roc_auc >= champion.roc_auc - 0.005" in config.criteria
    written = (report.project_dir / "pipelines" / "example.py").read_text()
    assert written == Path(example.__file__).read_text()
    batch = (report.project_dir / "data" / "new_applications.csv").read_text().splitlines()
    assert batch[0].startswith("application_id,age,income")
    assert example.TARGET not in batch[0].split(",")
