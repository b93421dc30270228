"""The small vocabulary shared by every layer."""

from __future__ import annotations

from typing import NewType

#: A key in an object store: a relative, '/'-separated path that cannot escape the store.
ObjectKey = NewType("ObjectKey", str)

#: A sha256 content digest as 64 lowercase hex characters.
Digest = NewType("Digest", str)

#: A URL naming a store: ``sqlite:///...``, ``postgresql+psycopg://...``, ``s3://...``, a path.
StoreURL = NewType("StoreURL", str)


class Unset:
    """The type of :data:`UNSET`: "no value given", where None is a meaningful value
    (``expect=None`` means "expect nothing there")."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET = Unset()
