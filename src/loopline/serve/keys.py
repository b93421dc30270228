"""API keys: created with a role, shown once, stored as a sha256, revoked by id.

A key looks like ``ll_<key_id>_<secret>``: ``key_id`` (12 hex characters) is public and
finds the row; the secret is 32 random bytes. The database holds the sha256 of the whole
key, compared in constant time. Roles are ordered: ``admin`` can do what ``predict`` can,
which can do what ``read`` can.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline.serve.errors import ApiKeyError
from loopline.store.db.types import to_utc

if TYPE_CHECKING:
    from loopline.store.db.engine import Database

ROLES = ("read", "predict", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
_KEY_RE = re.compile(r"ll_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


def role_allows(have: str, need: str) -> bool:
    """Whether a key of role ``have`` may do what needs role ``need``."""
    return _RANK.get(have, -1) >= _RANK[need]


def check_role(role: str) -> str:
    if role not in _RANK:
        raise ApiKeyError(
            f"Unknown role {role!r}; expected one of {', '.join(ROLES)}",
            hint="read: metadata and metrics; predict: predictions and feedback; admin: all",
        )
    return role


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_id_of(key: str) -> str | None:
    match = _KEY_RE.fullmatch(key)
    return None if match is None else match.group(1)


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str | None
    role: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
            "revoked_by": self.revoked_by,
            "active": self.active,
        }


@dataclass(frozen=True)
class NewKey:
    """A key just created: ``secret`` is the whole key, shown this once."""

    key: ApiKey
    secret: str


class KeyStore:
    """API keys in ``ll_api_keys`` (hashed); every change also goes to the audit log."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, role: str, *, name: str | None = None, actor: str | None = None) -> NewKey:
        import sqlalchemy as sa

        from loopline.serve.tables import api_keys
        from loopline.store.db.events import current_actor, record_event

        check_role(role)
        who = actor or current_actor()
        made: list[NewKey] = []

        def insert(conn: sa.Connection) -> None:
            # A fresh id on each try: an id collision (1 in 2^48) is retried as a race.
            key_id = secrets.token_hex(6)
            secret = f"ll_{key_id}_{secrets.token_urlsafe(32)}"
            now = datetime.now(UTC)
            conn.execute(
                api_keys.insert().values(
                    key_id=key_id,
                    name=name,
                    role=role,
                    key_sha256=hash_key(secret),
                    created_at=now,
                    created_by=who,
                )
            )
            record_event(conn, "apikey.create", key_id, {"role": role, "name": name}, actor=who)
            made.append(NewKey(ApiKey(key_id, name, role, now, who), secret))

        try:
            self.db.run_write(insert, conflicts=10)
        except sa.exc.IntegrityError as exc:
            raise ApiKeyError("Could not create a unique API key id") from exc
        return made[-1]

    def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        import sqlalchemy as sa

        from loopline.serve.tables import api_keys as t

        query = sa.select(t).order_by(t.c.created_at, t.c.key_id)
        if not include_revoked:
            query = query.where(t.c.revoked_at.is_(None))
        with self.db.read() as conn:
            return [_key(row) for row in conn.execute(query)]

    def revoke(self, key_id: str, *, actor: str | None = None) -> ApiKey:
        import sqlalchemy as sa

        from loopline.serve.tables import api_keys as t
        from loopline.store.db.events import current_actor, record_event

        wanted = key_id_of(key_id) or key_id.strip()
        who = actor or current_actor()

        def fn(conn: sa.Connection) -> ApiKey:
            row = conn.execute(sa.select(t).where(t.c.key_id == wanted)).first()
            if row is None:
                raise ApiKeyError(
                    f"No API key with id {wanted!r}", hint="List the keys with: loopline keys ls"
                )
            if row.revoked_at is None:
                now = datetime.now(UTC)
                conn.execute(
                    t.update().where(t.c.key_id == wanted).values(revoked_at=now, revoked_by=who)
                )
                record_event(conn, "apikey.revoke", wanted, {"role": row.role}, actor=who)
                row = conn.execute(sa.select(t).where(t.c.key_id == wanted)).first()
            return _key(row)

        return self.db.run_write(fn)

    def get(self, key_id: str) -> ApiKey | None:
        """The active key with this id, or None (unknown or revoked): for a session that
        was opened with the key and must end when it is revoked."""
        import sqlalchemy as sa

        from loopline.serve.tables import api_keys as t

        with self.db.read() as conn:
            row = conn.execute(sa.select(t).where(t.c.key_id == key_id)).first()
        if row is None or row.revoked_at is not None:
            return None
        return _key(row)

    def verify(self, key: str) -> ApiKey | None:
        """The active key matching ``key``, or None (unknown, malformed or revoked)."""
        import sqlalchemy as sa

        from loopline.serve.tables import api_keys as t

        key_id = key_id_of(key)
        if key_id is None:
            return None
        with self.db.read() as conn:
            row = conn.execute(sa.select(t).where(t.c.key_id == key_id)).first()
        if row is None or row.revoked_at is not None:
            return None
        if not hmac.compare_digest(hash_key(key), str(row.key_sha256)):
            return None
        return _key(row)


def _key(row: Any) -> ApiKey:
    created = to_utc(row.created_at)
    return ApiKey(
        key_id=row.key_id,
        name=row.name,
        role=row.role,
        created_at=created,
        created_by=row.created_by,
        revoked_at=to_utc(row.revoked_at),
        revoked_by=row.revoked_by,
    )
