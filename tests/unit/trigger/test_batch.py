"""Batch transform: same answers as the model in process, bad rows aside, atomic output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopline.monitor.predictions import read_predictions
from loopline.registry import Registry
from loopline.store.stores import Stores
from loopline.trigger import batch
from loopline.trigger.batch import predict_file
from loopline.trigger.errors import BatchInputError, BatchOutputError
from loopline.trigger.scoring import predicts_argmax

REF = "churn@production"


def expected(stores: Stores, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    loaded = Registry(stores).load(REF)
    X = df[["x1", "x2"]]
    return np.asarray(loaded.predict(X)), np.asarray(loaded.predict_proba(X))


def test_csv_to_parquet_matches_the_model_and_is_logged(
    stores: Stores, tmp_path: Path, frame: Any
) -> None:
    df = frame(120)
    df.to_csv(tmp_path / "in.csv", index=False)
    seen: list[tuple[int, int | None]] = []
    result = predict_file(
        stores,
        REF,
        tmp_path / "in.csv",
        tmp_path / "out.parquet",
        chunk_rows=50,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert (result.rows_total, result.rows_scored, result.rows_invalid) == (120, 120, 0)
    assert result.chunks == 3
    assert result.invalid_path is None
    assert seen == [(0, 120), (50, 120), (100, 120), (120, 120)]  # CSV lines, counted first
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == [
        "id",
        "x1",
        "x2",
        "prediction",
        "proba.no",
        "proba.yes",
        "request_id",
        "row",
    ]
    labels, proba = expected(stores, df)
    assert out["id"].tolist() == df["id"].tolist()
    assert out["prediction"].tolist() == labels.tolist()
    np.testing.assert_allclose(out[["proba.no", "proba.yes"]].to_numpy(), proba)
    logged = read_predictions(stores.objects, model="churn")
    assert logged.num_rows == 120
    assert result.logged_rows == 120
    assert set(logged["role"].to_pylist()) == {"batch"}
    assert len(set(logged["request_id"].to_pylist())) == 3  # one request id per chunk
    # Each output row names its prediction log row: labels join without matching by hand.
    keys = set(zip(out["request_id"], out["row"], strict=True))
    assert keys == set(
        zip(logged["request_id"].to_pylist(), logged["row"].to_pylist(), strict=True)
    )
    assert out.groupby("request_id")["row"].apply(list).tolist() == [
        list(range(50)),
        list(range(50)),
        list(range(20)),
    ]
    np.testing.assert_allclose(sorted(logged["output.proba.yes"].to_pylist()), sorted(proba[:, 1]))


def test_pass_through_columns_keep_their_types_and_reading_is_reported(
    stores: Stores, tmp_path: Path
) -> None:
    rows = ["key,label,flag,note,x1,x2"]
    rows += [f"{i},{i % 2},{'true' if i % 3 else 'false'},n{i},0.{i},{i % 10}" for i in range(40)]
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    read: list[tuple[int, int | None]] = []
    result = predict_file(
        stores,
        REF,
        tmp_path / "in.csv",
        tmp_path / "out.csv",
        chunk_rows=16,
        log=False,
        reading=lambda done, total: read.append((done, total)),
    )
    size = (tmp_path / "in.csv").stat().st_size
    assert read[-1] == (size, size)
    assert result.total_seconds >= result.seconds > 0
    import pyarrow.csv as pacsv

    types = {f.name: str(f.type) for f in pacsv.read_csv(tmp_path / "out.csv").schema}
    assert (types["key"], types["label"], types["flag"], types["note"]) == (
        "int64",
        "int64",
        "bool",
        "string",
    )
    assert "request_id" not in types  # nothing logged, nothing to join


def test_a_pass_through_column_that_changes_type_later_is_named(
    stores: Stores, tmp_path: Path
) -> None:
    rows = ["key,x1,x2"] + [f"{i},0.5,1" for i in range(20)] + ["k20,0.5,1"]
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(BatchInputError, match=r"column 'key' reads as int64 .* row 20 holds 'k20'"):
        predict_file(stores, REF, tmp_path / "in.csv", tmp_path / "out.csv", chunk_rows=10)
    assert not (tmp_path / "out.csv").exists()


def test_tiny_chunks_give_the_same_output_as_one_chunk(
    stores: Stores, tmp_path: Path, frame: Any
) -> None:
    df = frame(53)
    df.to_parquet(tmp_path / "in.parquet", row_group_size=10)
    one = predict_file(stores, REF, tmp_path / "in.parquet", tmp_path / "one.csv", log=False)
    many = predict_file(
        stores, REF, tmp_path / "in.parquet", tmp_path / "many.csv", chunk_rows=7, log=False
    )
    assert (one.chunks, many.chunks) == (1, 8)
    a = pd.read_csv(tmp_path / "one.csv")
    b = pd.read_csv(tmp_path / "many.csv")
    pd.testing.assert_frame_equal(a, b)
    labels, proba = expected(stores, df)
    assert b["prediction"].tolist() == labels.tolist()
    np.testing.assert_allclose(b["proba.yes"].to_numpy(), proba[:, 1])


def test_bad_rows_go_to_the_side_file_and_are_not_scored(stores: Stores, tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(
        "id,x1,x2\na,0.5,3\nb,abc,3\nc,1.5,\nd,-0.2,7\ne,0.1,2.5\n", encoding="utf-8"
    )
    result = predict_file(stores, REF, tmp_path / "in.csv", tmp_path / "out.parquet", chunk_rows=2)
    assert (result.rows_total, result.rows_scored, result.rows_invalid) == (5, 2, 3)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["id"].tolist() == ["a", "d"]
    side = pd.read_csv(tmp_path / "out.parquet.invalid.csv", keep_default_na=False)
    assert list(side.columns) == ["row", "column", "value", "expected", "problem"]
    assert side["row"].tolist() == [1, 2, 4]
    assert side["column"].tolist() == ["x1", "x2", "x2"]
    assert side["value"].tolist()[0] == "abc"
    assert side["problem"].tolist()[1] == "null"
    assert result.invalid_path == str(tmp_path / "out.parquet.invalid.csv")
    assert read_predictions(stores.objects, model="churn").num_rows == 2


def test_a_failure_mid_way_leaves_no_output(
    stores: Stores, tmp_path: Path, frame: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame(30).to_csv(tmp_path / "in.csv", index=False)
    real = batch.ChunkScorer._predict
    calls = []

    def flaky(self: batch.ChunkScorer, columns: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("model exploded")
        return real(self, columns)

    monkeypatch.setattr(batch.ChunkScorer, "_predict", flaky)
    with pytest.raises(RuntimeError, match="exploded"):
        predict_file(stores, REF, tmp_path / "in.csv", tmp_path / "out.parquet", chunk_rows=10)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("out", ".out"))) == []


def test_a_missing_column_stops_the_run(stores: Stores, tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id,x1\na,0.5\n", encoding="utf-8")
    with pytest.raises(BatchInputError, match="x2"):
        predict_file(stores, REF, tmp_path / "in.csv", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_an_unclosed_quote_stops_the_run_with_its_line(stores: Stores, tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text('x1,x2\n1,"2\n3,4\n5,6\n', encoding="utf-8")
    with pytest.raises(BatchInputError, match="line 2") as err:
        predict_file(stores, REF, tmp_path / "in.csv", tmp_path / "out.csv")
    assert "never closed" in str(err.value)
    assert not (tmp_path / "out.csv").exists()


def test_unknown_extensions_are_refused(stores: Stores, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x1,x2\n1,2\n", encoding="utf-8")
    with pytest.raises(BatchInputError, match="neither CSV nor Parquet"):
        predict_file(stores, REF, tmp_path / "in.txt", tmp_path / "out.csv")


def test_an_output_of_unknown_extension_is_refused_before_scoring(
    stores: Stores, tmp_path: Path
) -> None:
    (tmp_path / "in.csv").write_text("x1,x2\n1,2\n", encoding="utf-8")
    with pytest.raises(BatchOutputError, match="neither CSV nor Parquet") as err:
        predict_file(stores, REF, tmp_path / "in.csv", tmp_path / "out.json")
    assert "out.json" in str(err.value)
    assert "*.parquet or *.csv" in str(err.value)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("out")]


def test_the_predict_command_prints_a_json_summary(
    stores: Stores, tmp_path: Path, frame: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from click.testing import CliRunner

    from loopline.cli.main import cli

    (tmp_path / "loopline.toml").write_text(
        f'metadata_url = "{stores.settings.metadata_url}"\n'
        f'artifacts_url = "{stores.settings.artifacts_url}"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOOPLINE_PROJECT_DIR", raising=False)
    frame(9).to_csv(tmp_path / "in.csv", index=False)
    result = CliRunner().invoke(cli, ["predict", REF, "in.csv", "out.csv", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["rows_scored"], summary["rows_invalid"]) == (9, 0)
    assert len(pd.read_csv(tmp_path / "out.csv")) == 9


def test_the_class_is_read_off_the_probabilities_only_for_argmax_classifiers() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    assert predicts_argmax(make_pipeline(StandardScaler(), LogisticRegression()))
    assert predicts_argmax(LogisticRegression())
    # SVC's predict follows its decision function, not its Platt probabilities.
    assert not predicts_argmax(SVC(probability=True))
    assert not predicts_argmax(make_pipeline(StandardScaler(), SVC(probability=True)))
