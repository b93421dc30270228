"""Fixtures for tracking tests: a migrated store (SQLite or PostgreSQL) and a tracker with
a short heartbeat, so that dead-run detection is tested in tenths of a second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loopline.config import settings_for
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.stores import Stores
from loopline.tracking import Tracker


def open_stores(project: Path, metadata_url: str) -> Stores:
    (project / "artifacts").mkdir(parents=True, exist_ok=True)
    settings = settings_for(
        project,
        environ={
            "LOOPLINE_METADATA_URL": metadata_url,
            "LOOPLINE_ARTIFACTS_URL": str(project / "artifacts"),
        },
    )
    with Database(settings.metadata_url, create=True) as db:
        migrate.upgrade(db)
    return Stores.open(settings)


@pytest.fixture
def stores(tmp_path: Path, metadata_url: str) -> Iterator[Stores]:
    """A migrated project store on each metadata backend."""
    with open_stores(tmp_path, metadata_url) as opened:
        yield opened


@pytest.fixture
def sqlite_stores(tmp_path: Path) -> Iterator[Stores]:
    """The same on SQLite only, for tests of logic that does not depend on the backend."""
    with open_stores(tmp_path, f"sqlite:///{tmp_path / 'meta.db'}") as opened:
        yield opened


@pytest.fixture
def tracker(stores: Stores) -> Tracker:
    return Tracker(stores, heartbeat_interval=0.1, dead_after=1.0)


@pytest.fixture
def sqlite_tracker(sqlite_stores: Stores) -> Tracker:
    return Tracker(sqlite_stores, heartbeat_interval=0.1, dead_after=1.0)
