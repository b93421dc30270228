"""``loopline check`` and gated ``loopline models promote`` as a user runs them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli import init, run
from loopline.config import settings_for
from loopline.examples.credit_risk.data import generate_applications
from loopline.registry import Registry
from loopline.store.stores import Stores

#: The holdout pinned to a version, as CI wants it.
GATES = """
[gates.loans]
criteria = ["roc_auc >= 0.65", "roc_auc >= champion.roc_auc - 0.005", "data.valid"]
holdout = "loans@1"
target = "default"
split = "test"
"""


def _fit_models(stores: Stores) -> tuple[int, int]:
    """A logistic regression and a constant model on a split dataset ``loans``; their
    versions (good, dummy)."""
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from loopline.data import Datasets, default_preprocessor

    ds = Datasets(stores)
    ds.add("loans", generate_applications(n_rows=1_500, seed=3))
    parts = ds.split("loans", stratify="default", seed=1)
    x, y = parts.train.drop(columns=["default"]), parts.train["default"]
    reg = Registry(stores)
    versions = []
    for final in (LogisticRegression(max_iter=500), DummyClassifier(strategy="prior")):
        prep = default_preprocessor(ds.schema("loans"), target="default")
        model = make_pipeline(prep, final).fit(x, y)
        versions.append(reg.register("loans", model, sample=x.head(50), onnx=False).version)
    return versions[0], versions[1]


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, Stores, int, int]]:
    """A project gating ``loans``: version ``good`` is champion, ``dummy`` challenger."""
    root = init(tmp_path)
    toml = root / "loopline.toml"
    # Only the gates of this test's model (not the example's, whose model is never trained).
    toml.write_text(toml.read_text().split("[gates.credit_risk]")[0] + GATES)
    with Stores.open(settings_for(root, environ={})) as stores:
        good, dummy = _fit_models(stores)
        reg = Registry(stores)
        reg.set_alias("loans", "champion", good)
        reg.set_alias("loans", "challenger", dummy)
        yield root, stores, good, dummy


def test_check_and_promote_from_the_command_line(
    project: tuple[Path, Stores, int, int],
) -> None:
    root, stores, good, dummy = project
    out = json.loads(run("check", "--json", cwd=root, code=1).stdout)
    assert out["passed"] is False
    assert out["checks"][0]["candidate"] == f"loans/{dummy}"

    human = run("check", cwd=root, code=1).stdout
    assert "roc_auc >= 0.65" in human
    assert "failed" in human

    refused = run("models", "promote", "loans", str(dummy), "--alias", "champion", cwd=root, code=1)
    assert "roc_auc" in refused.stderr
    assert Registry(stores).resolve("loans@champion").version == good

    forced = run(
        "models",
        "promote",
        "loans",
        str(dummy),
        "--alias",
        "champion",
        "--force",
        "--reason",
        "testing a forced move",
        "--json",
        cwd=root,
    )
    assert json.loads(forced.stdout)["forced"] is True
    history = Registry(stores).alias_history("loans", "champion")
    assert "testing a forced move" in [move.reason for move in history]

    Registry(stores).set_alias("loans", "challenger", good)
    run("check", cwd=root)


def test_check_exits_2_on_a_broken_gate_file_and_1_on_a_failing_model(
    project: tuple[Path, Stores, int, int],
) -> None:
    root, _, _, _ = project
    toml = root / "loopline.toml"
    good_toml = toml.read_text()
    run("check", cwd=root, code=1)  # a failing model

    toml.write_text(good_toml.replace('"roc_auc >= 0.65"', '"roc_auc >= "'))
    broken = run("check", cwd=root, code=2)
    assert broken.stderr.startswith("error:")
    assert "criteria[0]" in broken.stderr

    toml.write_text(good_toml.replace('holdout = "loans@1"', 'holdout = "lonas@1"'))
    misspelt = run("check", cwd=root, code=2)
    assert "Did you mean 'loans'" in misspelt.stderr

    toml.write_text(good_toml.replace('holdout = "loans@1"', 'holdout = "loans@2"'))
    missing = run("check", cwd=root, code=2)  # a pinned version that does not exist
    assert "loans" in missing.stderr

    toml.write_text(good_toml.replace('holdout = "loans@1"', 'holdout = "loans"'))
    latest = run("check", cwd=root, code=1)  # the model still fails, on the latest version
    assert "data loans@1#split" in latest.stdout


def test_a_gated_model_without_versions_fails_the_check_with_its_reason(tmp_path: Path) -> None:
    root = init(tmp_path)  # gates for credit_risk, which nothing has trained yet
    out = json.loads(run("check", "--json", cwd=root, code=1).stdout)
    assert out["passed"] is False
    [entry] = out["checks"]
    assert entry["model"] == "credit_risk"
    assert entry["candidate"] is None
    assert "No model named 'credit_risk'" in entry["error"]
    human = run("check", cwd=root, code=1).stdout
    assert "credit_risk: failed: no candidate to check" in human
