"""One handle on both stores of a project, opened from its settings.

Layers above take a :class:`Stores` and never build engines or object stores themselves,
so where data lives is decided once, by the settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from loopline.store.db.engine import Database
from loopline.store.objects.base import ObjectStore, open_object_store
from loopline.store.objects.cas import ContentStore

if TYPE_CHECKING:
    from loopline.config import Settings


@dataclass
class Stores:
    settings: Settings
    db: Database
    objects: ObjectStore
    cas: ContentStore

    @classmethod
    def open(cls, settings: Settings, *, check_schema: bool = True, create: bool = False) -> Stores:
        """Open both stores. With ``check_schema`` the database must be fully migrated and
        not bound to another project's artifact store."""
        db = Database(settings.metadata_url, busy_timeout=settings.db_busy_timeout, create=create)
        if check_schema:
            from loopline.store.db.migrate import require_current
            from loopline.store.db.project import check_binding

            try:
                require_current(db)
                with db.read() as conn:
                    check_binding(conn, db.display_url, settings.artifacts_url)
            except BaseException:
                db.dispose()
                raise
        objects = open_object_store(settings.artifacts_url, s3=settings.s3)
        return cls(settings=settings, db=db, objects=objects, cas=ContentStore(objects))

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
