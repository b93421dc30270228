"""The webhook action against a real HTTP receiver: signed bodies, retries with backoff on
failures that can pass, no retry on a refusal, timeouts."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from loopline.alarm import ActionEvent, WebhookAction, sign, verify_signature
from loopline.alarm.errors import ActionConfigError
from loopline.errors import ConfigError

SECRET = "s3cr3t"


class Receiver:
    """An HTTP server that answers from a script of statuses (then 200), and keeps what
    it received."""

    def __init__(self) -> None:
        self.script: list[int | str] = []
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append((dict(self.headers.items()), body))
                step = receiver.script.pop(0) if receiver.script else 200
                if step == "slow":
                    time.sleep(1.5)
                    step = 200
                assert isinstance(step, int)
                self.send_response(step)
                if step == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"no" if step >= 400 else b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _event() -> ActionEvent:
    return ActionEvent(
        kind="alarm.state_changed",
        subject="drift@churn",
        at=datetime(2026, 12, 1, tzinfo=UTC),
        model="churn",
        alarm="drift",
        state="alarm",
        previous_state="ok",
        reason="feature_drift.max_psi 0.31 > 0.2 in 2 of 3 windows",
        detail={"values": [0.31, 0.35]},
        id="evt-1",
    )


def test_a_receiver_that_fails_then_recovers_gets_one_signed_delivery(
    receiver: Receiver,
) -> None:
    receiver.script = [503, 500, 429]
    delays: list[float] = []
    hook = WebhookAction("ops", receiver.url, secret=SECRET, retries=4, sleep=delays.append)
    result = hook.run(_event())
    assert result.ok, result.error
    assert result.attempts == 4
    assert result.detail["statuses"] == [503, 500, 429, 200]
    assert len(delays) == 3
    assert delays[1] > delays[0] * 0.9 or delays[1] >= 0.5  # exponential, with jitter
    for headers, body in receiver.received:
        assert verify_signature(SECRET, body, headers)
        assert headers["X-Loopline-Delivery"] == "evt-1"  # the same id on every retry
        assert json.loads(body)["alarm"] == "drift"
    headers, body = receiver.received[-1]
    assert not verify_signature("another secret", body, headers)
    assert not verify_signature(SECRET, body + b" ", headers)
    assert not verify_signature(SECRET, body, headers, now=time.time() + 3600)  # a replay


def test_a_refusal_is_final_and_reported(receiver: Receiver) -> None:
    receiver.script = [403]
    hook = WebhookAction("ops", receiver.url, retries=5, sleep=lambda s: None)
    result = hook.run(_event())
    assert not result.ok
    assert result.attempts == 1
    assert "HTTP 403" in (result.error or "")


def test_retries_run_out_with_the_last_error(receiver: Receiver) -> None:
    receiver.script = [502, 502, 502]
    hook = WebhookAction("ops", receiver.url, retries=2, sleep=lambda s: None)
    result = hook.run(_event())
    assert not result.ok
    assert result.attempts == 3
    assert "HTTP 502" in (result.error or "")


def test_a_slow_receiver_times_out_and_an_absent_one_is_unreachable(receiver: Receiver) -> None:
    receiver.script = ["slow"]
    slow = WebhookAction("ops", receiver.url, timeout_s=0.2, retries=0, sleep=lambda s: None)
    result = slow.run(_event())
    assert not result.ok
    assert "cannot reach" in (result.error or "")
    absent = WebhookAction("ops", "http://127.0.0.1:9/hook", retries=1, sleep=lambda s: None)
    gone = absent.run(_event())
    assert not gone.ok
    assert gone.attempts == 2


def test_signatures_are_hmac_sha256_of_timestamp_and_body() -> None:
    import hashlib
    import hmac

    body = b'{"a": 1}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, 1_700_000_000, body) == "sha256=" + expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://x/y"}, "http(s) URL"),
        ({"url": "not a url"}, "http(s) URL"),
        ({"url": "http://x", "timeout_s": 0}, "timeout_s"),
        ({"url": "http://x", "retries": -1}, "retries"),
        ({"url": "http://x", "retries": 1.5}, "retries"),
    ],
)
def test_bad_webhook_settings_are_configuration_errors(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(
        ActionConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
    ) as err:
        WebhookAction("ops", **kwargs)
    assert isinstance(err.value, ConfigError)
