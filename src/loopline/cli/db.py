"""``loopline db``: apply and inspect migrations of the metadata database."""

from __future__ import annotations

import click

from loopline.cli.output import console, json_option, print_json


@click.group("db", no_args_is_help=True)
def db_group() -> None:
    """Migrate and inspect the metadata database."""


@db_group.command()
@json_option
def upgrade(as_json: bool) -> None:
    """Apply every migration the database is missing (safe to run again, and concurrently)."""
    from loopline.config import load_settings
    from loopline.store.db import migrate
    from loopline.store.db.engine import Database
    from loopline.store.db.events import record_event
    from loopline.store.db.project import bind_project, refuse_foreign

    settings = load_settings()
    with Database(settings.metadata_url, busy_timeout=settings.db_busy_timeout, create=True) as db:
        refuse_foreign(db, settings.artifacts_url)
        before, after = migrate.upgrade(db)
        bind_project(db, settings.artifacts_url, str(settings.project_dir))
        if before != after:
            db.run_write(
                lambda c: record_event(
                    c, "db.upgrade", db.display_url, {"from": before, "to": after}
                )
            )
        if as_json:
            print_json(
                {
                    "url": db.display_url,
                    "before": before,
                    "after": after,
                    "changed": before != after,
                }
            )
        elif before == after:
            console.print(f"{db.display_url} is up to date (revision {after})")
        else:
            console.print(f"{db.display_url}: migrated {before or 'empty'} → {after}")


@db_group.command()
@json_option
def current(as_json: bool) -> None:
    """Show the database's revision and the latest one. Exits 1 when they differ."""
    from loopline.config import load_settings
    from loopline.store.db import migrate
    from loopline.store.db.engine import Database

    settings = load_settings()
    with Database(settings.metadata_url, busy_timeout=settings.db_busy_timeout) as db:
        rev = migrate.current_revision(db)
        if as_json:
            print_json({"url": db.display_url, "revision": rev, "latest": migrate.HEAD})
        else:
            console.print(f"{db.display_url}: revision {rev or 'none'} (latest {migrate.HEAD})")
    if rev != migrate.HEAD:
        raise click.exceptions.Exit(1)
