"""Fixtures of the monitor's tests: a trained model to watch (see support.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from loopline.store.stores import Stores

from .support import Trained, make_trained


@pytest.fixture
def trained_factory(stores: Stores) -> Callable[..., Trained]:
    def make(n: int = 6_000, seed: int = 1) -> Trained:
        return make_trained(stores, n, seed)

    return make


@pytest.fixture
def trained(trained_factory: Callable[..., Trained]) -> Trained:
    return trained_factory()
