"""Tables the loop controller owns: its lease, per-model state, rollouts and their steps."""

from __future__ import annotations

import sqlalchemy as sa

from loopline.store.db.schema import metadata
from loopline.store.db.types import ID, UTCDateTime

#: Who drives the loop: one row per lease name. A controller holds it while it renews it
#: before ``expires_at``; another takes it over once it expired (or its holder's process
#: on this machine is gone). ``token`` changes on every takeover: writes check it.
leases = sa.Table(
    "ll_loop_leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("token", sa.String(32), nullable=False),
    sa.Column("acquired_at", UTCDateTime(), nullable=False),
    sa.Column("renewed_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)

#: What the controller keeps per model: paused or not, the newest monitored window, the
#: rollout in progress (at most one per model).
loop_models = sa.Table(
    "ll_loop_models",
    metadata,
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("paused", sa.Boolean(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("changed_at", UTCDateTime(), nullable=False),
    sa.Column("changed_by", sa.String(128), nullable=False),
    sa.Column("last_window_end", UTCDateTime(), nullable=True),
    #: The newest window run again for its late labels (``label_delay``).
    sa.Column("last_label_window_end", UTCDateTime(), nullable=True),
    sa.Column("active_rollout", sa.String(32), nullable=True),
)

#: One retraining-and-rollout of a model, as a state machine.
rollouts = sa.Table(
    "ll_rollouts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("state", sa.String(24), nullable=False),
    #: "alarm:drift", "manual", "action:<name>" ...
    sa.Column("trigger", sa.String(255), nullable=False),
    #: Makes starting idempotent: the action run (or request) that asked for it.
    sa.Column("trigger_key", sa.String(255), nullable=True, unique=True),
    #: Why: the alarm's change, its windows and values; who asked.
    sa.Column("cause", sa.JSON(), nullable=False),
    sa.Column("alias", sa.String(64), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("percent", sa.Float(), nullable=False),
    sa.Column("champion_version", sa.Integer(), nullable=True),
    sa.Column("challenger_version", sa.Integer(), nullable=True),
    #: Retrain (True) or roll out an existing version (False, challenger given).
    sa.Column("retrain", sa.Boolean(), nullable=False),
    #: The training data and fresh holdout built for it (dataset refs, row counts).
    sa.Column("data", sa.JSON(), nullable=True),
    sa.Column("pipeline_run_id", sa.String(32), nullable=True),
    sa.Column("verdict", sa.JSON(), nullable=True),
    #: The traffic split it set, as read back (to compare-and-set it away later).
    sa.Column("split", sa.JSON(), nullable=True),
    #: One entry per judged bake window.
    sa.Column("bake", sa.JSON(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    sa.Index("ix_ll_rollouts_model_created_at", "model", "created_at"),
)

#: Every state a rollout entered, once each (the unique key makes a repeat impossible).
rollout_events = sa.Table(
    "ll_rollout_events",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("rollout_id", sa.String(32), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("from_state", sa.String(24), nullable=True),
    sa.Column("to_state", sa.String(24), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("detail", sa.JSON(), nullable=False),
    sa.UniqueConstraint("rollout_id", "to_state"),
)
