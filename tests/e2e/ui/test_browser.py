"""The web UI in a real browser, over a project made by the example pipeline (two
runs of it) plus a monitored model with three windows of logged traffic.

One UI server (``loopline ui --auth``) for the module; the browser logs in with an
admin key, opens every page, checks numbers against the stores, compares two runs,
promotes a version after confirming and sees the alias history grow, and counts the
cells of the drift heatmap. A screenshot of each page lands in the test's temporary
folder (``screens/``), or in ``$LOOPLINE_UI_SCREENS`` when set.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.cli import clean_env, command, init, run
from loopline.config import settings_for
from loopline.store.stores import Stores
from unit.monitor.support import FEATURES, make_frame, make_trained

WINDOWS = 3


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from loopline.monitor.runner import run_monitor
    from loopline.monitor.windows import Window

    root = init(tmp_path_factory.mktemp("ui"))
    for seed in ("0", "1"):
        run(
            "run",
            "pipelines/example.py",
            "-p",
            "n_rows=1500",
            "-p",
            "n_trials=2",
            "-p",
            f"seed={seed}",
            cwd=root,
        )
    with Stores.open(settings_for(root, environ={})) as stores:
        trained = make_trained(stores, n=3_000)
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        for i in range(WINDOWS):
            start = hour - timedelta(hours=WINDOWS - i)
            frame = make_frame(600, seed=80 + i, shift=0.8 * i)
            trained.log(frame, at=(start + timedelta(minutes=10)).timestamp(), prefix=f"w{i}")
            run_monitor(
                stores, "churn@production", Window(start=start, end=start + timedelta(hours=1))
            )
    return root


@pytest.fixture(scope="module")
def server(project: Path) -> Iterator[dict[str, Any]]:
    key = json.loads(run("keys", "create", "--role", "admin", "--json", cwd=project).stdout)
    log = project / "ui.log"
    with (
        log.open("w") as sink,
        subprocess.Popen(
            command("ui", "--port", "0", "--auth", "--json"),
            cwd=project,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
        ) as proc,
    ):
        yield from _serving(proc, key, log)


def _serving(
    proc: subprocess.Popen[str], key: dict[str, Any], log: Path
) -> Iterator[dict[str, Any]]:
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, log.read_text()
        url = json.loads(line)["url"]
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            assert proc.poll() is None
            time.sleep(0.1)
        yield {"url": url, "key": key["key"]}
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("LOOPLINE_UI_SCREENS")
    out = Path(folder) if folder else tmp_path_factory.mktemp("screens")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def page(browser: Any, server: dict[str, Any]) -> Iterator[Any]:
    context = browser.new_context(base_url=server["url"], viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.goto("/runs")
    assert "/login" in tab.url
    tab.fill("input[name=key]", server["key"])
    tab.click("button[type=submit]")
    tab.wait_for_url("**/runs")
    tab.errors = errors
    yield tab
    context.close()


def _open(page: Any, screens: Path, path: str, name: str, *, charts: bool = False) -> None:
    answer = page.goto(path)
    assert answer is not None
    assert answer.status == 200, path
    if charts:
        page.wait_for_selector(".chart[data-drawn]", timeout=20_000)
    page.screenshot(path=str(screens / f"{name}.png"), full_page=True)
    assert page.errors == [], page.errors


def _stores(project: Path) -> Stores:
    return Stores.open(settings_for(project, environ={}))


def test_runs_table_and_a_run_show_the_stored_numbers(
    page: Any, project: Path, screens: Path
) -> None:
    from loopline.tracking import Tracker

    with _stores(project) as stores:
        tracker = Tracker(stores)
        total = tracker.count_runs()
        best = tracker.search_runs(order_by=["-metrics.step_seconds"], limit=1)[0]
    _open(page, screens, "/runs", "runs")
    assert page.inner_text(".count b") == f"{total:,}"
    _open(page, screens, "/runs?sort=-metrics.step_seconds&col=metrics.step_seconds", "runs-sorted")
    first = page.locator("tbody tr").first
    assert first.get_attribute("data-run") == best.id
    shown = first.locator("td[data-col='metrics.step_seconds']").inner_text()
    assert shown == f"{best.metrics['step_seconds']:.4g}"
    _open(page, screens, f"/runs/{best.id}", "run", charts=False)
    cell = page.locator("td[data-metric='step_seconds']").inner_text()
    assert cell == f"{best.metrics['step_seconds']:.4g}"


def test_two_runs_are_compared_with_their_curves(page: Any, project: Path, screens: Path) -> None:
    _open(page, screens, "/runs?filter=metrics.objective+%3E+0", "runs-filtered")
    boxes = page.locator("input[name=run]")
    assert boxes.count() >= 2
    assert page.locator("#compare-button").is_disabled()
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("#compare-button")
    page.wait_for_url("**/runs/compare?**")
    assert page.locator("table.compare tr.differs").count() >= 1
    page.screenshot(path=str(screens / "compare.png"), full_page=True)


def test_a_promotion_is_confirmed_then_seen_in_the_alias_history(
    page: Any, project: Path, screens: Path
) -> None:
    from loopline.registry import Registry

    with _stores(project) as stores:
        reg = Registry(stores)
        before = len(reg.alias_history("credit_risk"))
        latest = reg.get("credit_risk").version
    _open(page, screens, "/models/credit_risk", "model", charts=True)
    assert page.locator("table.history tbody tr").count() == before
    page.select_option("#promote-form select[name=version]", str(latest))
    page.fill("#promote-form input[name=alias]", "staging")
    page.fill("#promote-form input[name=reason]", "tried in the browser")
    page.click("#promote-form button[type=submit]")
    page.wait_for_selector("#confirm-form")
    page.screenshot(path=str(screens / "confirm.png"), full_page=True)
    with _stores(project) as stores:
        assert "staging" not in Registry(stores).aliases("credit_risk")
    page.click("#confirm-button")
    page.wait_for_selector("#moved", timeout=60_000)
    page.wait_for_selector(".chart[data-drawn]", timeout=20_000)
    page.screenshot(path=str(screens / "model-promoted.png"), full_page=True)
    assert page.locator("table.history tbody tr").count() == before + 1
    with _stores(project) as stores:
        reg = Registry(stores)
        assert reg.aliases("credit_risk")["staging"] == latest
        move = reg.alias_history("credit_risk", "staging")[-1]
    assert move.reason == "tried in the browser"
    assert move.actor.startswith("ui key")
    assert page.errors == []


def test_the_drift_heatmap_has_a_cell_per_window_and_feature(
    page: Any, project: Path, screens: Path
) -> None:
    from loopline.monitor.series import read_series

    _open(page, screens, "/monitors/churn", "monitor", charts=True)
    cells = page.locator("#drift-heatmap td.cell")
    assert cells.count() == WINDOWS * len(FEATURES)
    with _stores(project) as stores:
        stored = read_series(stores, "churn", metric="feature_drift.score", role="primary")
    drifted = sum(1 for p in stored if p.status == "drift")
    assert drifted > 0
    assert page.locator("#drift-heatmap td.cell.s-drift").count() == drifted
    page.click("#drift-heatmap th a >> nth=0")
    page.wait_for_selector(".chart[data-drawn]", timeout=20_000)
    page.screenshot(path=str(screens / "feature.png"), full_page=True)


def test_every_other_page_opens(page: Any, screens: Path) -> None:
    for path, name, charts in (
        ("/datasets", "datasets", False),
        ("/datasets/credit_applications", "dataset", True),
        ("/models", "models", False),
        ("/models/credit_risk/versions/1", "version", False),
        ("/deployments", "deployments", True),
        ("/monitors", "monitors", False),
        ("/alarms", "alarms", False),
        ("/loop", "loop", False),
    ):
        _open(page, screens, path, name, charts=charts)
    assert len(list(screens.glob("*.png"))) >= 14
