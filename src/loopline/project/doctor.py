"""``loopline doctor``: where each store lives, and whether it is reachable and migrated."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from loopline.config import Settings, redact_url
from loopline.errors import ConfigError, LooplineError
from loopline.store.db import migrate
from loopline.store.db.engine import Database, sqlite_file
from loopline.store.objects.base import open_object_store

Status = Literal["ok", "warn", "fail"]
LOW_DISK_BYTES = 1 << 30


@dataclass
class Check:
    name: str
    status: Status
    where: str
    detail: str
    hint: str | None = None


@dataclass
class DoctorReport:
    settings: Settings
    checks: list[Check] = field(default_factory=list)
    #: The settings themselves could not be read: nothing else was checked.
    config_error: bool = False

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "project_dir": str(self.settings.project_dir),
            "checks": [
                {
                    "name": c.name,
                    "status": c.status,
                    "where": c.where,
                    "detail": c.detail,
                    "hint": c.hint,
                }
                for c in self.checks
            ],
        }


def unreadable_settings(exc: ConfigError) -> DoctorReport:
    """The report when loopline.toml (or a LOOPLINE_* variable) cannot be read at all."""
    from pathlib import Path

    from loopline.config import find_project_dir, settings_for

    project_dir = find_project_dir() or Path.cwd()
    where = exc.source or str(project_dir / "loopline.toml")
    report = DoctorReport(settings_for(project_dir, environ={}, read_file=False))
    report.config_error = True
    report.checks.append(Check("settings", "fail", where, exc.message, exc.hint))
    return report


def diagnose(settings: Settings) -> DoctorReport:
    report = DoctorReport(settings)
    add = report.checks.append
    src = settings.sources
    add(
        Check(
            "settings",
            "ok",
            str(settings.config_file) if settings.config_file else "(no loopline.toml)",
            f"metadata_url from {src.get('metadata_url', 'default')}, "
            f"artifacts_url from {src.get('artifacts_url', 'default')}",
        )
    )

    add(_sections_check(settings))

    display = redact_url(settings.metadata_url)
    db: Database | None = None
    try:
        db = Database(settings.metadata_url, busy_timeout=min(settings.db_busy_timeout, 5.0))
        db.check()
        add(Check("metadata store", "ok", display, _describe_db(db)))
    except LooplineError as exc:
        add(Check("metadata store", "fail", display, exc.message, exc.hint))
    if db is not None and report.checks[-1].status == "ok":
        try:
            current = migrate.current_revision(db)
            if current == migrate.HEAD:
                add(Check("schema", "ok", display, f"at revision {current} (latest)"))
            else:
                migrate.require_current(db)
        except LooplineError as exc:
            add(Check("schema", "fail", display, exc.message, exc.hint))
        add(_project_check(db, settings, display))
    if db is not None:
        db.dispose()

    try:
        objects = open_object_store(settings.artifacts_url, s3=settings.s3)
        objects.check()
        detail = "readable and writable"
        if "://" in settings.artifacts_url and settings.s3.endpoint_url:
            detail += f" (endpoint {settings.s3.endpoint_url})"
        add(Check("artifact store", "ok", settings.artifacts_url, detail))
    except LooplineError as exc:
        add(Check("artifact store", "fail", settings.artifacts_url, exc.message, exc.hint))

    for label, path in _local_paths(settings):
        add(_disk_check(label, path))
    return report


def _sections_check(settings: Settings) -> Check:
    """Every section of loopline.toml parses for the layer that reads it."""
    from loopline.loop.gates import gate_configs
    from loopline.monitor.settings import monitor_configs
    from loopline.serve.settings import load_serve_settings

    where = str(settings.config_file) if settings.config_file else "(no loopline.toml)"
    try:
        load_serve_settings(settings)
        gates = gate_configs(settings)
        monitors = monitor_configs(settings)
    except ConfigError as exc:
        return Check("sections", "fail", exc.source or where, exc.message, exc.hint)
    tables = sorted(settings.tables)
    detail = f"[{'], ['.join(tables)}] read" if tables else "no sections"
    if gates:
        detail += f"; gates for {', '.join(sorted(gates))}"
    if monitors:
        detail += f"; monitors for {', '.join(sorted(monitors))}"
    return Check("sections", "ok", where, detail)


def _project_check(db: Database, settings: Settings, display: str) -> Check:
    """Whether the database belongs to this project's artifact store (or another's)."""
    from loopline.store.db.project import read_binding
    from loopline.store.errors import ProjectConflictError

    try:
        with db.read() as conn:
            bound = read_binding(conn)
    except LooplineError as exc:
        return Check("project", "fail", display, exc.message, exc.hint)
    if bound is None:
        return Check(
            "project",
            "warn",
            display,
            "the database is not bound to a project yet",
            "Bind it to this project's artifact store with: loopline db upgrade",
        )
    if bound.artifacts_url.rstrip("/") != settings.artifacts_url.rstrip("/"):
        conflict = ProjectConflictError(
            display, bound.artifacts_url, settings.artifacts_url, bound.project_dir
        )
        return Check("project", "fail", display, conflict.message, conflict.hint)
    since = bound.created_at.strftime("%Y-%m-%d %H:%M UTC")
    return Check(
        "project",
        "ok",
        display,
        f"project {bound.project_id[:12]}, bound to {bound.artifacts_url} since {since}",
    )


def _describe_db(db: Database) -> str:
    import sqlalchemy as sa

    with db.read() as conn:
        if db.is_sqlite:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            version = conn.exec_driver_sql("select sqlite_version()").scalar()
            return f"reachable: SQLite {version}, journal {mode}"
        version = conn.execute(sa.text("SHOW server_version")).scalar()
        return f"reachable: PostgreSQL {version}"


def _local_paths(settings: Settings) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    sqlite_path = sqlite_file(settings.metadata_url)
    if sqlite_path is not None:
        out.append(("disk (metadata)", sqlite_path.parent))
    if "://" not in settings.artifacts_url:
        out.append(("disk (artifacts)", Path(settings.artifacts_url)))
    return out


def _disk_check(label: str, path: Path) -> Check:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    usage = shutil.disk_usage(existing)
    free = usage.free
    text = f"{free / (1 << 30):.1f} GiB free of {usage.total / (1 << 30):.1f} GiB"
    if free < LOW_DISK_BYTES:
        return Check(label, "warn", str(path), text, "Free some disk space before large runs")
    return Check(label, "ok", str(path), text)
