"""Who is asking: signed session cookies, CSRF tokens, and the API key behind a session.

With ``[serve] auth`` on, a person logs in with an API key (``loopline keys create``); the
key itself is never kept in the cookie. The cookie holds the key's id, a random nonce and
an expiry, signed with HMAC-SHA256 under a secret of the UI process; it is HttpOnly,
SameSite=Strict and, over HTTPS, Secure. Every request re-reads the key's role from the
key store (cached for a few seconds), so a revoked key ends its sessions within that
time. A script may send ``Authorization: Bearer <key>`` instead of a cookie.

Every state-changing form carries a CSRF token: the HMAC of the session's nonce, checked
on the server. With auth off, a session without a key (role ``admin``) is issued on the
first visit, so forms are protected the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from loopline.serve.keys import ApiKey, KeyStore

SESSION_COOKIE = "ll_ui_session"
LOGIN_COOKIE = "ll_ui_login"
#: How long a key's role is trusted before it is read again.
KEY_TTL_S = 5.0


@dataclass(frozen=True)
class Session:
    """What a valid session cookie says."""

    key_id: str | None
    nonce: str
    expires: float


@dataclass(frozen=True)
class Identity:
    """The caller of a request: the key (None when auth is off) and its role."""

    role: str
    key_id: str | None = None
    key_name: str | None = None
    #: Sent as ``Authorization: Bearer``: no cookie, so no CSRF token is needed.
    bearer: bool = False
    session: Session | None = None

    @property
    def label(self) -> str:
        if self.key_id is None:
            return "local"
        return f"{self.key_name} ({self.key_id})" if self.key_name else self.key_id


class Signer:
    """Signs and checks cookie values and CSRF tokens with one secret."""

    def __init__(self, secret: bytes | None = None, *, max_age_s: float = 12 * 3600) -> None:
        self.secret = secret or secrets.token_bytes(32)
        self.max_age_s = max_age_s

    def _mac(self, purpose: str, payload: bytes) -> str:
        digest = hmac.new(self.secret, purpose.encode() + b"\0" + payload, hashlib.sha256)
        return _b64(digest.digest())

    def issue(self, key_id: str | None) -> tuple[str, Session]:
        """A new session for ``key_id``: the cookie value and what it says."""
        session = Session(key_id, secrets.token_urlsafe(16), time.time() + self.max_age_s)
        body = json.dumps(
            {"k": session.key_id, "n": session.nonce, "e": int(session.expires)},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(body)}.{self._mac('session', body)}", session

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie holds, or None: absent, tampered with or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        encoded, mac = cookie.split(".")
        try:
            body = _unb64(encoded)
            data = json.loads(body)
        except ValueError:
            return None
        if not hmac.compare_digest(mac, self._mac("session", body)):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("n"), str):
            return None
        expires = data.get("e")
        if not isinstance(expires, int) or expires < time.time():
            return None
        key_id = data.get("k")
        if key_id is not None and not isinstance(key_id, str):
            return None
        return Session(key_id, data["n"], float(expires))

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf", session.nonce.encode())

    def check_csrf(self, session: Session | None, token: str | None) -> bool:
        if session is None or not token:
            return False
        return hmac.compare_digest(token, self.csrf_token(session))

    def login_token(self, nonce: str) -> str:
        """The token of the login form, tied to the nonce of the login cookie."""
        return self._mac("login", nonce.encode())

    def check_login(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        return hmac.compare_digest(token, self.login_token(nonce))


class KeyCache:
    """The key store's answers for a few seconds: by key id (sessions) and by the sha256
    of a whole key (bearer requests)."""

    def __init__(self, keys: KeyStore, ttl_s: float = KEY_TTL_S) -> None:
        self.keys = keys
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._by_id: dict[str, tuple[ApiKey | None, float]] = {}
        self._by_secret: dict[str, tuple[ApiKey | None, float]] = {}

    def by_id(self, key_id: str) -> ApiKey | None:
        return self._cached(self._by_id, key_id, lambda: self.keys.get(key_id))

    def by_secret(self, secret: str) -> ApiKey | None:
        digest = hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()
        return self._cached(self._by_secret, digest, lambda: self.keys.verify(secret))

    def _cached(
        self,
        cache: dict[str, tuple[ApiKey | None, float]],
        wanted: str,
        read: Callable[[], ApiKey | None],
    ) -> ApiKey | None:
        now = time.monotonic()
        with self._lock:
            hit = cache.get(wanted)
        if hit is not None and hit[1] > now:
            return hit[0]
        key = read()
        with self._lock:
            if len(cache) > 10_000:  # someone trying random keys: start over
                cache.clear()
            cache[wanted] = (key, now + (self.ttl_s if key is not None else min(1.0, self.ttl_s)))
        return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64") from exc
