"""Tables the alarm layer owns: each alarm's state, its history, every action run."""

from __future__ import annotations

import sqlalchemy as sa

from loopline.store.db.schema import metadata
from loopline.store.db.types import ID, UTCDateTime

#: The current state of each alarm: ok, alarm or insufficient_data.
alarm_states = sa.Table(
    "ll_alarm_states",
    metadata,
    sa.Column("alarm", sa.String(128), primary_key=True),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("since", UTCDateTime(), nullable=False),
    sa.Column("evaluated_at", UTCDateTime(), nullable=False),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("value", sa.Float(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=False),
    #: The newest window this alarm has judged (so a window is acted on once).
    sa.Column("last_window", UTCDateTime(), nullable=True),
)

#: Every state change, with the values and windows that caused it.
alarm_history = sa.Table(
    "ll_alarm_history",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("alarm", sa.String(128), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("from_state", sa.String(24), nullable=True),
    sa.Column("to_state", sa.String(24), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    #: [{"window_end": ..., "value": ..., "breaching": ...}, ...]
    sa.Column("datapoints", sa.JSON(), nullable=False),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer(), nullable=True),
    #: "rule" (evaluated here) or "alertmanager" (a Prometheus alert received)
    sa.Column("source", sa.String(24), nullable=False),
    sa.Index("ix_ll_alarm_history_alarm_at", "alarm", "at"),
)

#: Every execution of an action, with its result.
action_runs = sa.Table(
    "ll_action_runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("action", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(24), nullable=False),
    #: What triggered it: "alarm:<name>", "rollout:<id>", "alertmanager:<alertname>" ...
    sa.Column("trigger", sa.String(255), nullable=False),
    sa.Column("event", sa.JSON(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    #: running, ok, failed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("detail", sa.JSON(), nullable=True),
    sa.Index("ix_ll_action_runs_trigger_started_at", "trigger", "started_at"),
)
