"""loopline predict over Ray: shards of the input scored in Ray workers give the output of
a local run (rows, order, values) and log every row; what Ray cannot do is refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from loopline.execute import Executor
from loopline.monitor.predictions import read_predictions
from loopline.store.stores import Stores
from loopline.trigger.batch import predict_file
from loopline.trigger.errors import BatchInputError, BatchOutputError

from .conftest import FOREST

pytestmark = pytest.mark.ray
REF = f"{FOREST}@production"


def test_shards_scored_in_ray_workers_give_the_local_output(
    forest_stores: Stores, ray_executor: Executor, tmp_path: Path, frame: Any
) -> None:
    df = frame(1_003, seed=11)
    df.to_parquet(tmp_path / "in.parquet", row_group_size=150)  # groups across chunks
    local = predict_file(
        forest_stores, REF, tmp_path / "in.parquet", tmp_path / "local.parquet", chunk_rows=100
    )
    sharded = predict_file(
        forest_stores,
        REF,
        tmp_path / "in.parquet",
        tmp_path / "ray.parquet",
        chunk_rows=100,
        executor=ray_executor,
    )
    assert (sharded.rows_total, sharded.rows_scored, sharded.chunks) == (1_003, 1_003, 11)
    assert sharded.path == local.path == "onnx"
    assert sharded.workers
    assert os.getpid() not in sharded.workers
    a = pq.read_table(tmp_path / "local.parquet")
    b = pq.read_table(tmp_path / "ray.parquet")
    assert a.schema == b.schema
    keep = [c for c in a.column_names if c != "request_id"]
    assert a.select(keep).equals(b.select(keep))  # same rows, order and values
    assert b["id"].to_pylist() == df["id"].tolist()
    # The same request ids as the local run but for the run's id; every row logged once.
    strip = [i.split("-", 2)[2] for i in b["request_id"].to_pylist()]
    assert strip == [i.split("-", 2)[2] for i in a["request_id"].to_pylist()]
    assert sharded.logged_rows == 1_003
    logged = read_predictions(forest_stores.objects, model=FOREST)
    assert logged.num_rows == 2 * 1_003
    mine = set(b["request_id"].to_pylist())
    rows = [
        r
        for r in zip(logged["request_id"].to_pylist(), logged["row"].to_pylist(), strict=True)
        if r[0] in mine
    ]
    assert sorted(rows) == sorted(
        zip(b["request_id"].to_pylist(), b["row"].to_pylist(), strict=True)
    )
    # The parts the workers wrote are gone.
    assert not list(forest_stores.objects.list("tmp/batch/"))


def test_a_shard_that_fails_leaves_no_output(
    forest_stores: Stores, ray_executor: Executor, tmp_path: Path, frame: Any
) -> None:
    df = frame(300, seed=12)
    df = df.drop(columns=["x2"])  # the model's column is missing: every shard fails
    df.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(BatchInputError, match="x2"):
        predict_file(
            forest_stores,
            REF,
            tmp_path / "in.parquet",
            tmp_path / "out.parquet",
            chunk_rows=50,
            executor=ray_executor,
        )
    assert not (tmp_path / "out.parquet").exists()
    assert not list(forest_stores.objects.list("tmp/batch/"))


class _FarCluster:
    """An executor whose workers run on other machines (nothing is submitted)."""

    name = "ray"
    parallelism = 4
    shares_memory = False
    single_machine = False

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("nothing may be submitted")


def test_a_cluster_of_other_machines_is_refused_with_local_files_and_stores(
    forest_stores: Stores, tmp_path: Path, frame: Any
) -> None:
    frame(10).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(BatchInputError, match="spans other machines") as err:
        predict_file(
            forest_stores,
            REF,
            tmp_path / "in.parquet",
            tmp_path / "out.parquet",
            executor=_FarCluster(),
        )  # type: ignore[arg-type]
    assert "metadata_url" in str(err.value)
    assert "artifacts_url" in str(err.value)


class _NearCluster(_FarCluster):
    """An executor on this machine (nothing is submitted)."""

    single_machine = True


def test_an_output_of_unknown_extension_is_refused_over_ray(
    forest_stores: Stores, tmp_path: Path, frame: Any
) -> None:
    frame(10).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(BatchOutputError, match="neither CSV nor Parquet"):
        predict_file(
            forest_stores,
            REF,
            tmp_path / "in.parquet",
            tmp_path / "out.json",
            executor=_NearCluster(),
        )  # type: ignore[arg-type]
    assert not (tmp_path / "out.json").exists()


def test_a_csv_input_is_refused_over_ray(forest_stores: Stores, tmp_path: Path, frame: Any) -> None:
    frame(10).to_csv(tmp_path / "in.csv", index=False)
    with pytest.raises(BatchInputError, match="only a Parquet input"):
        predict_file(
            forest_stores,
            REF,
            tmp_path / "in.csv",
            tmp_path / "out.parquet",
            executor=_FarCluster(),
        )  # type: ignore[arg-type]
