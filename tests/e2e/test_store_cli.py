"""``loopline store verify`` as a user runs it: subprocesses in a project made by
``loopline init``."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from e2e.cli import init, run

CSV = "tenure,plan,churned\n" + "".join(
    f"{i % 70 + 1},{['basic', 'plus', 'pro'][i % 3]},{i % 4 == 0}\n" for i in range(300)
)
#: A pipeline of two steps whose outputs land in the content store.
PIPELINE = """
import pandas as pd
from loopline.pipeline import Pipeline, step

@step
def make_data(n_rows: int = 300) -> pd.DataFrame:
    return pd.DataFrame({"tenure": range(n_rows), "plan": ["basic", "pro", "plus"] * (n_rows // 3)})

@step
def by_plan(make_data: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in make_data.groupby("plan")["tenure"].sum().items()}

pipeline = Pipeline("toy", [make_data, by_plan])
"""


def verify(project: Path, *extra: str, code: int = 0) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(
        run("store", "verify", "--json", *extra, cwd=project, code=code).stdout
    )
    return report


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = init(tmp_path)
    (p / "churn.csv").write_text(CSV)
    run("data", "add", "churn", "churn.csv", "--json", cwd=p)
    (p / "toy.py").write_text(PIPELINE)
    run("run", "toy.py", "--json", cwd=p)
    return p


def _query(project: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(project / ".loopline" / "loopline.db")) as conn:
        return conn.execute(sql, args).fetchall()


def _blob(project: Path, digest: str) -> Path:
    return project / ".loopline" / "artifacts" / "cas" / "sha256" / digest[:2] / digest[2:]


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _dataset_digests(project: Path) -> tuple[str, str]:
    [(parquet, profile)] = _query(
        project, "SELECT parquet_digest, profile_digest FROM ll_dataset_versions"
    )
    return str(parquet), str(profile)


def _step_output(project: Path, step: str) -> str:
    rows = _query(
        project, "SELECT output_digest FROM ll_step_runs WHERE step = ? ORDER BY id DESC", step
    )
    return str(rows[0][0])


def test_an_intact_project_verifies(project: Path) -> None:
    report = verify(project)
    assert report["damaged"] is False
    assert report["counts"] == {"corrupt": 0, "unreadable": 0, "missing": 0, "orphan": 0}
    assert report["blobs"] == report["intact"] == report["referenced"] >= 4
    human = run("store", "verify", cwd=project).stdout
    assert f"{report['blobs']} blobs" in human
    assert f"{report['intact']} intact, 0 corrupt" in human


def test_corrupt_blobs_are_reported_with_what_references_them_and_repaired(
    project: Path,
) -> None:
    parquet, _ = _dataset_digests(project)
    output = _step_output(project, "make_data")
    _flip(_blob(project, parquet))
    _flip(_blob(project, output))

    report = verify(project, code=4)
    corrupt = {f["digest"]: f for f in report["findings"] if f["problem"] == "corrupt"}
    assert set(corrupt) == {parquet, output}
    assert corrupt[parquet]["referenced_by"] == ["dataset churn@1 (data)"]
    [owner] = corrupt[output]["referenced_by"]
    assert owner.startswith("pipeline run ")
    assert owner.endswith("step 'make_data' (output)")
    human = run("store", "verify", cwd=project, code=4).stdout
    assert "corrupt" in human
    assert "dataset churn@1 (data)" in human
    assert "loopline store verify --repair" in human

    # Re-running without the cache puts the same outputs again: that repairs them.
    run("run", "toy.py", "--no-cache", "--json", cwd=project)
    report = verify(project, code=4)
    assert [f["digest"] for f in report["findings"]] == [parquet]

    # --repair removes the corrupt copy (it is now missing), and says so.
    report = verify(project, "--repair", code=4)
    [finding] = report["findings"]
    assert (finding["digest"], finding["problem"]) == (parquet, "corrupt")
    assert finding["repaired"] is True
    assert not _blob(project, parquet).exists()
    report = verify(project, code=4)
    [finding] = report["findings"]
    assert (finding["digest"], finding["problem"]) == (parquet, "missing")

    # The same content added again (here under another name) writes the blob afresh.
    run("data", "add", "churn_copy", "churn.csv", "--json", cwd=project)
    report = verify(project)
    assert report["damaged"] is False
    assert _blob(project, parquet).exists()


def test_missing_orphan_and_stray_blobs(project: Path) -> None:
    _, profile = _dataset_digests(project)
    _blob(project, profile).unlink()
    orphan = hashlib.sha256(b"nobody names me").hexdigest()
    _blob(project, orphan).parent.mkdir(parents=True, exist_ok=True)
    _blob(project, orphan).write_bytes(b"nobody names me")
    stray = "ab" + "c" * 62
    _blob(project, stray).parent.mkdir(parents=True, exist_ok=True)
    _blob(project, stray).write_bytes(b"not what its name says")
    report = verify(project, code=4)
    found = {(f["problem"], f["digest"]): f for f in report["findings"]}
    assert set(found) == {("missing", profile), ("orphan", orphan), ("corrupt", stray)}
    assert found["missing", profile]["referenced_by"] == ["dataset churn@1 (profile)"]
    assert found["corrupt", stray]["referenced_by"] == []
    assert report["counts"]["orphan"] == 1
    assert _blob(project, orphan).exists()
    verify(project, "--repair", code=4)
    assert _blob(project, orphan).exists()  # unreferenced blobs are never removed
    assert not _blob(project, stray).exists()


def test_stale_temporary_files_are_reported_and_removed_with_repair(project: Path) -> None:
    tmp = project / ".loopline" / "artifacts" / ".tmp"
    stale = tmp / "put-00000000-1-0123456789ab.part"  # another host's writer, long gone
    stale.write_bytes(b"x" * 2048)
    os.utime(stale, (1_000_000, 1_000_000))
    report = verify(project)
    assert [(t["path"], t["size"]) for t in report["temp_files"]] == [(str(stale), 2048)]
    assert "1 stale temporary file (2.0 KiB): left" in run("store", "verify", cwd=project).stdout
    assert stale.exists()
    report = verify(project, "--repair")
    assert report["temp_removed"] is True
    assert not stale.exists()


def test_store_appears_in_help(tmp_path: Path) -> None:
    out = run("--help", cwd=tmp_path).stdout
    assert "store" in out
    assert "verify" in run("store", "--help", cwd=tmp_path).stdout
