from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopline.config import settings_for
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores


@pytest.fixture
def stores(tmp_path: Path, metadata_url: str) -> Iterator[Stores]:
    """A migrated project store: SQLite or PostgreSQL metadata, local artifacts."""
    (tmp_path / "artifacts").mkdir()
    settings = settings_for(
        tmp_path,
        environ={
            "LOOPLINE_METADATA_URL": metadata_url,
            "LOOPLINE_ARTIFACTS_URL": str(tmp_path / "artifacts"),
        },
    )
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    with Stores.open(settings) as opened:
        yield opened
