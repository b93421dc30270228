"""One database, one project: a second project's init (or open) on a database bound to
another artifact store is refused; clones of one project share it; PostgreSQL schemas
give each project its own room on one server."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from loopline.cli.main import exit_code_for
from loopline.config import settings_for
from loopline.project.create import init_project
from loopline.project.doctor import diagnose
from loopline.store.db import migrate
from loopline.store.db.engine import Database
from loopline.store.db.project import read_binding
from loopline.store.errors import ProjectConflictError
from loopline.store.stores import Stores


def _env(url: str, artifacts: Path) -> dict[str, str]:
    return {"LOOPLINE_METADATA_URL": url, "LOOPLINE_ARTIFACTS_URL": str(artifacts)}


def test_a_second_project_cannot_share_a_database(tmp_path: Path, metadata_url: str) -> None:
    env_a = _env(metadata_url, tmp_path / "a" / "artifacts")
    env_b = _env(metadata_url, tmp_path / "b" / "artifacts")
    init_project(tmp_path / "a", environ=env_a)
    with Database(metadata_url) as db, db.read() as conn:
        bound = read_binding(conn)
    assert bound is not None
    assert bound.artifacts_url == str(tmp_path / "a" / "artifacts")

    with pytest.raises(ProjectConflictError) as err:
        init_project(tmp_path / "b", environ=env_b)
    assert str(tmp_path / "a" / "artifacts") in str(err.value)
    assert "search_path" in str(err.value)
    assert exit_code_for(err.value) == 2

    # Opening the stores with the other artifact store is refused too.
    with pytest.raises(ProjectConflictError):
        Stores.open(settings_for(tmp_path / "b", environ=env_b))

    report_b = diagnose(settings_for(tmp_path / "b", environ=env_b))
    project_b = next(c for c in report_b.checks if c.name == "project")
    assert project_b.status == "fail"
    assert not report_b.ok
    report_a = diagnose(settings_for(tmp_path / "a", environ=env_a))
    project_a = next(c for c in report_a.checks if c.name == "project")
    assert project_a.status == "ok"


def test_clones_of_one_project_share_its_stores(tmp_path: Path, metadata_url: str) -> None:
    shared = tmp_path / "shared-artifacts"
    init_project(tmp_path / "laptop", environ=_env(metadata_url, shared))
    again = init_project(tmp_path / "ci", environ=_env(metadata_url, shared))
    assert again.revision_after == migrate.HEAD
    with Stores.open(settings_for(tmp_path / "ci", environ=_env(metadata_url, shared))) as s:
        assert s.settings.artifacts_url == str(shared)


def test_a_database_migrated_without_a_project_is_bound_by_db_upgrade(
    tmp_path: Path, metadata_url: str
) -> None:
    from click.testing import CliRunner

    from loopline.cli.main import cli

    with Database(metadata_url, create=True) as db:
        migrate.upgrade(db)
    env = _env(metadata_url, tmp_path / "artifacts")
    (tmp_path / "loopline.toml").write_text("")
    unbound = diagnose(settings_for(tmp_path, environ=env))
    assert next(c for c in unbound.checks if c.name == "project").status == "warn"
    result = CliRunner().invoke(
        cli, ["db", "upgrade"], env={**env, "LOOPLINE_PROJECT_DIR": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    with Database(metadata_url) as db, db.read() as conn:
        bound = read_binding(conn)
    assert bound is not None
    assert bound.artifacts_url == str(tmp_path / "artifacts")


@pytest.mark.postgres
def test_postgres_schemas_give_each_project_its_own_room(tmp_path: Path, postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA proj_a")
        conn.exec_driver_sql("CREATE SCHEMA proj_b")
    engine.dispose()
    sep = "&" if "?" in postgres_url else "?"
    for name in ("a", "b"):
        url = f"{postgres_url}{sep}options=-csearch_path%3Dproj_{name}"
        report = init_project(tmp_path / name, environ=_env(url, tmp_path / name / "artifacts"))
        assert report.revision_after == migrate.HEAD
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        tables = {
            (schema, name)
            for schema, name in conn.execute(
                sa.text(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_name = 'll_project'"
                )
            )
        }
    engine.dispose()
    assert tables == {("proj_a", "ll_project"), ("proj_b", "ll_project")}
