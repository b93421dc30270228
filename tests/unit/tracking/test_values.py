"""What may be logged, and how param values become text."""

from __future__ import annotations

import enum
import math
from decimal import Decimal
from pathlib import Path

import pytest

from loopline.tracking.errors import InvalidMetricError, TrackingError
from loopline.tracking.values import check_key, metric_step, metric_value, param_text


class Color(enum.Enum):
    RED = 1


class FakeEstimator:
    def get_params(self, deep: bool = True) -> dict[str, object]:
        return {}

    def fit(self, X: object, y: object = None) -> FakeEstimator:
        return self


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("rf", "rf"),
        (3, "3"),
        (0.1, "0.1"),
        (1e-10, "1e-10"),
        (True, "True"),
        (None, "None"),
        (Color.RED, "RED"),
        (Path("/data/x.csv"), "/data/x.csv"),
        ([1, "a", None], "[1, 'a', None]"),
        ((1,), "(1,)"),
        ({"b": 1.5}, "{'b': 1.5}"),
        ({"y", "x"}, "{'x', 'y'}"),
        (FakeEstimator(), "FakeEstimator"),
        ([("scale", FakeEstimator())], "[('scale', FakeEstimator)]"),
        (FakeEstimator, "FakeEstimator"),
        (math.sqrt, "sqrt"),
        (Decimal("1.5"), "1.5"),
    ],
)
def test_param_text(value: object, text: str) -> None:
    assert param_text(value) == text


def test_metric_values() -> None:
    assert metric_value("k", 1) == 1.0
    assert metric_value("k", True) == 1.0
    assert metric_value("k", Decimal("0.25")) == 0.25
    assert math.isnan(metric_value("k", float("nan")))
    for bad in ("1", None, [1], object(), complex(1, 2), 10**400):
        with pytest.raises(InvalidMetricError) as info:
            metric_value("k", bad)
        assert info.value.key == "k"
        assert info.value.value is bad


def test_steps() -> None:
    assert metric_step("k", 3) == 3
    for bad in (1.0, True, "1", 2**63):
        with pytest.raises(InvalidMetricError):
            metric_step("k", bad)


@pytest.mark.parametrize("key", ["", " x", "x ", "a\nb", "x" * 256, 3])
def test_bad_keys(key: object) -> None:
    with pytest.raises(TrackingError):
        check_key("param", key)
    with pytest.raises(InvalidMetricError):
        check_key("metric", key)
