"""Tables the alarm layer owns: each alarm's state, its history, every action run, and the
delivery of the project's events to their subscribers."""

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

#: Each webhook of ``[events] webhooks`` and how far the audit log (``ll_events``) has
#: been handed to it: every event with an id up to ``watermark`` has its delivery row (or
#: did not match the filters). Newer events are looked at again on every pass, so an
#: event whose transaction committed after one with a higher id is not passed over.
event_subscribers = sa.Table(
    "ll_event_subscribers",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    #: The newest event when the subscriber was first seen: it gets the events after it.
    sa.Column("since_id", sa.BigInteger(), nullable=False),
    sa.Column("watermark", sa.BigInteger(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

#: One row per event and subscriber (the unique key: nothing is queued twice), with how
#: its delivery goes.
event_deliveries = sa.Table(
    "ll_event_deliveries",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.BigInteger(), nullable=False),
    sa.Column("subscriber", sa.String(128), nullable=False),
    #: pending (due at next_attempt_at), sending (claimed), delivered, failed (given up)
    sa.Column("status", sa.String(16), nullable=False),
    #: Attempts started; also the version a claim compares and sets.
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("queued_at", UTCDateTime(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
    sa.Column("claimed_at", UTCDateTime(), nullable=True),
    sa.Column("claimed_by", sa.String(255), nullable=True),
    sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
    sa.Column("response_code", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("url", sa.Text(), nullable=True),
    sa.UniqueConstraint("event_id", "subscriber"),
    sa.Index("ix_ll_event_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
)
