"""Which project a metadata database belongs to, so two projects cannot share one silently.

A project is its two stores: datasets, runs and models are rows in the database whose
blobs live in the artifact store. A second project pointed at the same database with a
different artifact store would list the first one's datasets and models and then find
none of their blobs ("does not match the registry"). So the database records, in
``ll_project``, the artifact store it belongs to: ``loopline init`` and
``loopline db upgrade`` bind it, and every open of the stores checks it (one small query).

Several machines (or clones) of one project share the database and the artifact store:
they all agree on the artifact URL, and nothing is refused. Separate projects on one
PostgreSQL server each get their own database or schema
(``?options=-csearch_path%3Dproject_a``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from loopline.store.db import dialects
from loopline.store.db.engine import Database
from loopline.store.db.schema import project
from loopline.store.errors import ProjectConflictError

_KEY = "project"


@dataclass(frozen=True)
class ProjectBinding:
    project_id: str
    artifacts_url: str
    project_dir: str | None
    created_at: datetime


def _same(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def read_binding(conn: sa.Connection) -> ProjectBinding | None:
    """The project the database is bound to, or None (not bound yet, or not migrated)."""
    if not sa.inspect(conn).has_table(project.name):
        return None
    row = conn.execute(sa.select(project).where(project.c.key == _KEY)).first()
    if row is None:
        return None
    return ProjectBinding(row.project_id, row.artifacts_url, row.project_dir, row.created_at)


def check_binding(conn: sa.Connection, display_url: str, artifacts_url: str) -> None:
    """Raise ProjectConflictError when the database belongs to another artifact store."""
    row = conn.execute(
        sa.select(project.c.artifacts_url, project.c.project_dir).where(project.c.key == _KEY)
    ).first()
    if row is not None and not _same(row.artifacts_url, artifacts_url):
        raise ProjectConflictError(display_url, row.artifacts_url, artifacts_url, row.project_dir)


def refuse_foreign(db: Database, artifacts_url: str) -> None:
    """Raise ProjectConflictError when ``db`` is bound to another artifact store (checked
    before migrating, so init never upgrades another project's database)."""
    with db.read() as conn:
        bound = read_binding(conn)
    if bound is not None and not _same(bound.artifacts_url, artifacts_url):
        raise ProjectConflictError(
            db.display_url, bound.artifacts_url, artifacts_url, bound.project_dir
        )


def bind_project(db: Database, artifacts_url: str, project_dir: str | None) -> ProjectBinding:
    """Bind the (migrated) database to ``artifacts_url``, or check it is bound to it."""

    def fn(conn: sa.Connection) -> ProjectBinding:
        bound = read_binding(conn)
        if bound is not None:
            if not _same(bound.artifacts_url, artifacts_url):
                raise ProjectConflictError(
                    db.display_url, bound.artifacts_url, artifacts_url, bound.project_dir
                )
            return bound
        now = dialects.current_time(conn)
        new = ProjectBinding(uuid.uuid4().hex, artifacts_url.rstrip("/"), project_dir, now)
        conn.execute(
            project.insert().values(
                key=_KEY,
                project_id=new.project_id,
                artifacts_url=new.artifacts_url,
                project_dir=project_dir,
                created_at=now,
            )
        )
        return new

    return db.run_write(fn)
