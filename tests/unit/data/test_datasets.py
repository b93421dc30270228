"""Datasets over real stores (SQLite and PostgreSQL; local files and S3): versions by content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopline.data import Datasets
from loopline.data.errors import (
    DataArgumentError,
    DatasetNotFoundError,
    DatasetVersionNotFoundError,
    MixedTypesError,
    UnterminatedQuoteError,
    ValidationFailedError,
)
from loopline.data.schema import DatasetSchema
from loopline.data.validate import ValidationReport
from loopline.errors import IntegrityError
from loopline.store.db.events import list_events
from loopline.store.stores import Stores


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 300
    return pd.DataFrame(
        {
            "tenure": rng.integers(1, 72, n),
            "charges": rng.normal(70, 20, n).round(2),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "churned": rng.random(n) < 0.25,
        }
    )


def test_same_data_twice_is_one_version_and_a_change_is_a_new_one(
    stores: Stores, frame: pd.DataFrame, tmp_path: Path
) -> None:
    ds = Datasets(stores)
    v1 = ds.add("churn", frame, description="customers")
    assert (v1.version, v1.created, v1.rows, v1.columns) == (1, True, 300, 4)
    assert v1.validation["schema_inferred"] is True
    again = ds.add("churn", frame.copy())
    assert (again.version, again.created, again.digest) == (1, False, v1.digest)
    # The same content through another door (a CSV file) is the same version, too.
    frame.to_csv(tmp_path / "churn.csv", index=False)
    assert ds.add("churn", tmp_path / "churn.csv").version == 1

    changed = frame.copy()
    changed.loc[123, "charges"] += 0.01
    v2 = ds.add("churn", changed)
    assert (v2.version, v2.created) == (2, True)
    assert v2.digest != v1.digest
    assert [v.version for v in ds.versions("churn")] == [1, 2]
    assert ds.get("churn").version == 2
    assert ds.get("churn", 1).digest == v1.digest
    assert ds.get("churn", v1.digest[:8]).version == 1
    assert ds.get("churn", "latest").version == 2

    loaded = ds.load("churn", 1)
    pd.testing.assert_frame_equal(loaded, frame, check_dtype=False)
    assert ds.load("churn").loc[123, "charges"] == changed.loc[123, "charges"]
    assert ds.load_table("churn", 2, columns=["plan"]).column_names == ["plan"]

    [info] = ds.list()
    assert (info.name, info.versions, info.current_version, info.rows) == ("churn", 2, 2, 300)
    assert info.description == "customers"
    with stores.db.read() as conn:
        kinds = [e.subject for e in list_events(conn, kind="dataset.add")]
    assert kinds == ["churn@2", "churn@1"]


def test_a_description_describes_its_version(stores: Stores, frame: pd.DataFrame) -> None:
    ds = Datasets(stores)
    ds.add("churn", frame, description="January customers")
    changed = frame.copy()
    changed.loc[0, "charges"] += 1.0
    ds.add("churn", changed, description="February customers")
    ds.add("churn", changed.iloc[:200])  # no description: none for this version
    assert [v.description for v in ds.versions("churn")] == [
        "January customers",
        "February customers",
        None,
    ]
    assert ds.info("churn").description == "January customers"  # the dataset keeps its own
    # The same content again with a description describes that version; nothing new.
    again = ds.add("churn", frame, description="January customers, all regions")
    assert (again.version, again.created) == (1, False)
    assert again.description == "January customers, all regions"
    assert ds.get("churn", 1).description == "January customers, all regions"
    assert ds.get("churn", 2).description == "February customers"


def test_a_schema_violation_is_refused_with_the_report(stores: Stores, frame: pd.DataFrame) -> None:
    ds = Datasets(stores)
    ds.add("churn", frame)
    bad = frame.drop(columns=["churned"])
    bad["tenure"] = bad["tenure"].astype(float)
    bad.loc[[5, 8], "tenure"] = np.nan
    with pytest.raises(ValidationFailedError) as info:
        ds.add("churn", bad)
    err = info.value
    assert err.dataset == "churn"
    report = err.report
    assert isinstance(report, ValidationReport)
    rules = {(f.rule, f.column): f for f in report.errors}
    assert rules[("not_null", "tenure")].examples == [(5, None), (8, None)]
    assert ("missing_column", "churned") in rules
    assert "column 'tenure' has 2 null(s) (rows 5, 8)" in str(err)
    assert "--force" in str(err)
    assert [v.version for v in ds.versions("churn")] == [1]  # nothing stored

    forced = ds.add("churn", bad, allow_invalid=True)
    assert forced.version == 2
    assert forced.validation["ok"] is False
    assert forced.validation["errors"] == 2
    # The schema stays the first one: validating the latest version shows the errors.
    assert not ds.validate("churn").ok
    assert ds.validate("churn", frame).ok


def test_warnings_do_not_block(stores: Stores, frame: pd.DataFrame) -> None:
    ds = Datasets(stores)
    ds.add("churn", frame)
    drifted = frame.copy()
    drifted.loc[0, "plan"] = "enterprise"
    drifted.loc[1, "charges"] = 10_000.0
    v = ds.add("churn", drifted)
    assert v.created
    rules = sorted(f["rule"] for f in v.validation["findings"])
    assert rules == ["above_max", "unseen_category"]


def test_not_found_errors_list_what_exists(stores: Stores, frame: pd.DataFrame) -> None:
    ds = Datasets(stores)
    with pytest.raises(DatasetNotFoundError) as info:
        ds.get("churn")
    assert "there are no datasets yet" in str(info.value)
    assert "loopline data add churn" in str(info.value)
    ds.add("churn", frame)
    ds.add("iris", frame.head(10))
    with pytest.raises(DatasetNotFoundError) as info:
        ds.load("chrun")
    assert info.value.known == ["churn", "iris"]
    assert "Did you mean 'churn'?" in str(info.value)
    assert "loopline data ls" in str(info.value)
    with pytest.raises(DatasetVersionNotFoundError, match="has no version 4; it has version 1"):
        ds.get("churn", 4)
    with pytest.raises(DataArgumentError, match="not a version"):
        ds.get("churn", "v1")
    with pytest.raises(DataArgumentError, match="no column 'nope'"):
        ds.load("churn", columns=["nope"])
    with pytest.raises(DataArgumentError, match="invalid dataset name"):
        ds.add("bad name", frame)


def test_a_csv_with_a_quote_never_closed_is_refused_and_nothing_is_stored(
    stores: Stores, tmp_path: Path
) -> None:
    ds = Datasets(stores)
    broken = tmp_path / "broken.csv"
    broken.write_text('a,b\n1,"oops\n2,3\n4,5\n')
    with pytest.raises(UnterminatedQuoteError) as info:
        ds.add("t", broken)
    assert info.value.line == 2
    assert ds.list() == []
    assert list(stores.cas.digests()) == []
    good = tmp_path / "good.csv"
    good.write_text("a,b\n1,x\n2,y\n")
    ds.add("t", good)
    with pytest.raises(UnterminatedQuoteError, match="line 2"):
        ds.validate("t", broken)
    # The limit on quoted fields reaches the reader, both ways.
    long = tmp_path / "long.csv"
    long.write_text('a,b\n1,"' + "z" * 500 + '"\n')
    with pytest.raises(UnterminatedQuoteError, match="more than 100 bytes"):
        ds.add("t", long, max_field_bytes=100)
    with pytest.raises(UnterminatedQuoteError):
        ds.validate("t", long, max_field_bytes=100)
    assert ds.add("t", long).version == 2


def test_files_are_staged_in_a_folder_that_is_removed(
    stores: Stores, frame: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    ds = Datasets(stores)
    frame.to_csv(tmp_path / "churn.csv", index=False)
    ds.add("churn", tmp_path / "churn.csv")
    assert ds.validate("churn", tmp_path / "churn.csv").ok
    mixed = frame.astype({"charges": object})
    mixed.loc[299, "charges"] = "n/a?"
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    with pytest.raises(MixedTypesError):
        ds.add("churn", tmp_path / "mixed.csv")
    assert list(scratch.iterdir()) == []


def test_the_same_content_from_any_source_is_the_same_version_and_parquet(
    stores: Stores, frame: pd.DataFrame, tmp_path: Path
) -> None:
    ds = Datasets(stores)
    frame.to_csv(tmp_path / "churn.csv", index=False)
    frame.to_parquet(tmp_path / "churn.parquet", row_group_size=7)
    versions = [
        ds.add("from_csv", tmp_path / "churn.csv"),
        ds.add("from_parquet", tmp_path / "churn.parquet"),
        ds.add("from_frame", frame),
    ]
    assert len({v.digest for v in versions}) == 1
    assert len({v.parquet_digest for v in versions}) == 1
    assert len({v.profile_digest for v in versions}) == 1
    pd.testing.assert_frame_equal(ds.load("from_csv"), frame, check_dtype=False)


def test_profile_and_schema_are_kept(stores: Stores, frame: pd.DataFrame) -> None:
    ds = Datasets(stores)
    v = ds.add("churn", frame)
    profile = ds.profile("churn")
    assert profile.rows == 300
    tenure = profile.column("tenure").numeric
    assert tenure is not None
    assert tenure.min == frame.tenure.min()
    assert stores.cas.exists(v.profile_digest)
    schema = ds.schema("churn")
    assert schema.column("plan").categories == ["basic", "plus", "pro"]
    loose = DatasetSchema(schema.columns, severity={"unseen_category": "info"})
    ds.set_schema("churn", loose)
    assert ds.schema("churn") == loose


def test_a_corrupted_parquet_blob_is_detected(stores: Stores, frame: pd.DataFrame) -> None:
    ds = Datasets(stores)
    v = ds.add("churn", frame)
    key = stores.cas.key_for(v.parquet_digest)
    stores.objects.put(key, stores.objects.get(key)[:-1] + b"!")
    with pytest.raises(IntegrityError):
        ds.load("churn")


@pytest.mark.s3
def test_adding_the_same_data_again_repairs_its_blobs(stores: Stores, frame: pd.DataFrame) -> None:
    ds = Datasets(stores)
    first = ds.add("churn", frame)
    for digest in (first.parquet_digest, first.profile_digest):
        key = stores.cas.key_for(digest)
        data = stores.objects.get(key)
        stores.objects.put(key, data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit
    with pytest.raises(IntegrityError):
        ds.load("churn")
    again = ds.add("churn", frame)
    assert again.created is False
    assert again.version == first.version
    loaded = ds.load("churn")
    assert list(loaded.columns) == list(frame.columns)
    assert len(loaded) == len(frame)
    stores.cas.verify(again.parquet_digest)
    stores.cas.verify(again.profile_digest)
    stores.objects.delete(stores.cas.key_for(again.parquet_digest))
    assert ds.add("churn", frame).version == first.version
    stores.cas.verify(ds.get("churn").parquet_digest)


def test_add_and_load_on_s3(s3_stores: Stores, frame: pd.DataFrame) -> None:
    ds = Datasets(s3_stores)
    v = ds.add("churn", frame)
    assert v.created
    assert s3_stores.objects.url.startswith("s3://")
    assert s3_stores.cas.exists(v.parquet_digest)
    pd.testing.assert_frame_equal(ds.load("churn"), frame, check_dtype=False)
    assert not ds.add("churn", frame).created
    split = ds.split("churn", seed=3)
    assert len(split.train) + len(split.validation) + len(split.test) == len(frame)


def test_module_level_add_and_load_use_the_project(
    tmp_path: Path, frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    import loopline.data
    from loopline.project.create import init_project

    for key in list(os.environ):
        if key.startswith("LOOPLINE_"):
            monkeypatch.delenv(key)
    init_project(tmp_path / "proj")
    v = loopline.data.add("churn", frame, project_dir=tmp_path / "proj", description="d")
    assert (v.ref, v.created) == ("churn@1", True)
    monkeypatch.chdir(tmp_path / "proj")
    pd.testing.assert_frame_equal(loopline.data.load("churn"), frame, check_dtype=False)
