"""The small vocabulary shared by every layer."""

from __future__ import annotations

from typing import NewType

#: A key in an object store: a relative, '/'-separated path that cannot escape the store.
ObjectKey = NewType("ObjectKey", str)

#: A sha256 content digest as 64 lowercase hex characters.
Digest = NewType("Digest", str)

#: A URL naming a store: ``sqlite:///...``, ``postgresql+psycopg://...``, ``s3://...``, a path.
StoreURL = NewType("StoreURL", str)
