"""Judging a bake window: a label-based shortfall within the labels' noise is not held
against the challenger; one beyond it is, and so is anything not label-based."""

from __future__ import annotations

from typing import Any

from loopline.evaluate.gates import Gate
from loopline.loop.bake import _within_noise

AUC = "performance.roc_auc >= champion.performance.roc_auc - 0.03"


def _judge(criterion: str, mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    gate = Gate.parse(criterion)
    result = gate.check(mine, theirs).to_dict()
    return result if result["passed"] else _within_noise(gate, result, mine, theirs)


def test_a_small_canary_short_by_noise_passes_with_the_reason() -> None:
    mine = {"performance.roc_auc": 0.68, "performance.labels": 100}
    theirs = {"performance.roc_auc": 0.75, "performance.labels": 250}
    result = _judge(AUC, mine, theirs)
    assert result["passed"] is True
    assert "within the noise of the window's labels" in result["reason"]


def test_the_same_shortfall_on_many_labels_fails() -> None:
    mine = {"performance.roc_auc": 0.68, "performance.labels": 20_000}
    theirs = {"performance.roc_auc": 0.75, "performance.labels": 50_000}
    result = _judge(AUC, mine, theirs)
    assert result["passed"] is False
    assert "beyond the labels' noise" in result["reason"]


def test_a_collapse_fails_even_on_few_labels() -> None:
    mine = {"performance.accuracy": 0.40, "performance.labels": 200}
    theirs = {"performance.accuracy": 0.80, "performance.labels": 400}
    crit = "performance.accuracy >= champion.performance.accuracy - 0.03"
    assert _judge(crit, mine, theirs)["passed"] is False


def test_criteria_that_are_not_label_proportions_get_no_allowance() -> None:
    errors = "health.error_share <= champion.health.error_share + 0.01"
    mine = {"health.error_share": 0.05, "performance.labels": 10}
    theirs = {"health.error_share": 0.0, "performance.labels": 10}
    assert _judge(errors, mine, theirs)["passed"] is False
    loss = "performance.log_loss <= champion.performance.log_loss + 0.01"
    mine = {"performance.log_loss": 0.7, "performance.labels": 10}
    theirs = {"performance.log_loss": 0.5, "performance.labels": 10}
    assert _judge(loss, mine, theirs)["passed"] is False
