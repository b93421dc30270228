"""Signature inference from DataFrames, and its JSON form."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopline.registry import ColumnSpec, Signature
from loopline.registry.signature import MAX_OBSERVED_CATEGORIES


def test_infer_kinds_nullability_ranges_and_categories() -> None:
    X = pd.DataFrame(
        {
            "i": np.array([3, 1, 2], dtype="int32"),
            "ni": pd.array([1, None, 5], dtype="Int64"),
            "f": [0.5, np.nan, 2.5],
            "b": [True, False, True],
            "s": ["x", "y", None],
            "o": pd.Series(["a", "b", "a"], dtype=object),
            "c": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "mid", "hi"]),
            "d": pd.to_datetime(["2024-01-02", "2024-03-04", None]),
            "mixed": pd.Series([1, "a", 2.5], dtype=object),
        }
    )
    sig = Signature.infer(X)
    spec = {c.name: c for c in sig.inputs}
    assert sig.columns == list(X.columns)
    assert (spec["i"].kind, spec["i"].min, spec["i"].max, spec["i"].nullable) == (
        "integer",
        1,
        3,
        False,
    )
    assert (spec["ni"].kind, spec["ni"].nullable, spec["ni"].max) == ("integer", True, 5)
    assert (spec["f"].kind, spec["f"].nullable, spec["f"].min, spec["f"].max) == (
        "float",
        True,
        0.5,
        2.5,
    )
    assert spec["b"].kind == "boolean"
    assert spec["s"].categories is None  # observed values are not a closed set
    assert (spec["s"].kind, spec["s"].nullable, spec["s"].observed) == (
        "string",
        True,
        ("x", "y"),
    )
    assert (spec["o"].kind, spec["o"].observed) == ("string", ("a", "b"))
    assert (spec["c"].kind, spec["c"].categories) == ("category", ("lo", "mid", "hi"))
    assert spec["d"].kind == "datetime"
    assert spec["d"].min == "2024-01-02T00:00:00"
    assert spec["mixed"].kind == "object"
    assert sig.output.kind == "unknown"
    assert isinstance(spec["i"].min, int)


def test_round_trips_through_json() -> None:
    X = pd.DataFrame({"a": [1.0, 2.0], "s": ["u", "v"], "c": pd.Categorical([1, 2])})
    sig = Signature.infer(X, y=np.array(["no", "yes"]))
    text = json.dumps(sig.to_dict())
    back = Signature.from_dict(json.loads(text))
    assert back == sig
    assert back.column("c").categories == (1, 2)
    assert back.column("s").observed == ("u", "v")
    assert back.output.classes == ("no", "yes")
    assert back.output.proba_columns == ("proba_no", "proba_yes")
    with pytest.raises(KeyError):
        back.column("nope")
    assert ColumnSpec.from_dict(sig.inputs[0].to_dict()) == sig.inputs[0]


def test_output_from_model_or_targets() -> None:
    class FakeClassifier:
        classes_ = np.array([0, 1, 2])

        def predict_proba(self, X: Any) -> Any:
            return X

    X = pd.DataFrame({"a": [1, 2, 3]})
    out = Signature.infer(X, model=FakeClassifier()).output
    assert (out.kind, out.classes, out.dtype) == ("classifier", (0, 1, 2), "int64")
    assert Signature.infer(X, y=np.array([0.5, 1.5, 2.0])).output.kind == "regressor"
    assert Signature.infer(X, y=[1, 0, 1]).output.classes == (0, 1)


def test_many_distinct_strings_record_no_categories() -> None:
    X = pd.DataFrame({"id": [f"u{i}" for i in range(MAX_OBSERVED_CATEGORIES + 1)]})
    assert Signature.infer(X).inputs[0].observed is None


def test_infer_needs_a_dataframe() -> None:
    with pytest.raises(TypeError, match="DataFrame"):
        Signature.infer(np.zeros((2, 2)))
