"""Tables of the data layer: datasets, their versions, and the splits made from them.

- ``ll_datasets``: one row per dataset name, with its schema (JSON, inferred from the first
  version) and its current (latest) version number.
- ``ll_dataset_versions``: one row per distinct content of a dataset. ``digest`` is the
  sha256 of the canonical content (see :mod:`loopline.data.content`) and is unique per
  dataset, as is ``version`` (1, 2, 3 ...): two processes adding the same data at once
  make one version, and version numbers never collide. The Parquet data and the profile
  are blobs in the content-addressed store named by ``parquet_digest`` and
  ``profile_digest``.
- ``ll_dataset_splits``: a train/validation/test split of one version. ``params_key``
  (sha256 of seed, fractions and stratify column) is unique per version, so asking for
  the same split again returns the recorded one; ``assignment_digest`` names the blob that
  says which split each row went to (one byte per row: 0 train, 1 validation, 2 test).

The migration that creates them is ``store/db/migrations/versions/0002_data.py``.
"""

from __future__ import annotations

import sqlalchemy as sa

from loopline.store.db.schema import metadata
from loopline.store.db.types import ID, UTCDateTime

datasets = sa.Table(
    "ll_datasets",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("schema", sa.JSON(), nullable=False),
    sa.Column("current_version", sa.Integer(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.UniqueConstraint("name"),
)

dataset_versions = sa.Table(
    "ll_dataset_versions",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("dataset_id", ID, sa.ForeignKey("ll_datasets.id"), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("parquet_digest", sa.String(64), nullable=False),
    sa.Column("profile_digest", sa.String(64), nullable=False),
    sa.Column("n_rows", sa.BigInteger(), nullable=False),
    sa.Column("n_columns", sa.Integer(), nullable=False),
    sa.Column("n_bytes", sa.BigInteger(), nullable=False),
    sa.Column("source", sa.Text(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("validation", sa.JSON(), nullable=False),
    sa.Column("description", sa.Text(), nullable=True),
    sa.UniqueConstraint("dataset_id", "version"),
    sa.UniqueConstraint("dataset_id", "digest"),
)

dataset_splits = sa.Table(
    "ll_dataset_splits",
    metadata,
    sa.Column("id", ID, primary_key=True, autoincrement=True),
    sa.Column("version_id", ID, sa.ForeignKey("ll_dataset_versions.id"), nullable=False),
    sa.Column("params_key", sa.String(64), nullable=False),
    sa.Column("seed", sa.BigInteger(), nullable=False),
    sa.Column("fractions", sa.JSON(), nullable=False),
    sa.Column("stratify", sa.String(255), nullable=True),
    sa.Column("assignment_digest", sa.String(64), nullable=False),
    sa.Column("sizes", sa.JSON(), nullable=False),
    sa.Column("digests", sa.JSON(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.UniqueConstraint("version_id", "params_key"),
)
