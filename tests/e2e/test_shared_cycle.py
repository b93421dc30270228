"""The whole cycle of ``loopline demo`` on shared infrastructure: PostgreSQL for metadata,
S3 (moto's server, over HTTP) for artifacts, Ray for the pipelines' steps, and the endpoint
served by two worker processes, with the controller running. The outcomes are the ones
the embedded default shows (tests/e2e/test_cli.py::test_demo_reports_what_each_stage_did):
the same lineage, the drift retrained on Ray, baked as a canary across both workers and
promoted, logs from both workers and every label kept.

It plays the drift scenario alone: that one goes round the whole loop (alarm, retraining,
gates, canary, bake, promotion). The bad challenger's rollback takes the same controller
and stores; it is played on the embedded default (test_cli.py) and killed mid-way on
PostgreSQL (tests/integration/test_loop_kill.py). The two scenarios here took five to
nine minutes of the suite's two cores; one takes about half of that."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from e2e.cli import run

# The whole demo on live traffic: about two minutes alone, up to five beside other tests.
pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.s3, pytest.mark.timeout(1200)]


def test_the_demo_cycle_on_postgres_s3_and_ray(
    tmp_path: Path, s3_url: str, s3_env: dict[str, str], postgres_url: str
) -> None:
    project = tmp_path / "shared"
    out = json.loads(
        run(
            "demo",
            "--dir",
            str(project),
            "--metadata-url",
            postgres_url,
            "--artifacts-url",
            s3_url,
            "--executor",
            "ray",
            "--serve-workers",
            "2",
            "--scenario",
            "drift",
            "--json",
            cwd=tmp_path,
            env=s3_env,
            timeout=1500,
        ).stdout
    )

    # Where it ran: nothing embedded.
    infra = out["infrastructure"]
    assert (infra["metadata"], infra["artifacts_url"]) == ("postgresql", s3_url)
    assert (infra["executor"], infra["serve_workers"]) == ("ray", 2)
    assert out["pipeline"]["executor"] == "ray"
    assert out["dataset"]["key"]
    assert out["artifacts_url"] == s3_url
    assert not (project / ".loopline" / "loopline.db").exists()
    assert not (project / ".loopline" / "artifacts").exists()

    # The same lifecycle as on the embedded default.
    pipeline = out["pipeline"]
    assert pipeline["status"] == "finished"
    assert set(pipeline["steps"].values()) == {"done"}
    assert pipeline["rerun_cached"] == len(pipeline["steps"])
    model = out["model"]
    assert (model["winner"], model["promoted"]) == ("tuned", True)
    assert model["gates_passed"] == model["gates_total"] > 0
    assert out["serving"]["logged_rows"] == 40

    (drift,) = out["loop"]
    # How each scenario went, in the demo's words (the rollout's reason when it did not
    # end as expected), for a failing assertion to show.
    story = [(s["scenario"], s["final"], s["reason"]) for s in out["loop"]]
    assert (drift["scenario"], drift["final"]) == ("drift", "promoted"), story
    assert "drift" in drift["fired"]
    assert drift["serving"] == f"{model['model']}/{model['version'] + 1}"
    assert drift["split"] is None
    assert drift["failed_requests"] == 0 < drift["requests"]
    assert drift["webhooks"] >= 3

    # Both worker processes wrote the prediction log, and no label was lost on the way.
    assert infra["log_writers"] == 2
    assert infra["labels_sent"] > 0
    assert infra["labels_stored"] == infra["labels_sent"]

    # Lineage: the promoted retrain names its run and the dataset version it was trained
    # on, all read back from PostgreSQL and S3 by a fresh process.
    env = {**s3_env, "LOOPLINE_METADATA_URL": postgres_url, "LOOPLINE_ARTIFACTS_URL": s3_url}
    shown = json.loads(
        run("models", "show", f"{model['model']}@champion", "--json", cwd=project, env=env).stdout
    )
    assert shown["version"] == model["version"] + 1
    assert shown["run_id"]
    assert shown["datasets"]
    assert all(d["name"] and d["version"] is not None and d["digest"] for d in shown["datasets"])
