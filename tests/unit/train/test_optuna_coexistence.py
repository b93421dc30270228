"""Optuna's tables and loopline's share one database without colliding, whichever comes
first: each keeps its own Alembic version table, loopline's schema check still passes and
Optuna still loads its study."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.db.schema import TABLE_PREFIX, VERSION_TABLE
from loopline.train.storage import close_storage, open_storage, optuna_url


def _create_study(url: str) -> None:
    import optuna

    storage = open_storage(url)
    try:
        study = optuna.create_study(storage=storage, study_name="shared", direction="minimize")
        study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.5) ** 2, n_trials=3)
    finally:
        close_storage(storage)


def _optuna_head() -> str:
    import optuna
    from alembic.script import ScriptDirectory

    folder = Path(optuna.__file__).parent / "storages" / "_rdb" / "alembic"
    head = ScriptDirectory(str(folder)).get_current_head()
    assert head is not None
    return head


@pytest.mark.parametrize("first", ["loopline", "optuna"])
def test_loopline_and_optuna_share_a_database(metadata_url: str, first: str) -> None:
    import optuna

    with Database(metadata_url, create=True) as db:
        if first == "loopline":
            migrate.upgrade(db)
            _create_study(metadata_url)
        else:
            _create_study(metadata_url)
            assert migrate.current_revision(db) is None
            migrate.upgrade(db)

        migrate.require_current(db)  # loopline's check ignores Optuna's version table
        assert migrate.upgrade(db) == (migrate.HEAD, migrate.HEAD)  # and upgrades are no-ops
        with db.read() as conn:
            names = set(sa.inspect(conn).get_table_names())
            loopline_version = (
                conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
            )
            optuna_version = (
                conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
            )
        assert loopline_version == [migrate.HEAD]
        assert optuna_version == [_optuna_head()]
        assert {"studies", "trials", "trial_params", "version_info", "alembic_version"} <= names
        optuna_tables = {n for n in names if not n.startswith(TABLE_PREFIX)} - {VERSION_TABLE}
        assert not any(n.startswith(TABLE_PREFIX) for n in optuna_tables)
        assert {n for n in names if n.startswith(TABLE_PREFIX)}  # loopline's are all there

    storage = open_storage(metadata_url)
    try:
        loaded = optuna.load_study(study_name="shared", storage=storage)
        assert len(loaded.trials) == 3
        assert loaded.best_value == min(t.value for t in loaded.trials)
    finally:
        close_storage(storage)
    # Optuna's own loading, with the plain URL and no loopline involvement, works too.
    plain = optuna.storages.RDBStorage(optuna_url(metadata_url).replace("{{", "{"))
    try:
        assert [s.study_name for s in plain.get_all_studies()] == ["shared"]
    finally:
        plain.engine.dispose()


def test_optuna_urls() -> None:
    from loopline.train.errors import TrainError

    assert optuna_url("sqlite:////tmp/x/meta.db") == "sqlite:////tmp/x/meta.db"
    assert optuna_url("sqlite+pysqlite:////tmp/m.db") == "sqlite:////tmp/m.db"
    assert optuna_url("postgresql://u:p@h:5432/db") == "postgresql+psycopg://u:p@h:5432/db"
    # Optuna formats the URL as a template ({SCHEMA_VERSION}): no brace may reach it raw,
    # and the URL must still name the same file.
    odd = "sqlite:////tmp/a b/{x}/m.db"
    assert "{" not in optuna_url(odd)
    assert sa.make_url(optuna_url(odd)).database == "/tmp/a b/{x}/m.db"
    with pytest.raises(TrainError, match="in-memory"):
        optuna_url("sqlite://")
    with pytest.raises(TrainError, match="expected a SQLite or PostgreSQL URL"):
        optuna_url("mysql://u:secret@h/db")
    with pytest.raises(TrainError) as info:
        optuna_url("mysql://u:secret@h/db")
    assert "secret" not in str(info.value)
