"""Tables the monitor owns: the index of logged predictions and the feedback labels.

The prediction log itself is Parquet in the artifact store; ``ll_prediction_index`` says,
for each request id, which model version answered it, how many rows it had, when, and in
which file it was logged, so feedback can be matched (and reported as unknown) without
reading Parquet. ``ll_feedback`` holds one label per (request id, row).
"""

from __future__ import annotations

import sqlalchemy as sa

from loopline.store.db.schema import metadata
from loopline.store.db.types import ID, UTCDateTime

prediction_index = sa.Table(
    "ll_prediction_index",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    #: Not unique: a client may send its own request ids, and shadows share the primary's.
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    #: "primary", "canary" or "shadow" (a shadow's answer was logged, not returned).
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("rows", sa.Integer(), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("object_key", sa.String(1024), nullable=False),
    sa.Index("ix_ll_prediction_index_request_id", "request_id"),
    sa.Index("ix_ll_prediction_index_model_at", "model", "at"),
)

feedback = sa.Table(
    "ll_feedback",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    #: The 0-based row of the request the label is for.
    sa.Column("row_index", sa.Integer(), primary_key=True),
    #: The ground truth, as JSON (a class label or a number).
    sa.Column("label", sa.JSON(), nullable=False),
    #: The model version that answered, when the request was known at receipt.
    sa.Column("model", sa.String(128), nullable=True),
    sa.Column("version", sa.Integer(), nullable=True),
    sa.Column("predicted_at", UTCDateTime(), nullable=True),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    #: How many times a different label replaced the first one.
    sa.Column("revisions", sa.Integer(), nullable=False),
    #: Whether the request id was in the prediction index when the label arrived.
    sa.Column("known", sa.Boolean(), nullable=False),
    #: "api", "file:<name>"...
    sa.Column("source", sa.String(255), nullable=False),
    sa.Index("ix_ll_feedback_model_received_at", "model", "received_at"),
)

TABLES = (prediction_index, feedback)
