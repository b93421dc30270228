"""Per-slice metrics: categorical levels, quantile and edge bins, degenerate slices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopline.evaluate import evaluate_predictions
from loopline.evaluate.errors import EvaluationError


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    plan = np.array(["basic"] * 120 + ["pro"] * 70 + ["team"] * 6 + [None] * 4, dtype=object)
    tenure = np.arange(n, dtype=float) * 0.5  # 0 .. 99.5
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, n), 0, 1)
    return pd.DataFrame({"plan": plan, "tenure": tenure, "y": y, "p": p})


def test_categorical_levels_have_counts_and_metrics_that_match_a_manual_subset(
    frame: pd.DataFrame,
) -> None:
    ev = evaluate_predictions(frame["y"], proba=frame["p"], slices=["plan"], slice_data=frame)
    by_level = {s.level: s for s in ev.slices_of("plan")}
    assert [s.level for s in ev.slices] == ["basic", "pro", "team", "(missing)"]
    assert {k: s.n_rows for k, s in by_level.items()} == {
        "basic": 120,
        "pro": 70,
        "team": 6,
        "(missing)": 4,
    }
    pro = frame[frame["plan"] == "pro"]
    alone = evaluate_predictions(pro["y"], proba=pro["p"], classes=[0, 1])
    assert by_level["pro"].metrics["f1"] == pytest.approx(alone.metrics["f1"])
    assert by_level["pro"].metrics["roc_auc"] == pytest.approx(alone.metrics["roc_auc"])


def test_small_slices_report_none_with_the_reason(frame: pd.DataFrame) -> None:
    ev = evaluate_predictions(frame["y"], proba=frame["p"], slices=["plan"], slice_data=frame)
    team = next(s for s in ev.slices if s.level == "team")
    assert team.n_rows == 6
    assert all(v is None for v in team.metrics.values())
    assert team.notes["f1"] == "only 6 rows in this slice (fewer than 10)"
    relaxed = evaluate_predictions(
        frame["y"], proba=frame["p"], slices=["plan"], slice_data=frame, min_slice_rows=1
    )
    assert next(s for s in relaxed.slices if s.level == "team").metrics["accuracy"] is not None


def test_single_class_slice_does_not_crash() -> None:
    y = np.array([0] * 20 + [0, 1] * 10)
    p = np.where(y == 1, 0.8, 0.3)
    group = np.array(["all-negative"] * 20 + ["mixed"] * 20)
    ev = evaluate_predictions(y, proba=p, slices=["g"], slice_data={"g": group})
    negative = next(s for s in ev.slices if s.level == "all-negative")
    assert negative.metrics["roc_auc"] is None
    assert "only one class (0)" in negative.notes["roc_auc"]
    assert negative.metrics["recall"] is None
    assert negative.metrics["accuracy"] == 1.0
    mixed = next(s for s in ev.slices if s.level == "mixed")
    assert mixed.metrics["roc_auc"] == 1.0


def test_quantile_bins(frame: pd.DataFrame) -> None:
    ev = evaluate_predictions(
        frame["y"], proba=frame["p"], slices=[("tenure", 4)], slice_data=frame
    )
    assert [s.n_rows for s in ev.slices] == [50, 50, 50, 50]
    assert ev.slices[0].level.startswith("[0, ")
    assert ev.slices[-1].level.endswith("99.5]")


def test_given_edges_with_rows_outside_and_missing() -> None:
    values = np.array([-5, 0, 5, 12, 20, 24, 50, 72, 80, np.nan] * 3, dtype=float)
    y = np.tile([0.0, 1.0], 15)
    ev = evaluate_predictions(
        y,
        y + 0.5,
        task="regression",
        slices=[("tenure", [0, 12, 24, 72])],
        slice_data={"tenure": values},
        min_slice_rows=1,
    )
    counts = {s.level: s.n_rows for s in ev.slices}
    assert counts == {
        "< 0": 3,
        "[0, 12)": 6,
        "[12, 24)": 6,
        "[24, 72]": 9,
        "> 72": 3,
        "(missing)": 3,
    }
    assert ev.slices[1].metrics["mae"] == pytest.approx(0.5)


def test_constant_column_and_regression_single_row_slice() -> None:
    ev = evaluate_predictions(
        [1.0, 2.0, 3.0],
        [1.0, 2.0, 2.0],
        task="regression",
        slices=[("x", 3)],
        slice_data={"x": [7, 7, 7]},
        min_slice_rows=1,
    )
    assert [(s.level, s.n_rows) for s in ev.slices] == [("[7, 7]", 3)]
    single = evaluate_predictions(
        [1.0, 2.0],
        [1.0, 2.5],
        task="regression",
        slices=["g"],
        slice_data={"g": ["a", "b"]},
        min_slice_rows=1,
    )
    assert single.slices[0].metrics["r2"] is None
    assert "fewer than two rows" in single.slices[0].notes["r2"]


@pytest.mark.parametrize(
    ("slices", "message"),
    [
        (["nope"], "no column 'nope'"),
        ([("plan", 3)], "not numeric"),
        ([("tenure", 0)], "must be >= 1"),
        ([("tenure", [5, 1])], "increasing"),
        ([42], "invalid slice"),
    ],
)
def test_bad_slice_specs(frame: pd.DataFrame, slices: list[object], message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        evaluate_predictions(frame["y"], proba=frame["p"], slices=slices, slice_data=frame)  # type: ignore[arg-type]


def test_slicing_without_data_says_how_to_fix() -> None:
    with pytest.raises(EvaluationError, match="slice_data="):
        evaluate_predictions([0, 1], [0, 1], slices=["plan"])
