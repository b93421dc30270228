"""Schema inference and validation reports: which column, which rule, how many rows, where."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopline.data.errors import DataArgumentError
from loopline.data.ingest import read_source
from loopline.data.profile import compute_profile
from loopline.data.schema import ColumnSchema, DatasetSchema, infer_schema
from loopline.data.validate import ValidationReport, validate_table


def canonical(frame: pd.DataFrame) -> pa.Table:
    return read_source(frame).table


@pytest.fixture
def base() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 100
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50, 5, n),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "name": [f"customer {i}" for i in range(n)],
            "note": [None if i % 10 == 0 else "x" for i in range(n)],
            "active": rng.random(n) < 0.5,
        }
    )


@pytest.fixture
def schema(base: pd.DataFrame) -> DatasetSchema:
    table = canonical(base)
    return infer_schema(table, compute_profile(table))


def by_rule(report: ValidationReport) -> dict[tuple[str, str | None], object]:
    return {(f.rule, f.column): f for f in report.findings}


def test_inferred_schema(schema: DatasetSchema, base: pd.DataFrame) -> None:
    cols = {c.name: c for c in schema.columns}
    assert cols["age"].dtype == "integer"
    assert (cols["age"].min, cols["age"].max) == (base.age.min(), base.age.max())
    assert cols["age"].nullable is False
    assert cols["plan"].categories == ["basic", "plus", "pro"]
    assert cols["name"].categories is None  # every value distinct: not categorical
    assert cols["note"].nullable is True
    assert cols["active"].dtype == "boolean"
    assert DatasetSchema.from_dict(schema.to_dict()) == schema
    assert schema.fingerprint() == DatasetSchema.from_dict(schema.to_dict()).fingerprint()


def test_the_same_data_is_valid(schema: DatasetSchema, base: pd.DataFrame) -> None:
    report = validate_table(canonical(base), schema, dataset="d")
    assert report.ok
    assert report.findings == []
    assert report.summary().startswith("valid: 0 error(s), 0 warning(s)")


def test_violations_name_column_rule_rows_and_values(
    schema: DatasetSchema, base: pd.DataFrame
) -> None:
    bad = base.drop(columns=["active"]).assign(extra=1)
    bad["age"] = bad["age"].astype(float)
    bad.loc[[4, 9], "age"] = np.nan
    bad.loc[7, "income"] = 1e6
    bad.loc[[2, 3], "income"] = -1.0
    bad.loc[11, "plan"] = "gold"
    bad["name"] = np.arange(len(bad))
    report = validate_table(canonical(bad), schema, dataset="customers")
    found = by_rule(report)
    assert not report.ok
    missing = found[("missing_column", "active")]
    assert missing.severity == "error"
    assert found[("unexpected_column", "extra")].severity == "warning"
    nulls = found[("not_null", "age")]
    assert (nulls.severity, nulls.count, nulls.examples) == ("error", 2, [(4, None), (9, None)])
    assert "rows 4, 9" in nulls.message
    dtype = found[("dtype", "name")]
    assert dtype.severity == "error"
    assert dtype.message == "column 'name' holds integers, expected text"
    above = found[("above_max", "income")]
    assert (above.severity, above.count, above.examples) == ("warning", 1, [(7, 1e6)])
    below = found[("below_min", "income")]
    assert (below.count, [r for r, _ in below.examples]) == (2, [2, 3])
    unseen = found[("unseen_category", "plan")]
    assert (unseen.severity, unseen.count, unseen.examples) == ("warning", 1, [(11, "gold")])
    assert "'gold'" in unseen.message
    assert {f.rule for f in report.errors} == {"missing_column", "not_null", "dtype"}
    d = report.to_dict()
    assert d["ok"] is False
    assert d["errors"] == 3
    assert ValidationReport.from_dict(d).to_dict() == d
    assert "invalid: 3 error(s)" in report.summary()


def test_integer_and_float_compatibility(schema: DatasetSchema, base: pd.DataFrame) -> None:
    as_float = base.assign(age=base["age"].astype(float))  # whole numbers: fine
    assert validate_table(canonical(as_float), schema).ok
    fractional = base.assign(age=base["age"] + 0.5)
    report = validate_table(canonical(fractional), schema)
    assert [f.rule for f in report.errors] == ["dtype"]
    float_schema = schema.with_column(ColumnSchema("income", "float", nullable=False))
    ints = base.assign(income=base["income"].round().astype(int))
    assert validate_table(canonical(ints), float_schema).ok


def test_tolerance_severity_and_duplicates(schema: DatasetSchema, base: pd.DataFrame) -> None:
    spread = base.copy()
    hi = schema.column("income").max
    lo = schema.column("income").min
    assert hi is not None
    assert lo is not None
    spread.loc[0, "income"] = hi + 0.05 * (hi - lo)
    assert by_rule(validate_table(canonical(spread), schema)).get(("above_max", "income"))
    tolerant = DatasetSchema(schema.columns, range_tolerance=0.1)
    assert validate_table(canonical(spread), tolerant).findings == []
    strict = DatasetSchema(schema.columns, severity={"above_max": "error"})
    report = validate_table(canonical(spread), strict)
    assert not report.ok
    doubled = pd.concat([base, base.iloc[[3, 5]]], ignore_index=True)
    report = validate_table(canonical(doubled), schema, check_duplicates=True)
    dup = by_rule(report)[("duplicate_rows", None)]
    assert (dup.count, [r for r, _ in dup.examples]) == (2, [100, 101])
    assert report.ok  # a warning


def test_bad_schema_settings_are_refused(schema: DatasetSchema) -> None:
    with pytest.raises(DataArgumentError, match="range_tolerance"):
        DatasetSchema.from_dict({**schema.to_dict(), "range_tolerance": -1})
    with pytest.raises(DataArgumentError, match="unknown validation rule 'nope'"):
        DatasetSchema.from_dict({**schema.to_dict(), "severity": {"nope": "error"}})
    with pytest.raises(DataArgumentError, match="severity of 'dtype'"):
        DatasetSchema.from_dict({**schema.to_dict(), "severity": {"dtype": "fatal"}})
