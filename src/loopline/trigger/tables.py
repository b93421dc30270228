"""The table the trigger layer owns: the watcher's ledger of files (``ll_trigger_files``).

One row per version of a source file: ``(source, key, etag)`` is unique, so a file is
claimed once; ``status`` goes ``processing`` -> ``done``, or ``processing`` -> ``retry``
-> ``processing`` ... -> ``failed`` after the last attempt.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopline.store.db.schema import metadata
from loopline.store.db.types import ID, UTCDateTime

STATUSES = ("processing", "done", "retry", "failed")

trigger_files = sa.Table(
    "ll_trigger_files",
    metadata,
    sa.Column(
        "id",
        ID,
        primary_key=True,
        autoincrement=True,
    ),
    #: The watcher that claimed the file (a restarted watcher of that name takes it over).
    sa.Column("watcher", sa.String(128), nullable=False),
    #: The watched folder or prefix, as given (``s3://bucket/in`` or an absolute path).
    sa.Column("source", sa.String(512), nullable=False),
    sa.Column("key", sa.String(1024), nullable=False),
    sa.Column("etag", sa.String(128), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    #: Where the scored output goes under the destination (deterministic: name + hash).
    sa.Column("output_key", sa.String(1024), nullable=False),
    sa.Column("rows_scored", sa.BigInteger(), nullable=True),
    sa.Column("rows_invalid", sa.BigInteger(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("source", "key", "etag"),
    sa.Index("ix_ll_trigger_files_source_status", "source", "status"),
)

TABLES = (trigger_files,)
