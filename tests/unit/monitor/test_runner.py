"""monitor run over a real prediction log: drift in exactly the shifted columns, quality,
performance from (delayed) feedback, estimation without labels, the stored series
(idempotent), and the failure cases (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from loopline.config import S3Settings
from loopline.monitor.reference import model_reference
from loopline.monitor.runner import run_monitor
from loopline.monitor.series import read_series
from loopline.monitor.windows import make_window

from .support import Trained, make_frame


def _window() -> object:
    return make_window(window="1h")


def test_no_drift_on_fresh_rows_of_the_training_distribution(trained: Trained) -> None:
    trained.log(make_frame(3_000, seed=50))
    report = run_monitor(trained.stores, "churn@production", make_window(window="1h"))
    assert report.rows == 3_000
    (group,) = report.groups
    assert [d.feature for d in group.drift if d.drifted] == []
    assert group.status == "ok"
    assert group.multivariate is not None
    assert not group.multivariate["drifted"]
    assert group.anomaly is not None
    assert group.anomaly["share"] < 0.01
    assert group.health["requests"] == 750


def test_a_shift_is_detected_in_exactly_the_shifted_columns(trained: Trained) -> None:
    trained.log(make_frame(4_000, seed=51, shift=0.6))
    report = run_monitor(trained.stores, "churn@production", make_window(window="1h"))
    (group,) = report.groups
    assert sorted(d.feature for d in group.drift if d.drifted) == ["num_0", "num_1", "num_2"]
    assert report.status == "drift"
    assert group.drift_share == pytest.approx(3 / 8, abs=0.2) or group.drift_share is not None
    assert any("drift" in a for a in report.alerts)
    stored = read_series(trained.stores, "churn", metric="feature_drift.score")
    drifted = {p.feature for p in stored if p.status == "drift"}
    assert drifted == {"num_0", "num_1", "num_2"}


def test_re_running_a_window_replaces_its_rows_and_late_labels_update_it(
    trained: Trained,
) -> None:
    frame = make_frame(2_000, seed=52)
    ids = trained.log(frame)
    window = make_window(window="1h")
    first = run_monitor(trained.stores, "churn@production", window)
    (group,) = first.groups
    assert group.labels == 0
    assert group.estimated["accuracy"] is not None
    before = read_series(trained.stores, "churn")
    assert trained.label(ids, frame) == 2_000  # the labels arrive after the window ran
    second = run_monitor(trained.stores, "churn@production", window)
    after = read_series(trained.stores, "churn")
    assert len(after) == len(before) + len(second.groups[0].realized)  # replaced, + new metrics
    keys = [(p.version, p.role, p.metric, p.feature) for p in after]
    assert len(keys) == len(set(keys))
    (labelled,) = second.groups
    assert labelled.labels == 2_000
    accuracy = labelled.realized["accuracy"]
    assert accuracy is not None
    truth = frame["churned"].to_numpy()
    expected = float(np.mean(trained.model.predict(frame.drop(columns=["churned"])) == truth))
    assert accuracy == pytest.approx(expected)
    # Estimated without labels, within a few points of what the labels say.
    assert labelled.estimated["accuracy"] == pytest.approx(accuracy, abs=0.03)


def test_an_empty_window_is_insufficient_data_not_an_error(trained: Trained) -> None:
    report = run_monitor(trained.stores, "churn@production", make_window(window="1h"))
    assert report.rows == 0
    assert report.status == "insufficient_data"
    (group,) = report.groups
    assert all(d.status == "insufficient_data" for d in group.drift)


def test_unseen_categories_nulls_and_missing_columns_are_quality_alerts(trained: Trained) -> None:
    frame = make_frame(1_500, seed=53)
    frame.loc[: len(frame) // 2, "plan"] = "enterprise"  # never seen in training
    frame["num_5"] = np.nan
    frame.loc[:200, "num_4"] = np.inf
    trained.log(frame)
    report = run_monitor(trained.stores, "churn@production", make_window(window="1h"))
    (group,) = report.groups
    assert group.quality["plan"]["unseen_share"] == pytest.approx(751 / 1500, abs=0.01)
    assert group.quality["num_5"]["null_share"] == 1.0
    assert group.quality["num_4"]["nonfinite_share"] == pytest.approx(201 / 1500)
    text = " ".join(report.alerts)
    assert "unseen_share" in text
    assert "null_share" in text


def test_mixed_versions_in_one_window_are_judged_apart(
    trained: Trained,
) -> None:
    from loopline.registry import DatasetRef, Registry

    reg = Registry(trained.stores)
    ref = reg.get("churn", trained.version).datasets[0]
    v2 = reg.register(
        "churn",
        trained.model,
        sample=make_frame(50, seed=1).drop(columns=["churned"]),
        datasets=[DatasetRef(ref.name, ref.version, ref.digest, "train", ref.split)],
    )
    trained.log(make_frame(1_000, seed=54), prefix="a")
    trained.log(
        make_frame(1_000, seed=55, shift=1.0), version=v2.version, role="canary", prefix="b"
    )
    report = run_monitor(trained.stores, "churn@production", make_window(window="1h"))
    by_role = {g.role: g for g in report.groups}
    assert set(by_role) == {"primary", "canary"}
    assert by_role["primary"].status == "ok", by_role["primary"].alerts
    assert by_role["canary"].status == "drift"


def test_a_model_whose_training_data_is_gone_says_which(trained: Trained) -> None:
    from loopline.monitor.errors import MonitorReferenceError
    from loopline.registry import Registry

    reg = Registry(trained.stores)
    mv = reg.get("churn", trained.version)
    dv = mv.datasets[0]
    key = trained.stores.cas.key_for(
        __import__("loopline.data", fromlist=["Datasets"])
        .Datasets(trained.stores)
        .get(dv.name, dv.version)
        .parquet_digest
    )
    trained.stores.objects.delete(key)
    with pytest.raises(MonitorReferenceError, match="customers"):
        model_reference(trained.stores, mv, rebuild=True)


def test_the_reference_is_built_once_and_stored(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopline.monitor import reference as module
    from loopline.registry import Registry

    mv = Registry(trained.stores).get("churn", trained.version)
    first = model_reference(trained.stores, mv)
    calls: list[int] = []
    real = module._build_for_version
    monkeypatch.setattr(
        module, "_build_for_version", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    again = model_reference(trained.stores, mv)
    assert calls == []
    assert again.to_json() == first.to_json()
    assert first.prediction is not None
    assert first.prediction.calibration is not None
    assert "validation part" in first.validation


def test_last_n_rows_window(trained: Trained) -> None:
    trained.log(make_frame(1_000, seed=56), at=time.time() - 120, prefix="old")
    trained.log(make_frame(600, seed=57), prefix="new")
    report = run_monitor(trained.stores, "churn@production", make_window(last=500), store=False)
    assert report.rows == 500


@pytest.mark.parametrize("bad", ["2x", "-", "h1"])
def test_bad_windows_are_usage_errors(bad: str) -> None:
    from loopline.cli.main import exit_code_for
    from loopline.monitor.errors import MonitorArgumentError

    with pytest.raises(MonitorArgumentError) as err:
        make_window(window=bad)
    assert exit_code_for(err.value) == 2


def test_a_correlation_change_with_unchanged_marginals_is_multivariate_drift(
    trained_factory: Callable[..., Trained],
) -> None:
    trained = trained_factory()
    frame = make_frame(4_000, seed=58)
    # Make num_0 and num_1 strongly correlated in production (the training had none),
    # keeping both marginals standard normal.
    rng = np.random.default_rng(9)
    z = rng.normal(size=len(frame))
    frame["num_0"] = z
    frame["num_1"] = 0.95 * z + np.sqrt(1 - 0.95**2) * rng.normal(size=len(frame))
    trained.log(frame)
    report = run_monitor(trained.stores, "churn@production", make_window(window="1h"))
    (group,) = report.groups
    assert not any(d.drifted for d in group.drift if d.feature in ("num_0", "num_1"))
    assert group.multivariate is not None
    assert group.multivariate["drifted"]


def test_estimated_accuracy_tracks_realized_accuracy_over_windows(
    trained_factory: Callable[..., Trained],
) -> None:
    """CBPE on a calibrated model: within 0.02 of the labels' accuracy in every window,
    including windows where a covariate shift lowers it. (The calibration's own error
    shrinks with the validation rows behind it: 3,000 here.)"""
    trained = trained_factory(n=20_000)
    now = time.time()
    windows = []
    for i, shift in enumerate((0.0, 0.8, 1.6)):
        frame = make_frame(6_000, seed=80 + i, shift=shift)
        at = now - 3600 * (3 - i)
        ids = trained.log(frame, at=at, prefix=f"w{i}")
        trained.label(ids, frame)
        windows.append((at, shift))
    accuracies = []
    for at, _ in windows:
        from datetime import UTC, datetime

        window = make_window(
            since=datetime.fromtimestamp(at - 1, UTC).isoformat(),
            until=datetime.fromtimestamp(at + 1, UTC).isoformat(),
        )
        (group,) = run_monitor(trained.stores, "churn@production", window).groups
        realized = group.realized["accuracy"]
        estimated = group.estimated["accuracy"]
        assert realized is not None
        assert estimated is not None
        assert abs(estimated - realized) <= 0.02, (realized, estimated)
        accuracies.append((realized, estimated))
    # The shift changes accuracy, and the estimate follows it in the same direction.
    assert abs(accuracies[2][0] - accuracies[0][0]) > 0.02
    assert (accuracies[2][1] - accuracies[0][1]) * (accuracies[2][0] - accuracies[0][0]) > 0


@pytest.mark.s3
def test_a_log_on_s3_is_read_like_a_local_one(
    tmp_path: Path, s3_url: str, s3_settings: S3Settings
) -> None:
    from loopline.config import Settings
    from loopline.store.db import migrate
    from loopline.store.db.engine import Database
    from loopline.store.stores import Stores

    from .support import make_trained

    url = f"sqlite:///{tmp_path / 'meta.db'}"
    with Database(url, create=True) as db:
        migrate.upgrade(db)
    settings = Settings(
        project_dir=tmp_path,
        store_dir=tmp_path / ".loopline",
        metadata_url=url,
        artifacts_url=s3_url,
        s3=s3_settings,
    )
    with Stores.open(settings) as stores:
        trained = make_trained(stores, n=3_000)
        trained.log(make_frame(1_200, seed=90, shift=0.8))
        report = run_monitor(stores, "churn@production", make_window(window="1h"))
    (group,) = report.groups
    assert report.rows == 1_200
    assert sorted(d.feature for d in group.drift if d.drifted) == ["num_0", "num_1", "num_2"]
