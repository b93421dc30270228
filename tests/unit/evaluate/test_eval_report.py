"""Reports: JSON round trip, the self-contained HTML page, logging to a run."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Mapping

import numpy as np
import pytest

from loopline.evaluate import Evaluation, evaluate_predictions
from loopline.evaluate.errors import EvaluationError


@pytest.fixture(scope="module")
def binary() -> Evaluation:
    rng = np.random.default_rng(2)
    y = rng.choice(["no", "yes"], 400)
    p = np.clip(np.where(y == "yes", 0.7, 0.3) + rng.normal(0, 0.2, 400), 0, 1)
    plan = rng.choice(["basic", "pro", "<team & co>"], 400)
    return evaluate_predictions(
        y,
        proba=p,
        classes=["no", "yes"],
        threshold="f1",
        slices=["plan", ("tenure", 3)],
        slice_data={"plan": plan, "tenure": rng.uniform(0, 72, 400)},
        data_id="churn@3",
        info={"model": "churn-v7"},
    )


@pytest.fixture(scope="module")
def regression() -> Evaluation:
    rng = np.random.default_rng(4)
    y = rng.normal(50, 10, 900)
    return evaluate_predictions(
        y,
        y + rng.normal(0, 2, 900),
        slices=[("x", [0, 10, 20])],
        slice_data={"x": rng.uniform(-5, 25, 900)},
    )


@pytest.fixture(scope="module")
def multiclass() -> Evaluation:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 4, 300)
    proba = rng.dirichlet(np.ones(4), 300)
    return evaluate_predictions(y, proba=proba)


@pytest.mark.parametrize("name", ["binary", "regression", "multiclass"])
def test_json_round_trip(name: str, request: pytest.FixtureRequest) -> None:
    evaluation: Evaluation = request.getfixturevalue(name)
    text = evaluation.to_json()
    assert "NaN" not in text
    again = Evaluation.from_json(text)
    assert again == evaluation
    assert Evaluation.from_dict(json.loads(text)).to_dict() == evaluation.to_dict()


def test_json_keeps_what_matters(binary: Evaluation) -> None:
    data = json.loads(binary.to_json())
    assert data["format"] == 1
    assert data["classes"] == ["no", "yes"]
    assert data["positive_label"] == "yes"
    assert data["threshold"] == binary.threshold
    assert data["threshold_choice"]["metric"] == "f1"
    assert data["data_id"] == "churn@3"
    assert {s["column"] for s in data["slices"]} == {"plan", "tenure"}


def test_from_dict_rejects_other_formats_and_garbage() -> None:
    with pytest.raises(EvaluationError, match="format 99"):
        Evaluation.from_dict({"format": 99})
    with pytest.raises(EvaluationError, match="malformed"):
        Evaluation.from_dict({"format": 1, "task": "binary"})
    with pytest.raises(EvaluationError, match="must be JSON"):
        Evaluation.from_json("{not json")


def assert_self_contained(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    assert "http" not in html
    assert not re.search(r"\b(src|href)\s*=", html)
    assert "<script" not in html
    assert "<link" not in html
    assert "@import" not in html
    assert "url(" not in html
    assert html.count("<svg") == html.count("</svg>")


def test_binary_html(binary: Evaluation) -> None:
    html = binary.to_html(title="Churn <v7>")
    assert_self_contained(html)
    assert "<title>Churn &lt;v7&gt;</title>" in html
    for chart in (
        "ROC curve",
        "Precision-recall curve",
        "Calibration (reliability)",
        "Confusion matrix",
        "f1 by threshold",
        "f1 by plan",
        "f1 by tenure",
    ):
        assert f"<title>{chart}</title>" in html, chart
    assert "&lt;team &amp; co&gt;" in html
    assert "<team" not in html
    assert "roc_auc" in html
    assert "churn@3" in html


def test_regression_html(regression: Evaluation) -> None:
    html = regression.to_html()
    assert_self_contained(html)
    assert "<title>Residuals (sample of 500 of 900)</title>" in html
    assert "Predicted vs actual" in html
    assert "rmse by x" in html
    assert "ROC curve" not in html


def test_multiclass_html(multiclass: Evaluation) -> None:
    html = multiclass.to_html()
    assert_self_contained(html)
    assert html.count("<svg") >= 4
    assert "class 3: AUC" in html


class FakeRun:
    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.artifacts: dict[str, bytes] = {}

    def log_metrics(self, metrics: Mapping[str, float], /) -> None:
        self.metrics.update(metrics)

    def log_artifact(self, name: str, data: bytes, /) -> str:
        self.artifacts[name] = data
        return hashlib.sha256(data).hexdigest()


def test_log_to_a_run(binary: Evaluation) -> None:
    run = FakeRun()
    digests = binary.log_to(run)
    assert set(digests) == {"evaluation.json", "evaluation.html"}
    assert (
        digests["evaluation.json"] == hashlib.sha256(run.artifacts["evaluation.json"]).hexdigest()
    )
    assert run.metrics["eval.f1"] == binary.metrics["f1"]
    assert run.metrics["eval.n_rows"] == 400
    assert run.metrics["eval.threshold"] == binary.threshold
    assert all(isinstance(v, float) for v in run.metrics.values())
    assert Evaluation.from_json(run.artifacts["evaluation.json"]) == binary
    assert run.artifacts["evaluation.html"].startswith(b"<!DOCTYPE html>")


def test_log_to_with_options_skips_undefined_metrics() -> None:
    evaluation = evaluate_predictions([0, 1, 0], [0, 0, 0])
    run = FakeRun()
    digests = evaluation.log_to(run, prefix="holdout/", name="holdout", html=False)
    assert list(digests) == ["holdout.json"]
    assert "holdout/accuracy" in run.metrics
    assert "holdout/precision" not in run.metrics  # None: nothing predicted positive


def test_importing_evaluate_loads_no_heavy_library() -> None:
    code = (
        "import sys, loopline.evaluate; "
        "print(sorted(m for m in ('numpy', 'pandas', 'sklearn', 'scipy', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
