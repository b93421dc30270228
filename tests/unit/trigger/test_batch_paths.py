"""Batch transform on the ONNX export, in parallel chunks, with the batch prediction log:
the same answers as the native model in one thread, the log read back exactly, a
tampered export refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loopline.monitor.predictions import read_predictions
from loopline.registry import Registry
from loopline.registry.errors import PackageIntegrityError
from loopline.registry.onnx_runtime import ONNX_FILE
from loopline.store.objects.memory import MemoryObjectStore
from loopline.store.stores import Stores
from loopline.trigger.batch import predict_file
from loopline.trigger.batchlog import BatchLogWriter, LoggedChunk
from loopline.trigger.scoring import load_for_batch

from .conftest import FOREST, make_frame


def _input(tmp_path: Path, frame: Any, n: int = 230) -> tuple[Path, pd.DataFrame]:
    df = frame(n, seed=5)
    path = tmp_path / "in.parquet"
    df.to_parquet(path, row_group_size=64)
    return path, df


def test_the_onnx_export_scores_like_the_native_model(
    forest_stores: Stores, forest: Any, tmp_path: Path, frame: Any
) -> None:
    path, df = _input(tmp_path, frame)
    fast = predict_file(
        forest_stores, f"{FOREST}@production", path, tmp_path / "onnx.parquet", chunk_rows=40
    )
    slow = predict_file(
        forest_stores,
        f"{FOREST}@production",
        path,
        tmp_path / "native.parquet",
        chunk_rows=40,
        native=True,
    )
    assert (fast.path, slow.path) == ("onnx", "native")
    a = pd.read_parquet(tmp_path / "onnx.parquet")
    b = pd.read_parquet(tmp_path / "native.parquet")
    assert list(a.columns) == list(b.columns)
    assert a["id"].tolist() == df["id"].tolist()
    proba = forest.predict_proba(df[["x1", "x2"]])
    np.testing.assert_allclose(a[["proba.no", "proba.yes"]].to_numpy(), proba, atol=1e-5)
    np.testing.assert_array_equal(b[["proba.no", "proba.yes"]].to_numpy(), proba)
    assert a["proba.yes"].dtype == np.float64
    # The class is read off the probabilities (one model call): the native class wherever
    # the vote is not a float32 tie.
    clear = np.abs(proba[:, 1] - proba[:, 0]) > 1e-5
    expected = forest.predict(df[["x1", "x2"]])
    assert (a["prediction"].to_numpy()[clear] == expected[clear]).all()
    assert b["prediction"].tolist() == expected.tolist()


def test_the_onnx_path_does_not_deserialize_the_native_model(forest_stores: Stores) -> None:
    loaded = load_for_batch(forest_stores, f"{FOREST}@production")
    assert loaded.model is None
    assert loaded.has_onnx
    assert loaded.classes_.tolist() == ["no", "yes"]
    native = load_for_batch(forest_stores, f"{FOREST}@production", native=True)
    assert native.model is not None


def test_a_tampered_onnx_export_is_refused(
    forest_stores: Stores, tmp_path: Path, frame: Any
) -> None:
    path, _ = _input(tmp_path, frame, 20)
    reg = Registry(forest_stores)
    entry = reg.manifest(f"{FOREST}@production").files[ONNX_FILE]
    key = forest_stores.cas.key_for(entry.sha256)
    data = bytearray(forest_stores.objects.get(key))
    data[len(data) // 2] ^= 0x01
    forest_stores.objects.put(key, bytes(data))
    with pytest.raises(PackageIntegrityError) as info:
        predict_file(forest_stores, f"{FOREST}@production", path, tmp_path / "out.parquet")
    assert info.value.file == ONNX_FILE
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize("native", [False, True])
def test_chunks_scored_in_threads_give_the_output_of_one_thread(
    forest_stores: Stores, tmp_path: Path, frame: Any, native: bool
) -> None:
    path, _ = _input(tmp_path, frame, 301)
    ref = f"{FOREST}@production"
    one = predict_file(
        forest_stores, ref, path, tmp_path / "one.parquet", chunk_rows=17, threads=1, native=native
    )
    many = predict_file(
        forest_stores, ref, path, tmp_path / "many.parquet", chunk_rows=17, threads=4, native=native
    )
    assert (one.chunks, many.chunks) == (18, 18)
    a = pq.read_table(tmp_path / "one.parquet")
    b = pq.read_table(tmp_path / "many.parquet")
    keep = [c for c in a.column_names if c != "request_id"]
    assert a.select(keep).equals(b.select(keep))
    # Request ids differ by run only; the chunk numbers are in file order.
    ids = b["request_id"].to_pylist()
    assert [i.rsplit("-", 1)[1] for i in ids] == [f"{r // 17:06d}" for r in range(301)]


def test_bad_rows_in_parallel_chunks_are_named_with_their_file_row(
    forest_stores: Stores, tmp_path: Path
) -> None:
    n = 90
    df = make_frame(n, seed=9)
    df["x1"] = df["x1"].astype(object)
    for row in (3, 41, 88):
        df.loc[row, "x1"] = f"bad{row}"
    df.astype({"x1": str}).to_csv(tmp_path / "in.csv", index=False)
    result = predict_file(
        forest_stores,
        f"{FOREST}@production",
        tmp_path / "in.csv",
        tmp_path / "out.parquet",
        chunk_rows=10,
        threads=3,
    )
    assert (result.rows_total, result.rows_scored, result.rows_invalid) == (n, n - 3, 3)
    side = pd.read_csv(tmp_path / "out.parquet.invalid.csv")
    assert side["row"].tolist() == [3, 41, 88]
    assert set(side["column"]) == {"x1"}


def test_the_batch_log_reads_back_exactly_with_the_log_types(
    forest_stores: Stores, tmp_path: Path, frame: Any
) -> None:
    path, df = _input(tmp_path, frame, 250)
    result = predict_file(
        forest_stores, f"{FOREST}@production", path, tmp_path / "out.parquet", chunk_rows=60
    )
    assert result.logged_rows == 250
    assert result.log_dropped_rows == 0
    logged = read_predictions(forest_stores.objects, model=FOREST)
    types = {f.name: f.type for f in logged.schema}
    assert types["request_id"] == pa.string()
    assert types["row"] == pa.int32()
    assert types["ts"] == pa.timestamp("us", tz="UTC")
    assert types["version"] == pa.int32()
    assert types["latency_ms"] == pa.float64()
    assert types["input.x1"] == pa.float64()
    out = pq.read_table(tmp_path / "out.parquet")
    out = out.set_column(out.schema.get_field_index("row"), "row", out["row"].cast(pa.int32()))
    joined = out.join(logged, keys=["request_id", "row"]).sort_by("id")
    assert joined.num_rows == 250
    # Inputs logged bit for bit, outputs as scored.
    order = np.argsort(df["id"].to_numpy())
    np.testing.assert_array_equal(joined["input.x1"].to_numpy(), df["x1"].to_numpy()[order])
    np.testing.assert_array_equal(joined["input.x2"].to_numpy(), df["x2"].to_numpy()[order])
    np.testing.assert_array_equal(
        joined["output.proba.yes"].to_numpy(), joined["proba.yes"].to_numpy()
    )
    assert set(logged["role"].to_pylist()) == {"batch"}
    assert len(set(logged["request_id"].to_pylist())) == 5  # one per chunk
    # The index knows every chunk, with its rows.
    from loopline.monitor.predictions import PredictionIndex

    found = PredictionIndex(forest_stores.db).lookup(set(logged["request_id"].to_pylist()))
    assert sorted(r.rows for r in found.values()) == [10, 60, 60, 60, 60]


class _FlakyStore(MemoryObjectStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail = 1

    def put(self, key: str, data: Any) -> int:
        if self.fail:
            self.fail -= 1
            raise OSError("disk full")
        return super().put(key, data)


def _chunk(i: int, n: int = 5) -> LoggedChunk:
    return LoggedChunk(
        model="m",
        version=1,
        request_id=f"batch-x-{i:06d}",
        rows=n,
        arrived=1_700_000_000.0 + i,
        latency_ms=1.5,
        inputs={"a": np.arange(n, dtype=np.float64) + i},
        outputs={"prediction": np.array(["p"] * n, dtype=object)},
    )


@pytest.mark.parametrize("wait", [True, False])
def test_a_failed_log_write_is_retried_without_logging_a_row_twice(wait: bool) -> None:
    store = _FlakyStore()
    writer = BatchLogWriter(store, flush_rows=5)
    writer.append(_chunk(0))
    assert writer.pending_rows == 5
    writer.flush(wait=wait)
    writer._wait_inflight(0)
    # The failed write's rows are pending again, counted once, beside the next chunk's.
    assert writer.pending_rows == 5
    writer.append(_chunk(1))
    assert writer.pending_rows == 10
    writer.close()
    assert writer.pending_rows == 0
    assert writer.stats.flush_errors == 1
    assert (writer.stats.written_rows, writer.stats.buffered_rows) == (10, 0)
    table = read_predictions(store, model="m")
    assert (
        sorted(table["request_id"].to_pylist()) == ["batch-x-000000"] * 5 + ["batch-x-000001"] * 5
    )
    assert table["input.a"].to_pylist() == [0.0, 1, 2, 3, 4, 1, 2, 3, 4, 5]


def test_a_log_buffer_that_cannot_be_written_drops_and_counts() -> None:
    store = _FlakyStore()
    store.fail = 100
    writer = BatchLogWriter(store, flush_rows=5, max_buffer_rows=10)
    for i in range(4):
        writer.append(_chunk(i))
        writer.flush()
    writer.close()
    assert (writer.stats.written_rows, writer.stats.dropped_rows) == (0, 10)
    assert writer.stats.buffered_rows == 10


def test_the_predict_command_says_which_model_ran(
    forest_stores: Stores, tmp_path: Path, frame: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from click.testing import CliRunner

    from loopline.cli.main import cli

    (tmp_path / "loopline.toml").write_text(
        f'metadata_url = "{forest_stores.settings.metadata_url}"\n'
        f'artifacts_url = "{forest_stores.settings.artifacts_url}"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOOPLINE_PROJECT_DIR", raising=False)
    frame(30).to_parquet(tmp_path / "in.parquet")
    ref = f"{FOREST}@production"
    fast = CliRunner().invoke(cli, ["predict", ref, "in.parquet", "a.parquet", "--json"])
    assert fast.exit_code == 0, fast.output
    assert json.loads(fast.output)["path"] == "onnx"
    args = ["predict", ref, "in.parquet", "b.parquet", "--native", "--threads", "1"]
    slow = CliRunner().invoke(cli, [*args, "--executor", "local"])
    assert slow.exit_code == 0, slow.output
    assert "native" in slow.output
    bad = CliRunner().invoke(cli, ["predict", ref, "in.parquet", "c.parquet", "--threads", "0"])
    assert bad.exit_code == 2
    assert "--threads" in bad.output


def test_a_pipeline_on_onnx_takes_the_class_the_graph_gives(
    stores: Stores, tmp_path: Path, frame: Any
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = make_frame(300, seed=4)
    y = np.where(X["x1"] - 0.2 * X["x2"] > -0.5, "up", "down")
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    reg = Registry(stores)
    mv = reg.register("pipe", model, sample=X.head(100), onnx=True)
    assert reg.manifest(mv).has_onnx, reg.manifest(mv).onnx
    df = frame(120, seed=6)
    df.to_parquet(tmp_path / "in.parquet")
    result = predict_file(stores, "pipe/1", tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert result.path == "onnx"
    out = pd.read_parquet(tmp_path / "out.parquet")
    proba = model.predict_proba(df[["x1", "x2"]])
    np.testing.assert_allclose(out[["proba.down", "proba.up"]].to_numpy(), proba, atol=1e-5)
    clear = np.abs(proba[:, 1] - proba[:, 0]) > 1e-5
    expected = model.predict(df[["x1", "x2"]])
    assert (out["prediction"].to_numpy()[clear] == expected[clear]).all()
