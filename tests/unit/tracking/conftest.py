"""Fixtures for tracking tests: a migrated store (SQLite or PostgreSQL) and a tracker with
a short heartbeat, so that dead-run detection is tested in tenths of a second."""

from __future__ import annotations

import pytest

from loopline.store.stores import Stores
from loopline.tracking import Tracker


@pytest.fixture
def tracker(stores: Stores) -> Tracker:
    return Tracker(stores, heartbeat_interval=0.1, dead_after=1.0)


@pytest.fixture
def sqlite_tracker(sqlite_stores: Stores) -> Tracker:
    return Tracker(sqlite_stores, heartbeat_interval=0.1, dead_after=1.0)
