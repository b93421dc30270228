"""Tables the server owns: API keys, stored hashed.

A key is shown once, when created; the database keeps only its sha256 (a key is 32 random
bytes, so a plain hash is as strong as a slow one) and a short public id to find the row.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopline.store.db.schema import metadata
from loopline.store.db.types import UTCDateTime

api_keys = sa.Table(
    "ll_api_keys",
    metadata,
    #: The public part of the key (``ll_<key_id>_<secret>``), shown by ``keys ls``.
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), nullable=True),
    #: "read", "predict" or "admin".
    sa.Column("role", sa.String(16), nullable=False),
    #: sha256 of the whole key, hex. The key itself is never stored.
    sa.Column("key_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_by", sa.String(128), nullable=True),
)

TABLES = (api_keys,)
