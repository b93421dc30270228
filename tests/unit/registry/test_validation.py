"""Fast validation of rows against a signature: canonical arrays and every problem listed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopline.registry import Signature
from loopline.registry.validation import (
    InputValidator,
    concat_columns,
    sample_rows,
    to_frame,
)


@pytest.fixture(scope="module")
def signature() -> Signature:
    X = pd.DataFrame(
        {
            "age": np.array([20, 30, 40], dtype="int64"),
            "income": [1.5, 2.5, np.nan],
            "plan": ["basic", "pro", "basic"],
            "active": [True, False, True],
            "region": pd.Categorical(["north", "south", "north"]),
            "when": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
        }
    )
    return Signature.infer(X)


def row(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "age": 31,
        "income": 2.0,
        "plan": "pro",
        "active": True,
        "region": "north",
        "when": "2024-05-01T10:00:00Z",
    }
    base.update(changes)
    return base


def test_records_become_canonical_arrays(signature: Signature) -> None:
    v = InputValidator(signature)
    result = v.validate_records([row(), row(age=45.0, income=None, plan="new-plan")])
    assert result.ok, result.problems
    cols = result.columns
    assert cols["age"].dtype == np.int64
    assert cols["age"].tolist() == [31, 45]
    assert np.isnan(cols["income"][1])  # the column is nullable
    assert cols["plan"].tolist() == ["pro", "new-plan"]  # strings are an open domain
    assert cols["active"].dtype == bool
    assert cols["when"].dtype == np.dtype("datetime64[ns]")
    frame = to_frame(signature, cols)
    assert list(frame.columns) == signature.columns
    assert isinstance(frame["region"].dtype, pd.CategoricalDtype)


def test_every_problem_has_row_column_value_expected(signature: Signature) -> None:
    v = InputValidator(signature)
    records = [
        row(age="old"),
        row(active="yes", region="west"),
        row(age=None, when="not a date"),
        {k: x for k, x in row(extra=1).items() if k != "plan"},
        [1, 2, 3],
    ]
    result = v.validate_records(records)
    got = {(p.row, p.column, p.problem) for p in result.problems}
    assert got >= {
        (0, "age", "wrong_type"),
        (1, "active", "wrong_type"),
        (1, "region", "out_of_domain"),
        (2, "age", "null"),
        (2, "when", "wrong_type"),
        (3, "plan", "missing_column"),
        (3, "extra", "unknown_column"),
        (4, None, "not_a_row"),
    }
    region = next(p for p in result.problems if p.problem == "out_of_domain")
    assert region.value == "west"
    assert "'north'" in region.expected
    assert all(
        set(p.to_dict()) == {"row", "column", "value", "expected", "problem"}
        for p in result.problems
    )
    assert "problems in the input" in result.summary()


def test_a_value_of_the_wrong_type_in_a_float_column_is_one_problem(
    signature: Signature,
) -> None:
    v = InputValidator(signature)
    records = [row(income=True), row(income="2.5"), row(income=10**400), row(income=float("inf"))]
    result = v.validate_records(records)
    got = [(p.row, p.column, p.problem, p.value) for p in result.problems]
    assert got == [
        (0, "income", "wrong_type", True),
        (1, "income", "wrong_type", "2.5"),
        (2, "income", "wrong_type", 10**400),
        (3, "income", "wrong_type", float("inf")),
    ]
    assert "finite" in result.problems[3].expected
    assert "finite" not in result.problems[0].expected


def test_columns_rows_and_tables(signature: Signature) -> None:
    v = InputValidator(signature)
    data = {k: [x, x] for k, x in row().items()}
    assert v.validate_columns(data).n_rows == 2
    bad = v.validate_columns({**data, "age": [1]})
    assert [p.problem for p in bad.problems] == ["length_mismatch"]
    names = list(row())
    assert v.validate_rows([list(row().values())], names).ok
    assert v.validate_rows([[1, 2]], names).problems[0].problem == "length_mismatch"
    csv_like = pa.table({k: [str(x)] for k, x in row().items()})
    assert v.validate_table(csv_like, text=True).ok
    frame = pd.DataFrame([row()])
    assert v.validate_table(frame).ok


def test_numpy_arrays_are_checked_by_dtype(signature: Signature) -> None:
    v = InputValidator(signature)
    data = {k: np.array([x]) for k, x in row().items()}
    data["age"] = np.array([2.0**70])  # not an int64
    data["income"] = np.array([np.inf])
    result = v.validate_columns(data)
    assert {(p.column, p.problem) for p in result.problems} == {
        ("age", "wrong_type"),
        ("income", "wrong_type"),
    }


def test_extra_columns_can_be_ignored_and_ranges_checked(signature: Signature) -> None:
    lenient = InputValidator(signature, extra_columns="ignore")
    result = lenient.validate_records([row(id=7)])
    assert result.ok
    assert result.ignored_columns == ("id",)
    strict = InputValidator(signature, check_ranges=True)
    out = strict.validate_records([row(age=99)])
    assert [(p.column, p.problem) for p in out.problems] == [("age", "out_of_domain")]


def test_all_float_signatures_take_the_matrix_path() -> None:
    sig = Signature.infer(pd.DataFrame({f"f{i}": [0.1, 0.2] for i in range(4)}))
    v = InputValidator(sig)
    result = v.validate_records([{f"f{i}": i for i in range(4)}, {f"f{i}": 1.5 for i in range(4)}])
    assert result.ok
    assert result.columns["f3"].tolist() == [3.0, 1.5]
    refused = v.validate_records([{f"f{i}": True for i in range(4)}])  # booleans are not numbers
    assert {p.problem for p in refused.problems} == {"wrong_type"}
    assert v.validate_rows([[1, 2, 3, 4]]).ok


def test_problems_are_capped(signature: Signature) -> None:
    v = InputValidator(signature, max_problems=5)
    result = v.validate_records([row(age="x") for _ in range(20)])
    assert len(result.problems) == 5
    assert result.more_problems == 15


def test_concat_and_sample_rows(signature: Signature) -> None:
    v = InputValidator(signature)
    a = v.validate_records([row()]).columns
    b = v.validate_records([row(income=None), row()]).columns
    merged = concat_columns([a, b], signature.columns)
    assert len(merged["age"]) == 3
    sample = sample_rows(signature, n=8)
    assert v.validate_columns(sample).ok
