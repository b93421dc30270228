"""Judging a bake window: the challenger's live metrics beside the champion's.

A rollout's bake reads the monitor's series of one window for the two groups the server
logged in it, the challenger's (role ``canary`` or ``shadow``) and the champion's
(``primary``), and applies the bake criteria (the gate language): a name is a metric of
the challenger's group, ``champion.NAME`` the champion's, and ``compare.NAME`` compares
the two directly:

``compare.positive_rate_diff``  |challenger - champion| share of positive answers
``compare.mean_score_diff``     |challenger - champion| mean score (or prediction)

A criterion that reads a metric the window lacks (``performance.*`` before labels
arrive, ``latency`` of a group with no rows) is not judged on that window; a window in
which the challenger answered nothing is *empty* (it counts toward the rollout's
``max_empty_windows``, not toward its bake).

Realized performance in one window rests on few labels (a 20% canary in a 5-minute window
may get a hundred): its ROC AUC moves by 0.05 from noise alone. A criterion on a
proportion-like ``performance.*`` metric (accuracy, precision, recall, F1, ROC AUC) fails
only when the challenger falls short by more than the noise of the two windows' labels
allows: ``NOISE_Z`` standard errors of the difference (binomial for the proportions; for
ROC AUC as for a quarter of the labels, a conservative stand-in for the smaller class).
A shortfall within the noise passes, and its reason says so; the gates before the bake
judged performance on many more rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopline.store.stores import Stores

COMPARE = "compare."

#: One-sided z of the noise allowance of label-based criteria (95%).
NOISE_Z = 1.645
#: performance.* metrics judged with the noise allowance, and the share of a window's
#: labels their standard error is computed as if from.
_PROPORTIONS = {
    "accuracy": 1.0,
    "balanced_accuracy": 0.5,
    "precision": 0.5,
    "recall": 0.5,
    "f1": 0.5,
    "roc_auc": 0.25,
    "pr_auc": 0.25,
}


@dataclass
class BakeWindow:
    """One judged window of a bake."""

    window_start: datetime
    window_end: datetime
    challenger_rows: int
    champion_rows: int
    #: Criterion results (as dicts) of the criteria judged on this window.
    results: list[dict[str, Any]] = field(default_factory=list)
    #: Criteria not judged here, with why.
    skipped: list[str] = field(default_factory=list)
    values: dict[str, float | None] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.challenger_rows == 0 and not self.results

    @property
    def passed(self) -> bool:
        return all(r["passed"] for r in self.results)

    @property
    def failures(self) -> list[str]:
        return [str(r["reason"]) for r in self.results if not r["passed"]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "challenger_rows": self.challenger_rows,
            "champion_rows": self.champion_rows,
            "empty": self.empty,
            "passed": None if self.empty else self.passed,
            "results": self.results,
            "skipped": self.skipped,
            "values": self.values,
        }


def windows_since(
    stores: Stores, model: str, version: int, role: str, since: datetime, after: datetime | None
) -> list[tuple[datetime, datetime]]:
    """The monitored windows (start, end) that began at or after ``since`` and ended after
    ``after``, oldest first: every window in which the model had data, the challenger's
    group or not (a window where it got nothing is judged empty)."""
    import sqlalchemy as sa

    from loopline.monitor.tables import monitor_runs

    query = (
        sa.select(monitor_runs.c.window_start, monitor_runs.c.window_end)
        .where(
            monitor_runs.c.model == model,
            monitor_runs.c.window_start.is_not(None),
            monitor_runs.c.window_start >= since,
        )
        .distinct()
        .order_by(monitor_runs.c.window_end)
    )
    if after is not None:
        query = query.where(monitor_runs.c.window_end > after)
    with stores.db.read() as conn:
        return [(r.window_start, r.window_end) for r in conn.execute(query).all()]


def judge_window(
    stores: Stores,
    model: str,
    window: tuple[datetime, datetime],
    *,
    challenger: int,
    champion: int,
    role: str,
    criteria: tuple[str, ...],
) -> BakeWindow:
    """Apply the bake ``criteria`` to one window of the series."""
    from loopline.evaluate.gates import CHAMPION, Gate

    start, end = window
    mine = _metrics(stores, model, challenger, role, end)
    theirs = _metrics(stores, model, champion, "primary", end)
    rows = int(mine.get("health.rows") or 0)
    failed = int(mine.get("health.rejected_requests") or 0)
    out = BakeWindow(start, end, rows + failed, int(theirs.get("health.rows") or 0))
    compare = _compare(mine, theirs)
    values = {**mine, **compare}
    out.values = {k: v for k, v in sorted(values.items()) if _shown(k)}
    if rows + failed == 0:
        out.skipped.append("the challenger answered no request in this window")
        return out
    for text in criteria:
        gate = Gate.parse(text)
        lacking = []
        for name in gate.metric_names:
            if name.startswith(CHAMPION + "."):
                if theirs.get(name[len(CHAMPION) + 1 :]) is None:
                    lacking.append(name)
            elif values.get(name) is None:
                lacking.append(name)
        if lacking:
            out.skipped.append(f"{text}: no value for {', '.join(lacking)} in this window")
            continue
        result = gate.check(values, theirs).to_dict()
        if not result["passed"]:
            result = _within_noise(gate, result, mine, theirs)
        out.results.append(result)
    return out


def _within_noise(
    gate: Any, result: dict[str, Any], mine: dict[str, Any], theirs: dict[str, Any]
) -> dict[str, Any]:
    """``result`` passed instead when it compares one label-based proportion of the two
    groups and the shortfall is within the noise of their labels (see the module)."""
    import math

    from loopline.evaluate.gates import CHAMPION

    names = [n.removeprefix(CHAMPION + ".") for n in gate.metric_names]
    metrics = {n.removeprefix("performance.") for n in names if n.startswith("performance.")}
    if len(metrics) != 1 or any(not n.startswith("performance.") for n in names):
        return result
    (metric,) = metrics
    share = _PROPORTIONS.get(metric)
    left, right = result.get("left_value"), result.get("right_value")
    if share is None or left is None or right is None:
        return result
    variance = 0.0
    for group in (mine, theirs):
        value = group.get(f"performance.{metric}")
        labels = float(group.get("performance.labels") or 0.0)
        if value is None or labels < 1:
            return result
        p = min(max(float(value), 0.0), 1.0)
        variance += max(p * (1 - p), 0.01) / max(labels * share, 1.0)
    allowance = NOISE_Z * math.sqrt(variance)
    shortfall = abs(float(left) - float(right))
    if shortfall > allowance:
        return {
            **result,
            "reason": f"{result['reason']} (beyond the labels' noise ±{allowance:.3f})",
        }
    return {
        **result,
        "passed": True,
        "reason": f"{result['reason']}, but within the noise of the window's labels "
        f"(short by {shortfall:.3f}, noise ±{allowance:.3f}): not held against it",
    }


def _shown(name: str) -> bool:
    return name.startswith(("health.", "performance.", "estimated.", "prediction.", COMPARE))


def _metrics(stores: Stores, model: str, version: int, role: str, end: datetime) -> dict[str, Any]:
    import sqlalchemy as sa

    from loopline.monitor.tables import series

    query = sa.select(series.c.metric, series.c.value).where(
        series.c.model == model,
        series.c.version == version,
        series.c.role == role,
        series.c.window_end == end,
        series.c.feature == "",
    )
    with stores.db.read() as conn:
        return {r.metric: r.value for r in conn.execute(query).all()}


def _compare(mine: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for metric, name in (
        ("prediction.positive_rate", "positive_rate_diff"),
        ("prediction.mean_score", "mean_score_diff"),
    ):
        a, b = mine.get(metric), theirs.get(metric)
        out[COMPARE + name] = None if a is None or b is None else abs(float(a) - float(b))
    return out
