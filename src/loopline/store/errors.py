"""The errors of the stores: the metadata database and the object (artifact) store.

ProjectConflictError  The metadata database is bound to another artifact store: another...
StoreError  A problem with one of the two stores (metadata database, object store)
    MetadataStoreError  A problem with the metadata database
        DatabaseUnreachableError  The metadata database cannot be reached
        SchemaError  The database schema is not at the revision this loopline expects
        DatabaseFullError  The metadata database cannot grow: the disk holding it, its...
        DatabaseIOError  The metadata database cannot be read or written: an I/O error,...
    ObjectStoreError  A problem with the object (artifact) store
        InvalidKeyError  An object key that is not allowed (it could escape the store o...
            InvalidDigestError  A string that is not a sha256 digest was used to name a...
        ObjectNotFoundError  No object is stored under the key
        BlobIntegrityError  An object's content does not match the sha256 it was stored...
        StoreUnreachableError  The object store cannot be reached or used (missing buck...
        StoreFullError  The store ran out of space while writing; the partial object wa...
"""

from __future__ import annotations

from loopline.errors import ConfigError, IntegrityError, LooplineError


class ProjectConflictError(ConfigError):
    """The metadata database is bound to another artifact store: another project's."""

    def __init__(
        self, database: str, bound_to: str, artifacts_url: str, project_dir: str | None
    ) -> None:
        self.database = database
        self.bound_to = bound_to
        self.artifacts_url = artifacts_url
        self.project_dir = project_dir
        owner = f" (the project in {project_dir})" if project_dir else ""
        self.source = None
        LooplineError.__init__(
            self,
            f"Metadata database {database} belongs to the project whose artifacts are in "
            f"{bound_to}{owner}, not to this one (artifacts in {artifacts_url}): sharing it "
            "would mix the two projects' datasets, runs and models",
            hint="Give this project its own database, or its own PostgreSQL schema: "
            'metadata_url = "postgresql+psycopg://USER:PW@HOST/DB?options=-csearch_path%3DNAME"; '
            "or point artifacts_url at that project's store if it is the same project",
        )


class StoreError(LooplineError):
    """A problem with one of the two stores (metadata database, object store)."""


class MetadataStoreError(StoreError):
    """A problem with the metadata database."""


class DatabaseUnreachableError(MetadataStoreError):
    """The metadata database cannot be reached."""

    def __init__(self, url: str, reason: str, *, hint: str | None = None) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"Cannot reach the metadata database {url}: {reason}", hint=hint)


class SchemaError(MetadataStoreError):
    """The database schema is not at the revision this loopline expects."""

    def __init__(
        self, url: str, current: str | None, expected: str, *, hint: str | None = None
    ) -> None:
        self.url = url
        self.current = current
        self.expected = expected
        state = "not initialised" if current is None else f"at revision {current}"
        super().__init__(
            f"Metadata database {url} is {state}; this loopline expects revision {expected}",
            hint=hint,
        )


class DatabaseFullError(MetadataStoreError):
    """The metadata database cannot grow: the disk holding it, its quota or its size limit
    is full. The transaction that hit it was rolled back, so none of it was written."""

    def __init__(self, location: str, reason: str, *, hint: str | None = None) -> None:
        self.location = location
        self.reason = reason
        super().__init__(
            f"Metadata database {location} is full ({reason}); the transaction was rolled "
            "back and nothing was changed",
            hint=hint or "Free some space on the disk that holds it (or raise its quota) and retry",
        )


class DatabaseIOError(MetadataStoreError):
    """The metadata database cannot be read or written: an I/O error, or a read-only file,
    folder or server."""

    def __init__(self, location: str, reason: str, *, hint: str | None = None) -> None:
        self.location = location
        self.reason = reason
        super().__init__(
            f"Metadata database {location} cannot be read or written: {reason}", hint=hint
        )


class ObjectStoreError(StoreError):
    """A problem with the object (artifact) store."""


class InvalidKeyError(ObjectStoreError):
    """An object key that is not allowed (it could escape the store or is malformed)."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(
            f"Invalid object key {key!r}: {reason}",
            hint="Keys are relative paths of '/'-separated names, without '..', '.', "
            "empty parts, backslashes or NUL",
        )


class InvalidDigestError(InvalidKeyError):
    """A string that is not a sha256 digest was used to name a content-addressed blob."""

    def __init__(self, digest: str, reason: str) -> None:
        self.key = digest
        self.reason = reason
        ObjectStoreError.__init__(
            self,
            f"Invalid content digest {digest!r}: {reason}",
            hint="A digest is the sha256 of the content as 64 lowercase hexadecimal characters",
        )


class ObjectNotFoundError(ObjectStoreError):
    """No object is stored under the key."""

    def __init__(self, key: str, store: str) -> None:
        self.key = key
        self.store = store
        super().__init__(f"No object {key!r} in store {store}")


class BlobIntegrityError(ObjectStoreError, IntegrityError):
    """An object's content does not match the sha256 it was stored under."""

    def __init__(self, key: str, expected: str, actual: str, store: str) -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        self.store = store
        super().__init__(
            f"Object {key!r} in store {store} is corrupted or was tampered with: "
            f"expected sha256 {expected}, found {actual}",
            hint="Restore the object from a backup, or re-create the artifact that wrote it",
        )


class StoreUnreachableError(ObjectStoreError):
    """The object store cannot be reached or used (missing bucket, no credentials...)."""

    def __init__(self, url: str, reason: str, *, hint: str | None = None) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"Cannot use the object store {url}: {reason}", hint=hint)


class StoreFullError(ObjectStoreError):
    """The store ran out of space while writing; the partial object was removed."""

    def __init__(self, key: str, store: str, reason: str) -> None:
        self.key = key
        self.store = store
        self.reason = reason
        super().__init__(
            f"Store {store} is full: could not write {key!r} ({reason}); nothing was written",
            hint="Free some space (or raise the quota) and retry",
        )
