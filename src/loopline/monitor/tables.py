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
    sa.Index("ix_ll_feedback_model_predicted_at", "model", "predicted_at"),
)


#: Which stored reference (a JSON blob) a model version is compared with, per baseline
#: ("training", or "DATASET@V").
references = sa.Table(
    "ll_monitor_references",
    metadata,
    sa.Column("model", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True),
    sa.Column("baseline", sa.String(255), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("dataset", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

#: One monitoring run over a window: what it read, how it ended.
monitor_runs = sa.Table(
    "ll_monitor_runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("ref", sa.String(255), nullable=False),
    sa.Column("window_start", UTCDateTime(), nullable=True),
    sa.Column("window_end", UTCDateTime(), nullable=True),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    #: ok, drift, alert (quality/anomaly/performance), insufficient_data, failed
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("rows", sa.BigInteger(), nullable=False),
    sa.Column("summary", sa.JSON(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Index("ix_ll_monitor_runs_model_started_at", "model", "started_at"),
)

#: The time series: one row per (model, version, role, window, metric, feature). Running a
#: window again replaces its rows.
series = sa.Table(
    "ll_monitor_series",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    #: primary, canary, shadow (or "all" for a window's totals)
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("window_start", UTCDateTime(), nullable=False),
    sa.Column("window_end", UTCDateTime(), nullable=False),
    #: e.g. feature_drift.wasserstein_normed, drift.share, quality.null_share,
    #: performance.f1, estimated.accuracy, health.latency_p99_ms
    sa.Column("metric", sa.String(96), nullable=False),
    #: The column a per-feature metric is about ("" for the model as a whole).
    sa.Column("feature", sa.String(255), nullable=False),
    sa.Column("value", sa.Float(), nullable=True),
    sa.Column("threshold", sa.Float(), nullable=True),
    #: ok, drift, alert, insufficient_data
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("rows", sa.BigInteger(), nullable=False),
    sa.Column("run_id", sa.String(32), nullable=False),
    sa.Column("computed_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint(
        "model",
        "version",
        "role",
        "window_start",
        "window_end",
        "metric",
        "feature",
        name="uq_ll_monitor_series_window_metric",
    ),
    sa.Index("ix_ll_monitor_series_model_metric_window_end", "model", "metric", "window_end"),
)

#: Requests that got no answer from a version (or, for a canary, were answered by the
#: primary instead), counted per (model, version, role, second, kind, column): ``invalid``
#: (the rows did not match the signature: the type errors and missing columns of data
#: quality), ``model_error`` (the model raised). Written by the server a few times a second
#: at most, so the monitor's error share is exact for windows of any length.
failures = sa.Table(
    "ll_prediction_failures",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    #: The second the requests arrived in (UTC, truncated).
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(48), nullable=False),
    #: The first column a validation problem named ("" when none).
    sa.Column("column", sa.String(255), nullable=False),
    sa.Column("requests", sa.BigInteger(), nullable=False),
    sa.Column("rows", sa.BigInteger(), nullable=False),
    sa.Index("ix_ll_prediction_failures_model_at", "model", "at"),
)

TABLES = (prediction_index, feedback, references, monitor_runs, series, failures)
