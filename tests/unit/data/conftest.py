"""Fixtures of the data layer's tests: migrated stores on SQLite/PostgreSQL, memory, S3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopline.config import S3Settings, Settings
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores


def open_stores(
    tmp_path: Path, metadata_url: str, artifacts_url: str, s3: S3Settings | None = None
) -> Stores:
    settings = Settings(
        project_dir=tmp_path,
        store_dir=tmp_path / ".loopline",
        metadata_url=metadata_url,
        artifacts_url=artifacts_url,
        s3=s3 or S3Settings(),
    )
    with Database(metadata_url, create=True) as db:
        migrate.upgrade(db)
    return Stores.open(settings)


@pytest.fixture
def stores(tmp_path: Path, metadata_url: str) -> Iterator[Stores]:
    """Migrated stores: the database of ``metadata_url`` (SQLite, PostgreSQL), local files."""
    with open_stores(tmp_path, metadata_url, str(tmp_path / "artifacts")) as s:
        yield s


@pytest.fixture
def local_stores(tmp_path: Path) -> Iterator[Stores]:
    """SQLite and an in-memory object store: for tests that need one database only."""
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    with open_stores(tmp_path, url, "memory://") as s:
        yield s


@pytest.fixture
def s3_stores(tmp_path: Path, s3_url: str, s3_settings: S3Settings) -> Iterator[Stores]:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    with open_stores(tmp_path, url, s3_url, s3=s3_settings) as s:
        yield s
