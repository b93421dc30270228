"""The events CI/CD hooks into, on both databases: a gate failure (a refused promotion, a
rollout refused at its gates) and an alarm state change are in the audit log, written
with the change itself, and the controller delivers the project's events to the
``[events]`` webhooks on its ticks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopline.alarm.delivery import DELIVERED, read_events
from loopline.alarm.engine import AlarmEngine
from loopline.alarm.settings import AlarmSettings
from loopline.alarm.webhook import verify_signature
from loopline.evaluate import GateSet
from loopline.loop.controller import wait_until
from loopline.loop.rollout import Rollouts
from loopline.loop.settings import loop_configs
from loopline.registry import Registry
from loopline.registry.errors import PromotionRefusedError
from loopline.store.stores import Stores
from unit.alarm.test_webhook import Receiver
from unit.monitor.support import FEATURES, make_frame

from .support import make_bed

SECRET = "ci-secret"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _events_tables(url: str, **events: Any) -> dict[str, Any]:
    return {
        "actions": {"ci": {"kind": "webhook", "url": url, "secret": SECRET, "timeout_s": 3.0}},
        "events": {"webhooks": ["ci"], "backoff_s": 0.0, **events},
    }


def _dummy(stores: Stores) -> int:
    """A version that knows nothing (the prior): it fails any sensible gate."""
    from sklearn.dummy import DummyClassifier

    frame = make_frame(300, 7)
    model = DummyClassifier(strategy="prior").fit(frame[FEATURES], frame["churned"])
    return Registry(stores).register("churn", model, sample=frame[FEATURES].head(50)).version


def test_a_refused_promotion_is_a_gate_failed_event(stores: Stores) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = make_frame(200, 3)[["num_0", "num_1", "churned"]]
    reg = Registry(stores)
    x = frame[["num_0", "num_1"]]
    v1 = reg.register("churn", LogisticRegression().fit(x, frame["churned"]), sample=x).version
    v2 = reg.register("churn", LogisticRegression().fit(x, frame["churned"]), sample=x).version
    reg.set_alias("churn", "champion", v1)
    gates = GateSet.from_strings(["accuracy >= 0.99"])

    def check(candidate: Any, champion: Any) -> Any:
        return gates.evaluate({"accuracy": 0.61})

    with pytest.raises(PromotionRefusedError):
        reg.promote("churn", v2, "champion", check=check)
    (event,) = read_events(stores, kind="gate.failed")
    assert event.subject == f"churn/{v2}"
    assert event.detail["source"] == "promote"
    assert event.detail["champion"] == f"churn/{v1}"
    assert event.detail["alias"] == "champion"
    assert "accuracy" in event.detail["failing"][0]
    assert event.detail["summary"] == "0 of 1 gate criteria passed; failed: accuracy >= 0.99"
    assert reg.aliases("churn")["champion"] == v1


def test_alarm_state_changes_are_events(stores: Stores) -> None:
    alarm = AlarmSettings(name="drift", model="churn@production", when="drift.share > 0.5")
    engine = AlarmEngine(stores, {"drift": alarm})
    engine.evaluate("drift")  # no model: insufficient data, recorded as the first state
    engine.receive_alertmanager(
        {"alerts": [{"labels": {"alertname": "drift"}, "status": "firing"}]}
    )
    changes = read_events(stores, kind="alarm.*")
    assert [(e.kind, e.subject) for e in changes] == [("alarm.state_changed", "drift")] * 2
    newest, first = changes
    assert (first.detail["from"], first.detail["to"], first.detail["source"]) == (
        None,
        "insufficient_data",
        "rule",
    )
    assert (newest.detail["from"], newest.detail["to"], newest.detail["source"]) == (
        "insufficient_data",
        "alarm",
        "alertmanager",
    )
    assert newest.detail["model"] == "churn@production"
    engine.evaluate("drift")  # back to insufficient data: one more change
    engine.evaluate("drift")  # no change, no event
    assert len(read_events(stores, kind="alarm.state_changed")) == 3


def test_a_rollout_refused_at_its_gates_is_told_to_the_webhooks(
    stores: Stores, tmp_path: Path, receiver: Receiver
) -> None:
    bed = make_bed(stores, tmp_path)
    tables = dict(bed.settings.tables) | _events_tables(
        receiver.url, kinds=["rollout.*", "gate.*", "model.*"]
    )
    bed.settings = bed.settings.with_overrides(tables=tables)
    bad = _dummy(stores)
    ctl = bed.controller()
    cfg = loop_configs(bed.settings)["churn"]
    rid = Rollouts(stores).start("churn", cfg, trigger="manual", challenger=bad).id
    bed.settle(ctl, 0)
    rollout = Rollouts(stores).get(rid)
    assert rollout.state == "refused", rollout.reason
    assert "failed the gates" in (rollout.reason or "")

    (gate,) = read_events(stores, kind="gate.failed")
    assert gate.subject == f"churn/{bad}"
    assert gate.detail["source"] == "rollout"
    assert gate.detail["rollout"] == rid
    assert gate.detail["on"] == "gate holdout"
    assert gate.detail["champion"] == f"churn/{bed.trained.version}"
    assert any("roc_auc" in reason for reason in gate.detail["failing"])
    refused = read_events(stores, kind="rollout.refused")[0]
    assert refused.detail["challenger_version"] == bad
    assert refused.detail["champion_version"] == bed.trained.version

    # The controller's ticks delivered them: the new version, every step, the gate.
    bed.tick(ctl, 0)
    assert wait_until(lambda: len(receiver.received) >= 5, 30)
    bodies = [json.loads(body) for _, body in receiver.received]
    kinds = [b["kind"] for b in bodies]
    assert kinds.count("gate.failed") == 1
    assert {"model.register", "rollout.started", "rollout.refused"} <= set(kinds)
    assert len({b["id"] for b in bodies}) == len(bodies)
    for headers, body in receiver.received:
        assert verify_signature(SECRET, body, headers)
    assert all(e.deliveries[0].status == DELIVERED for e in read_events(stores, kind="gate.*"))
    assert ctl.stats.deliveries == len(bodies)
    ctl.shutdown(drain_s=5)
