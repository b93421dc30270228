"""``loopline events deliver`` killed with SIGKILL mid-round, on both databases: the next
round delivers every event, each under its one id; the only repeat is the request the
killed process had in flight, byte for byte the same."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from e2e.cli import clean_env, command, init, run
from loopline.alarm.delivery import DELIVERED, SENDING
from loopline.alarm.tables import event_deliveries
from loopline.alarm.webhook import verify_signature
from loopline.config import settings_for
from loopline.store.db.events import record_event
from loopline.store.stores import Stores

N_EVENTS = 30
SECRET = "kill-test-secret"


class SlowReceiver:
    """Answers 200 after ``delay_s``; keeps every request."""

    def __init__(self, delay_s: float) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append((dict(self.headers.items()), body))
                time.sleep(delay_s)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[SlowReceiver]:
    r = SlowReceiver(0.15)
    yield r
    r.close()


def test_a_killed_deliverer_loses_nothing_and_repeats_only_its_request_in_flight(
    tmp_path: Path, metadata_url: str, receiver: SlowReceiver
) -> None:
    project = init(tmp_path, "proj")
    with (project / "loopline.toml").open("a") as f:
        f.write(
            f'\n[actions.ci]\nkind = "webhook"\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
            '\n[events]\nwebhooks = ["ci"]\nkinds = ["model.*"]\n'
        )
    (tmp_path / "artifacts").mkdir()
    env = {
        "LOOPLINE_METADATA_URL": metadata_url,
        "LOOPLINE_ARTIFACTS_URL": str(tmp_path / "artifacts"),
    }
    run("db", "upgrade", cwd=project, env=env)
    settings = settings_for(project, environ=env)
    with Stores.open(settings) as stores:
        ids = stores.db.run_write(
            lambda conn: [
                record_event(conn, "model.set", f"m@a{i}", {"i": i}) for i in range(N_EVENTS)
            ]
        )

        child = subprocess.Popen(
            command("events", "deliver"),
            cwd=project,
            env=clean_env(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while len(receiver.received) < 8 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(receiver.received) >= 8
            child.send_signal(signal.SIGKILL)  # mid-request: the receiver is answering
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()

        with stores.db.read() as conn:
            statuses = list(conn.execute(sa.select(event_deliveries.c.status)).scalars())
        assert len(statuses) == N_EVENTS  # all queued before the first POST
        assert statuses.count(SENDING) == 1  # the request in flight
        assert DELIVERED in statuses
        # Time passes beyond the stale limit of the dead process's claim.
        with stores.db.write() as conn:
            conn.execute(
                event_deliveries.update()
                .where(event_deliveries.c.status == SENDING)
                .values(claimed_at=datetime.now(UTC) - timedelta(minutes=10))
            )

        done = run("events", "deliver", "--json", cwd=project, env=env)
        assert json.loads(done.stdout)["failed"] == 0
        with stores.db.read() as conn:
            statuses = list(conn.execute(sa.select(event_deliveries.c.status)).scalars())
        assert statuses == [DELIVERED] * N_EVENTS

    bodies: dict[str, list[bytes]] = {}
    for headers, body in receiver.received:
        assert verify_signature(SECRET, body, headers)
        bodies.setdefault(headers["X-Loopline-Delivery"], []).append(body)
    got = sorted(json.loads(b[0])["event_id"] for b in bodies.values())
    assert got == ids  # nothing lost
    repeated = {k: v for k, v in bodies.items() if len(v) > 1}
    assert len(repeated) == 1  # only the request the killed process had in flight ...
    (copies,) = repeated.values()
    assert len(copies) == 2
    assert copies[0] == copies[1]  # ... sent again as it was: the receiver drops it
