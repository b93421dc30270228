"""Opening Optuna's storage with a heartbeat warns nothing, whatever other threads do to
the process's warning filters (steps run in threads; one resetting the filters used to let
Optuna's ExperimentalWarning through, and warnings-as-errors failed the tuning step)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from loopline.train.storage import close_storage, open_storage


def test_a_heartbeat_storage_opens_without_a_warning_while_filters_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optuna.storages import RDBStorage

    original = RDBStorage.__init__

    def init_while_another_thread_resets_the_filters(self: Any, *args: Any, **kwargs: Any) -> None:
        warnings.resetwarnings()
        warnings.simplefilter("error")
        original(self, *args, **kwargs)

    monkeypatch.setattr(RDBStorage, "__init__", init_while_another_thread_resets_the_filters)
    with warnings.catch_warnings():
        storage = open_storage(f"sqlite:///{tmp_path / 'meta.db'}", heartbeat_interval=5)
    try:
        assert storage.get_heartbeat_interval() == 5
        assert storage.grace_period is None  # Optuna's default: twice the interval
    finally:
        close_storage(storage)
