"""Fixtures for training tests: a migrated project store (SQLite or PostgreSQL), a tracker
with a short heartbeat, and a small seeded classification problem."""

from __future__ import annotations

from typing import Any

import pytest

from loopline.store.stores import Stores
from loopline.tracking import Tracker


@pytest.fixture
def tracker(stores: Stores) -> Tracker:
    return Tracker(stores, heartbeat_interval=0.2, dead_after=2.0)


@pytest.fixture
def sqlite_tracker(sqlite_stores: Stores) -> Tracker:
    return Tracker(sqlite_stores, heartbeat_interval=0.2, dead_after=2.0)


@pytest.fixture(scope="session")
def classification() -> tuple[Any, Any, Any, Any]:
    """(X_train, y_train, X_valid, y_valid): 400 rows, 8 features, seeded."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    X, y = make_classification(
        n_samples=400, n_features=8, n_informative=5, random_state=0, class_sep=1.2
    )
    X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.3, random_state=0)
    return X_train, y_train, X_valid, y_valid
