"""Tables the registry owns: models, their versions, aliases (with history), traffic splits.

A version row points at its package by the sha256 of the package manifest in the
content-addressed store; the manifest in turn lists the sha256 of every file. The alias
history is append-only: it answers "which version held ``production`` at time T" and is
what ``rollback`` walks back through.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopline.store.db.schema import metadata
from loopline.store.db.types import ID, UTCDateTime

_NAME = 128
_ALIAS = 64
_ACTOR = 128

models = sa.Table(
    "ll_models",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(_NAME), nullable=False),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(_ACTOR), nullable=False),
    #: Last registration or alias move: what ``loopline models ls`` sorts by.
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("name"),
)

model_versions = sa.Table(
    "ll_model_versions",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(_NAME), sa.ForeignKey("ll_models.name"), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    #: [{name, version, digest, role}] of the datasets the model was trained and tested on.
    sa.Column("datasets", sa.JSON(), nullable=False),
    sa.Column("code_commit", sa.String(64), nullable=True),
    sa.Column("metrics", sa.JSON(), nullable=False),
    sa.Column("report_digest", sa.String(64), nullable=True),
    sa.Column("manifest_digest", sa.String(64), nullable=False),
    sa.Column("flavor", sa.String(32), nullable=False),
    sa.Column("signature", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(_ACTOR), nullable=False),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    # Two processes registering at once cannot both get the same number: one insert fails
    # on this constraint and retries with the next.
    sa.UniqueConstraint("model", "version"),
)

model_aliases = sa.Table(
    "ll_model_aliases",
    metadata,
    sa.Column("model", sa.String(_NAME), sa.ForeignKey("ll_models.name"), primary_key=True),
    sa.Column("alias", sa.String(_ALIAS), primary_key=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.String(_ACTOR), nullable=False),
)

alias_history = sa.Table(
    "ll_model_alias_history",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(_NAME), nullable=False),
    sa.Column("alias", sa.String(_ALIAS), nullable=False),
    #: "set", "promote" or "rollback".
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("from_version", sa.Integer(), nullable=True),
    sa.Column("to_version", sa.Integer(), nullable=False),
    sa.Column("actor", sa.String(_ACTOR), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("forced", sa.Boolean(), nullable=False),
    #: The promotion check's verdict, when there was one.
    sa.Column("detail", sa.JSON(), nullable=True),
    sa.Index("ix_ll_model_alias_history_model_alias_at", "model", "alias", "at"),
)

model_traffic = sa.Table(
    "ll_model_traffic",
    metadata,
    sa.Column("model", sa.String(_NAME), sa.ForeignKey("ll_models.name"), primary_key=True),
    #: The alias a server serves as primary (``production``); the split applies to it.
    sa.Column("alias", sa.String(_ALIAS), primary_key=True),
    #: A model reference (``churn@challenger``, ``churn/4``) resolved when the server reads it.
    sa.Column("candidate", sa.String(256), nullable=False),
    sa.Column("percent", sa.Float(), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("sticky_key", sa.String(128), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.String(_ACTOR), nullable=False),
)
