"""The HTTP webhook action: a signed JSON POST, with a timeout and retries with backoff.

The body is the event as JSON. With a secret, two headers let the receiver check that the
request comes from this project and is not a replay::

    X-Loopline-Timestamp: 1764620000
    X-Loopline-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body, keyed by secret>

(:func:`verify_signature` is the receiver's side, with a tolerance on the timestamp.)
``X-Loopline-Event`` carries the event kind and ``X-Loopline-Delivery`` the event id, the
same on every retry, so a receiver can drop a duplicate.

Responses 2xx succeed. 408, 429 and 5xx, connection errors and timeouts are retried with
exponential backoff and jitter (honouring ``Retry-After`` up to the backoff cap); other
4xx are final (the receiver refused the request; repeating it would not help).

:meth:`WebhookAction.post` is one signed attempt and its :class:`Response`, without the
retries: the event delivery (:mod:`loopline.alarm.delivery`) keeps its retry schedule
in the database instead of in a sleeping thread.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from loopline.alarm.actions import ActionEvent, ActionResult
from loopline.alarm.errors import ActionConfigError

SIGNATURE_HEADER = "X-Loopline-Signature"
TIMESTAMP_HEADER = "X-Loopline-Timestamp"
EVENT_HEADER = "X-Loopline-Event"
DELIVERY_HEADER = "X-Loopline-Delivery"
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Response:
    """How one POST went: the HTTP status (None when no answer came), the error (None on
    2xx), and the receiver's ``Retry-After`` in seconds, if it sent one."""

    status: int | None
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def retryable(self) -> bool:
        """Whether repeating the request may succeed: no answer, 408, 425, 429 or 5xx."""
        return not self.ok and (self.status is None or self.status in _RETRY_STATUSES)


def backoff_delay(
    attempts: int, backoff_s: float, max_backoff_s: float, retry_after: float | None = None
) -> float:
    """The wait before the next attempt after ``attempts`` failed ones: exponential with
    jitter (so receivers that come back are not hit by every sender at once), at least
    the receiver's ``Retry-After``, at most ``max_backoff_s``."""
    delay = min(max_backoff_s, backoff_s * 2.0 ** max(0, attempts - 1))
    delay = delay * (0.5 + random.random() / 2)
    if retry_after is not None:
        delay = min(max_backoff_s, max(delay, retry_after))
    return delay


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether ``headers`` carry a valid, recent signature of ``body`` (the receiver)."""
    lower = {k.lower(): v for k, v in headers.items()}
    signature = lower.get(SIGNATURE_HEADER.lower(), "")
    stamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    if not stamp.isdigit() or not signature.startswith("sha256="):
        return False
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(stamp), body), signature)


@dataclass
class WebhookAction:
    """POST the event to ``url``. ``retries`` more attempts after the first."""

    name: str
    url: str
    secret: str | None = field(default=None, repr=False)
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    headers: Mapping[str, str] = field(default_factory=dict)
    kind: str = "webhook"
    #: Injected in tests; time.sleep otherwise.
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ActionConfigError(
                f"webhook {self.name!r}: url {self.url!r} is not an http(s) URL",
                hint='Write it as url = "https://hooks.example.com/loopline"',
            )
        for label, value, low in (
            ("timeout_s", self.timeout_s, 0.001),
            ("backoff_s", self.backoff_s, 0.0),
            ("max_backoff_s", self.max_backoff_s, 0.0),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
                raise ActionConfigError(
                    f"webhook {self.name!r}: {label} must be a number >= {low:g}, not {value!r}"
                )
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ActionConfigError(
                f"webhook {self.name!r}: retries must be an integer >= 0, not {self.retries!r}"
            )

    def body(self, event: ActionEvent) -> bytes:
        return json.dumps(event.to_dict(), sort_keys=True, default=str).encode()

    def run(self, event: ActionEvent) -> ActionResult:
        body = self.body(event)
        started = time.monotonic()
        attempts = 0
        statuses: list[int | None] = []
        while True:
            attempts += 1
            response = self.post(body, kind=event.kind, delivery=event.id)
            statuses.append(response.status)
            detail = {"url": self.url, "status": response.status, "statuses": statuses}
            if response.ok:
                return ActionResult(
                    self.name, True, attempts, time.monotonic() - started, detail=detail
                )
            if not response.retryable or attempts > self.retries:
                return ActionResult(
                    self.name,
                    False,
                    attempts,
                    time.monotonic() - started,
                    error=response.error,
                    detail=detail,
                )
            self.sleep(
                backoff_delay(attempts, self.backoff_s, self.max_backoff_s, response.retry_after)
            )

    def post(
        self,
        body: bytes,
        *,
        kind: str,
        delivery: str,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """One POST of ``body``, signed when there is a secret; never raises for a
        failure of the request (the response says what went wrong)."""
        sent = {
            "Content-Type": "application/json",
            "User-Agent": "loopline-webhook",
            EVENT_HEADER: kind,
            DELIVERY_HEADER: delivery,
            **dict(self.headers),
            **dict(headers or {}),
        }
        if self.secret:
            stamp = int(time.time())
            sent[TIMESTAMP_HEADER] = str(stamp)
            sent[SIGNATURE_HEADER] = sign(self.secret, stamp, body)
        request = urllib.request.Request(self.url, data=body, headers=sent, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status = int(response.status)
                response.read(65536)
        except urllib.error.HTTPError as exc:
            status = int(exc.code)
            retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            text = exc.read(500).decode("utf-8", "replace").strip() if exc.fp else ""
            detail = f": {text}" if text else ""
            return Response(status, f"{self.url} answered HTTP {status}{detail}", retry_after)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return Response(None, f"cannot reach {self.url}: {reason}")
        if 200 <= status < 300:
            return Response(status)
        return Response(status, f"{self.url} answered HTTP {status}")


def _retry_after(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None
