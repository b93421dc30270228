"""One controller drives the loop: a lease row with an expiry, and a fencing token.

A controller *holds* the lease while it renews it before it expires; another one waits,
and takes it over once the lease expired, or at once when the holder was a process on
this machine that is gone (``kill -9``: no need to wait out the expiry). Every takeover
gives the lease a new ``token``; each write a holder makes checks, in its own
transaction, that it still holds the lease with its token (:meth:`Lease.check`), so a
controller that stalled past its expiry and woke up again cannot act on stale beliefs:
its write fails with LeaseLostError and the new holder resumes the work.

Times are the database's clock, so controllers on machines whose clocks differ agree.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from loopline.loop.errors import LeaseLostError
from loopline.loop.tables import leases
from loopline.store.db import dialects

if TYPE_CHECKING:
    from loopline.store.stores import Stores

LEASE_NAME = "controller"


def holder_id() -> str:
    """``host:pid:nonce``: unique per process start, and says where it runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_gone(holder: str) -> bool:
    """True when ``holder`` names a process on this machine that no longer exists."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class LeaseInfo:
    name: str
    holder: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "holder": self.holder,
            "acquired_at": self.acquired_at.isoformat(),
            "renewed_at": self.renewed_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


class Lease:
    """The lease ``name`` as one controller (``holder``) sees it."""

    def __init__(
        self,
        stores: Stores,
        *,
        ttl_s: float = 15.0,
        holder: str | None = None,
        name: str = LEASE_NAME,
    ) -> None:
        self.stores = stores
        self.ttl = timedelta(seconds=float(ttl_s))
        self.holder = holder or holder_id()
        self.name = name
        self.token: str | None = None

    @property
    def held(self) -> bool:
        return self.token is not None

    def acquire(self) -> bool:
        """Take or renew the lease; True when this controller holds it afterwards."""

        def fn(conn: sa.Connection) -> str | None:
            now = dialects.current_time(conn)
            expires = now + self.ttl
            row = conn.execute(
                sa.select(leases).where(leases.c.name == self.name).with_for_update()
            ).first()
            if row is None:
                token = uuid.uuid4().hex
                try:
                    with conn.begin_nested():
                        conn.execute(
                            leases.insert().values(
                                name=self.name,
                                holder=self.holder,
                                token=token,
                                acquired_at=now,
                                renewed_at=now,
                                expires_at=expires,
                            )
                        )
                except sa.exc.IntegrityError:
                    return None  # another controller created it first
                return token
            if row.holder == self.holder and row.token == self.token:
                conn.execute(
                    leases.update()
                    .where(leases.c.name == self.name, leases.c.token == row.token)
                    .values(renewed_at=now, expires_at=expires)
                )
                return str(row.token)
            if row.expires_at > now and not holder_is_gone(row.holder):
                return None
            token = uuid.uuid4().hex
            taken = conn.execute(
                leases.update()
                .where(leases.c.name == self.name, leases.c.token == row.token)
                .values(
                    holder=self.holder,
                    token=token,
                    acquired_at=now,
                    renewed_at=now,
                    expires_at=expires,
                )
            ).rowcount
            return token if taken else None

        self.token = self.stores.db.run_write(fn, conflicts=3)
        return self.token is not None

    def check(self, conn: sa.Connection) -> None:
        """In the caller's write transaction: raise LeaseLostError unless this controller
        still holds an unexpired lease with its token (the row is locked until commit)."""
        if self.token is None:
            raise LeaseLostError("This controller does not hold the lease", holder=None)
        row = conn.execute(
            sa.select(leases).where(leases.c.name == self.name).with_for_update()
        ).first()
        now = dialects.current_time(conn)
        if row is None or row.token != self.token:
            self.token = None
            raise LeaseLostError(
                "This controller lost the lease: "
                + ("nobody holds it" if row is None else f"{row.holder} holds it now"),
                holder=None if row is None else row.holder,
            )
        if row.expires_at <= now:
            raise LeaseLostError(
                f"This controller's lease expired at {row.expires_at.isoformat()} (it did not "
                "renew it in time)",
                holder=row.holder,
            )

    def release(self) -> None:
        """Give the lease up (a clean stop): another controller may take it at once."""
        if self.token is None:
            return
        token = self.token
        self.token = None

        def fn(conn: sa.Connection) -> None:
            conn.execute(leases.delete().where(leases.c.name == self.name, leases.c.token == token))

        self.stores.db.run_write(fn)

    def info(self) -> LeaseInfo | None:
        return current_lease(self.stores, self.name)


def current_lease(stores: Stores, name: str = LEASE_NAME) -> LeaseInfo | None:
    with stores.db.read() as conn:
        row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
    if row is None:
        return None
    return LeaseInfo(row.name, row.holder, row.acquired_at, row.renewed_at, row.expires_at)
