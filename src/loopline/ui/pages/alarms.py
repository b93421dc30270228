"""Alarms and the loop: each alarm's state, its changes with the windows and values that
caused them, the actions they ran and how those ended; the controller's models, and each
rollout step by step with its reasons."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loopline.ui.errors import PageNotFoundError
from loopline.ui.render import Page

if TYPE_CHECKING:
    from loopline.alarm.engine import AlarmEngine
    from loopline.ui.app import Call

ACTION_RUNS = 50
ROLLOUTS = 30


def _engine(call: Call) -> AlarmEngine:
    from loopline.alarm.engine import AlarmEngine
    from loopline.alarm.settings import action_configs, alarm_configs

    settings = call.ui.settings
    return AlarmEngine(
        call.ui.stores,
        alarm_configs(settings),
        action_configs(settings),
        registry=call.ui.registry,
    )


def alarms_page(call: Call) -> Page:
    engine = _engine(call)
    states = engine.states()
    rows = []
    for name in sorted(set(engine.alarms) | set(states)):
        alarm = engine.alarms.get(name)
        st = states.get(name)
        rows.append(
            {
                "alarm": name,
                "configured": alarm is not None,
                "model": alarm.model if alarm else (st.model if st else None),
                "when": None if alarm is None else alarm.when,
                "feature": None if alarm is None else alarm.feature,
                "rule": None if alarm is None else f"{alarm.datapoints} of {alarm.periods} windows",
                "state": st.state if st else "insufficient_data",
                "since": st.since.isoformat() if st else None,
                "value": st.value if st else None,
                "reason": st.reason if st else "never evaluated",
                "actions": [] if alarm is None else list(alarm.actions),
            }
        )
    data = {"alarms": rows, "action_runs": engine.action_runs(limit=ACTION_RUNS)}
    return Page("alarms.html", data, title="Alarms")


def alarm_page(call: Call) -> Page:
    engine = _engine(call)
    name = call.arg("name")
    states = engine.states()
    alarm = engine.alarms.get(name)
    if alarm is None and name not in states:
        raise PageNotFoundError(f"No alarm named {name!r}: alarms are [alarms.NAME] tables")
    state = states.get(name)
    data = {
        "alarm": name,
        "model": alarm.model if alarm else (state.model if state else None),
        "when": None if alarm is None else alarm.when,
        "feature": None if alarm is None else alarm.feature,
        "state": None if state is None else state.to_dict(),
        "history": engine.history(name, limit=100),
    }
    return Page("alarm.html", data, title=f"Alarm {name}")


def loop_page(call: Call) -> Page:
    from loopline.loop.rollout import Rollouts

    rollouts = Rollouts(call.ui.stores)
    data = {
        "models": rollouts.models(),
        "active": [r.to_dict() for r in rollouts.active()],
        "rollouts": [_summary(r.to_dict()) for r in rollouts.history(limit=ROLLOUTS)],
    }
    return Page("loop.html", data, title="Loop")


def _summary(rollout: dict[str, Any]) -> dict[str, Any]:
    events = rollout.get("events") or []
    return {
        **{k: rollout[k] for k in ("id", "model", "state", "trigger", "created_at", "ended_at")},
        "champion_version": rollout["champion_version"],
        "challenger_version": rollout["challenger_version"],
        "mode": rollout["mode"],
        "percent": rollout["percent"],
        "reason": rollout["reason"] or (events[-1]["reason"] if events else None),
        "steps": len(events),
    }


def rollout_page(call: Call) -> Page:
    from loopline.loop.rollout import Rollouts

    rollout = Rollouts(call.ui.stores).get(call.arg("rollout_id"))
    data = rollout.to_dict()
    return Page("rollout.html", data, title=f"Rollout of {rollout.model} ({rollout.id[:8]})")


ROUTES = [
    ("/alarms", alarms_page, "GET", "read"),
    ("/alarms/{name}", alarm_page, "GET", "read"),
    ("/loop", loop_page, "GET", "read"),
    ("/loop/rollouts/{rollout_id}", rollout_page, "GET", "read"),
]
