"""Gates: the criterion parser, pass/fail reasons, champion-relative criteria, data checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from loopline.evaluate import (
    CriterionResult,
    Evaluation,
    Gate,
    GateSet,
    Verdict,
    evaluate_gates,
)
from loopline.evaluate.errors import EvaluationError, GateFailedError, GateSyntaxError

METRICS = {"f1": 0.8123, "roc_auc": 0.901, "log_loss": 0.42, "rmse": 10.0}


def check(
    text: str,
    metrics: Mapping[str, float | None] | None = None,
    champion: Mapping[str, float | None] | None = None,
    data_ok: Any = None,
    if_no_champion: Literal["pass", "fail"] = "pass",
) -> CriterionResult:
    return Gate.parse(text).check(
        METRICS if metrics is None else metrics,
        champion,
        data_ok,
        if_no_champion=if_no_champion,
    )


# -- parser ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "right"),
    [
        ("f1 >= 0.5 + 0.1 * 2", 0.7),  # * binds tighter than +
        ("f1 >= (0.5 + 0.1) * 2", 1.2),
        ("f1 >= 1 - 0.2 - 0.1", 0.7),  # left-associative
        ("f1 >= 8 / 4 / 2", 1.0),
        ("f1 >= -0.5 * -2", 1.0),
        ("f1 >= --1", 1.0),
        ("f1 >= +1e-1", 0.1),
        ("f1 >= .25", 0.25),
        ("f1 >= 2.5E-1", 0.25),
    ],
)
def test_precedence_parentheses_and_numbers(text: str, right: float) -> None:
    result = Gate.parse(text).check({"f1": 0.0})
    assert result.right_value == pytest.approx(right)


def test_names_and_structure() -> None:
    gate = Gate.parse("  roc_auc >= champion.roc_auc - 0.005  ")
    assert gate.text == "roc_auc >= champion.roc_auc - 0.005"
    assert gate.comparator == ">="
    assert gate.metric_names == ["roc_auc", "champion.roc_auc"]
    assert gate.uses_champion
    assert Gate.parse("data.valid").is_data_check
    assert Gate.parse("eval.f1 > 0").metric_names == ["eval.f1"]


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("f1 >= ", 6, "a number, a metric name or '('"),
        ("f1 0.8", 3, "a comparison operator"),
        ("f1 >= (0.8", 10, "')'"),
        ("f1 => 0.8", 3, "'=='"),
        ("f1 = 0.8", 3, "'=='"),
        ("f1 >= 0.8 >= 0.7", 10, "the end of the criterion (one comparison"),
        ("f1 >= 0.8 $", 10, "a number, a metric name, an operator"),
        ("f1 >= 0.8)", 9, "the end of the criterion"),
        ("data.valid >= 1", 11, "the end of the criterion after 'data.valid'"),
        ("f1 >= data.valid", 6, "'data.valid' is a criterion on its own"),
        ("champion >= 1", 8, "'.' and a metric name after 'champion'"),
        ("f1 >= 0.8 *", 11, "a number, a metric name or '('"),
        ("", 0, "a criterion such as"),
        ("()", 1, "a number, a metric name or '('"),
    ],
)
def test_syntax_errors_name_criterion_position_and_expectation(
    text: str, position: int, expected: str
) -> None:
    with pytest.raises(GateSyntaxError) as info:
        Gate.parse(text)
    error = info.value
    assert error.criterion == text
    assert error.position == position
    assert expected in error.expected
    assert repr(text) in str(error)
    assert f"position {position}" in str(error)


def test_syntax_error_names_what_was_found() -> None:
    with pytest.raises(GateSyntaxError) as info:
        Gate.parse("f1 >= 0.8 < 0.9")
    assert info.value.found == "'<'"
    with pytest.raises(GateSyntaxError) as info:
        Gate.parse("f1 >=")
    assert info.value.found == "the end of the criterion"


def test_never_evaluates_python() -> None:
    with pytest.raises(GateSyntaxError):
        Gate.parse("__import__('os').system('true') > 0")


# -- pass / fail ----------------------------------------------------------------------


def test_absolute_criteria_reasons() -> None:
    passed = check("f1 >= 0.80")
    assert passed.passed
    assert passed.reason == "f1 = 0.8123 >= 0.80: passed"
    assert (passed.left_value, passed.right_value) == (0.8123, 0.8)
    failed = check("log_loss < 0.4")
    assert not failed.passed
    assert failed.reason == "log_loss = 0.42 >= 0.4: failed"


@pytest.mark.parametrize(
    ("text", "passed"),
    [
        ("f1 > 0.8123", False),
        ("f1 >= 0.8123", True),
        ("f1 <= 0.8123", True),
        ("f1 < 0.8123", False),
        ("f1 == 0.8123", True),
        ("f1 != 0.8123", False),
        ("0.9 > f1", True),
    ],
)
def test_every_comparator(text: str, passed: bool) -> None:
    assert check(text).passed is passed


def test_close_values_show_enough_digits_to_differ() -> None:
    result = check("f1 >= 0.81234", {"f1": 0.81231})
    assert result.reason == "f1 = 0.81231 < 0.81234: failed"


def test_champion_relative_criteria() -> None:
    champion = {"roc_auc": 0.9182, "rmse": 9.0}
    failed = check("roc_auc >= champion.roc_auc - 0.005", champion=champion)
    assert not failed.passed
    assert failed.reason == "roc_auc = 0.901 < champion.roc_auc - 0.005 = 0.9132: failed"
    ok = check("rmse <= champion.rmse * 1.15", champion=champion)
    assert ok.passed
    assert ok.reason == "rmse = 10 <= champion.rmse * 1.15 = 10.35: passed"
    worse = check("rmse <= champion.rmse * 1.05", champion=champion)
    assert not worse.passed


def test_no_champion_policy() -> None:
    result = check("roc_auc >= champion.roc_auc - 0.005")
    assert result.passed
    assert result.by_default
    assert result.reason == (
        "no champion: the criterion 'roc_auc >= champion.roc_auc - 0.005' passes by "
        "default (first model)"
    )
    strict = check("roc_auc >= champion.roc_auc", if_no_champion="fail")
    assert not strict.passed
    assert "fails" in strict.reason


def test_missing_and_undefined_metrics_fail_with_reasons() -> None:
    missing = check("accuracy >= 0.9")
    assert not missing.passed
    assert missing.reason == (
        "metric 'accuracy' is missing; available: f1, log_loss, rmse, roc_auc: failed"
    )
    # A missing candidate metric fails even without a champion.
    assert not check("accuracy >= champion.accuracy").passed
    champion_lacks = check("f1 >= champion.f1", champion={"roc_auc": 0.9})
    assert not champion_lacks.passed
    assert "champion metric 'f1' is missing; available: roc_auc" in champion_lacks.reason

    evaluation = Evaluation(
        task="binary",
        n_rows=3,
        metrics={"roc_auc": None},
        notes={"roc_auc": "undefined: only one class (0) among these rows"},
    )
    undefined = Gate.parse("roc_auc > 0.5").check(evaluation)
    assert not undefined.passed
    assert undefined.reason == (
        "metric 'roc_auc' is not available (undefined: only one class (0) among these rows): failed"
    )


def test_division_by_zero_fails() -> None:
    result = check("f1 >= champion.f1 / 0", champion={"f1": 0.5})
    assert not result.passed
    assert "division by zero" in result.reason


def test_champion_evaluated_on_other_data_is_not_comparable() -> None:
    candidate = Evaluation(task="binary", n_rows=10, metrics={"f1": 0.9}, data_id="holdout@v2")
    champion = Evaluation(task="binary", n_rows=10, metrics={"f1": 0.8}, data_id="holdout@v1")
    result = Gate.parse("f1 >= champion.f1").check(candidate, champion)
    assert not result.passed
    assert "same holdout" in result.reason
    champion.data_id = "holdout@v2"
    assert Gate.parse("f1 >= champion.f1").check(candidate, champion).passed


@dataclass
class Report:
    ok: bool
    errors: list[str] = field(default_factory=list)


def test_data_check() -> None:
    assert check("data.valid", data_ok=True).reason == (
        "data.valid: the evaluation data passed validation: passed"
    )
    failed = check("data.valid", data_ok=Report(False, ["age < 0", "null ids"]))
    assert not failed.passed
    assert failed.reason == ("data.valid: the evaluation data failed validation (2 errors): failed")
    assert check("data.valid", data_ok=Report(True)).passed
    missing = check("data.valid")
    assert not missing.passed
    assert "no data validation result" in missing.reason
    with pytest.raises(EvaluationError, match="data_ok must be a bool"):
        check("data.valid", data_ok="yes")


# -- gate sets and verdicts -----------------------------------------------------------


def test_verdict_collects_every_result() -> None:
    verdict = evaluate_gates(
        ["f1 >= 0.8", "log_loss < 0.4", "roc_auc >= champion.roc_auc - 0.005", "data.valid"],
        METRICS,
        data_ok=True,
    )
    assert not verdict.passed
    assert [r.passed for r in verdict.results] == [True, False, True, True]
    assert verdict.summary() == "3 of 4 gate criteria passed; failed: log_loss < 0.4"
    rows = verdict.rows()
    assert rows[0] == ("f1 >= 0.8", "ok", "0.8123", "0.8", "f1 = 0.8123 >= 0.8: passed")
    assert rows[1][1] == "fail"
    assert len(Verdict.COLUMNS) == len(rows[0])
    data = verdict.to_dict()
    assert data["passed"] is False
    assert len(data["results"]) == 4
    assert Verdict.from_dict(data) == verdict
    with pytest.raises(GateFailedError) as info:
        verdict.raise_for_failure()
    assert info.value.verdict is verdict
    assert "log_loss = 0.42 >= 0.4: failed" in str(info.value)


def test_empty_gate_set_passes() -> None:
    verdict = evaluate_gates([], METRICS)
    assert verdict.passed
    verdict.raise_for_failure()


def test_mapping_form_from_toml() -> None:
    gates = GateSet.from_mapping(
        {
            "f1": ">= 0.8",
            "rmse": ["< 20", "<= champion.rmse * 1.05"],
            "data.valid": True,
        }
    )
    assert gates.texts == ["f1 >= 0.8", "rmse < 20", "rmse <= champion.rmse * 1.05", "data.valid"]
    assert gates.uses_champion
    assert evaluate_gates(gates, METRICS, data_ok=True).passed
    assert GateSet.parse({"f1": ">= 0.9"}).texts == ["f1 >= 0.9"]
    with pytest.raises(EvaluationError, match="expected a condition string"):
        GateSet.from_mapping({"f1": 0.8})
    with pytest.raises(GateSyntaxError):
        GateSet.from_mapping({"f1": "0.8"})


def test_gate_set_accepts_gates_and_strings() -> None:
    gates = GateSet.parse([Gate.parse("f1 > 0.5"), "roc_auc > 0.5"])
    assert len(gates) == 2
    assert [g.text for g in gates] == ["f1 > 0.5", "roc_auc > 0.5"]
    assert GateSet.from_strings("f1 > 0.5").texts == ["f1 > 0.5"]
