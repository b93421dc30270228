"""API-key checks: the ``Authorization: Bearer <key>`` a route needs, and a short cache of
each key's role.

With ``[serve] auth`` on, a route that needs a role (``read`` < ``predict`` < ``admin``,
see :mod:`loopline.serve.keys`) answers 401 without a key, with another scheme, or with a
key that does not exist or was revoked, and 403 when the key's role is below the one it
needs. A key's role is cached (by the key's sha256) for ``poll_interval_s``, an unknown
key for at most a second, and the cache is emptied on every refresh of the server, so a
revoked key stops working within one poll.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import TYPE_CHECKING

from loopline.serve.bodies import HTTPProblem
from loopline.serve.keys import role_allows

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from starlette.requests import Request

    from loopline.serve.keys import KeyStore
    from loopline.serve.settings import ServeSettings

_CHALLENGE = {"www-authenticate": 'Bearer realm="loopline"'}
#: More cached keys than this (a client trying random keys): start over.
_MAX_ENTRIES = 10_000


class Authorizer:
    """Checks the API key of requests (when ``serve.auth`` is on)."""

    def __init__(self, serve: ServeSettings, executor: Executor) -> None:
        self.enabled = serve.auth
        self.ttl_s = serve.poll_interval_s
        self.executor = executor
        #: Set when the server starts (it opens the stores).
        self.keys: KeyStore | None = None
        self._roles: dict[str, tuple[str | None, float]] = {}

    def clear(self) -> None:
        """Forget every cached role (re-read each key on its next request)."""
        self._roles.clear()

    async def require(self, request: Request, need: str) -> None:
        """Return when ``request`` carries a key whose role allows ``need``, else raise the
        401 or 403 :class:`HTTPProblem`."""
        if not self.enabled:
            return
        header = request.headers.get("authorization")
        if not header:
            raise HTTPProblem(
                401,
                "unauthorized",
                "This server needs an API key: send Authorization: Bearer <key>",
                headers=_CHALLENGE,
            )
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HTTPProblem(
                401,
                "unauthorized",
                "Send the API key as Authorization: Bearer <key>",
                headers=_CHALLENGE,
            )
        role = await self.role_of(token)
        if role is None:
            raise HTTPProblem(401, "unauthorized", "Unknown or revoked API key", headers=_CHALLENGE)
        if not role_allows(role, need):
            raise HTTPProblem(
                403,
                "forbidden",
                f"This key's role is {role!r}; this route needs {need!r}",
            )

    async def role_of(self, token: str) -> str | None:
        """The role of the key ``token`` (None: no such key, or revoked), cached."""
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        now = time.monotonic()
        cached = self._roles.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        assert self.keys is not None
        loop = asyncio.get_running_loop()
        key = await loop.run_in_executor(self.executor, self.keys.verify, token)
        role = None if key is None else key.role
        if len(self._roles) > _MAX_ENTRIES:
            self._roles.clear()
        ttl = self.ttl_s if role is not None else min(1.0, self.ttl_s)
        self._roles[digest] = (role, now + ttl)
        return role
