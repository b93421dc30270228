"""Every error loopline raises, in one hierarchy.

Messages name the object, what was expected, and the next step. Errors carry their
data as attributes so callers (the CLI, the server) can decide how to present them;
the mapping to exit codes and HTTP statuses lives only in ``cli`` and ``serve``.

    LooplineError
    ├── ConfigError                      loopline.toml or LOOPLINE_* is wrong
    ├── ProjectError                     no project here, or one exists already
    └── StoreError
        ├── MetadataStoreError
        │   ├── DatabaseUnreachableError  cannot connect (server down, bad URL, no file)
        │   └── SchemaError               database not migrated, or newer than this loopline
        └── ObjectStoreError
            ├── InvalidKeyError           key escapes the store, is absolute, has NUL ...
            │   └── InvalidDigestError    not a sha256 digest (64 lowercase hex characters)
            ├── ObjectNotFoundError       no object under that key
            ├── IntegrityError            content does not match its recorded sha256
            ├── StoreUnreachableError     bucket/folder missing, endpoint down, no credentials
            └── StoreFullError            the disk or quota is full; nothing was written
"""

from __future__ import annotations


class LooplineError(Exception):
    """Root of every loopline error.

    ``hint`` is the next thing the user should do (often a command to run).
    """

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        if not self.hint:
            return self.message
        sep = " " if self.message.endswith((".", "!", "?")) else ". "
        return f"{self.message}{sep}{self.hint}"


class ConfigError(LooplineError):
    """The configuration (``loopline.toml`` or a ``LOOPLINE_*`` variable) is invalid."""

    def __init__(self, message: str, *, source: str | None = None, hint: str | None = None):
        self.source = source
        super().__init__(f"{source}: {message}" if source else message, hint=hint)


class ProjectError(LooplineError):
    """No loopline project where one was expected, or one already exists."""


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


class IntegrityError(ObjectStoreError):
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
