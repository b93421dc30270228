"""The cycle's label sender: a POST of labels that got no answer is sent again (storing a
label twice changes nothing), so the labels a server stored are the labels counted as
sent, even when a connection drops after the server read the POST."""

from __future__ import annotations

import heapq
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from loopline.project.cycle import LABEL_TRIES, CycleSettings, Traffic


class _Feedback(ThreadingHTTPServer):
    """Stores every POST it reads; drops the connection unanswered ``drop`` times."""

    def __init__(self, drop: int) -> None:
        self.drop = drop
        self.posts: list[list[dict[str, Any]]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Feedback

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.posts.append(body)
            drop = self.server.drop > 0
            self.server.drop -= drop
        if drop:  # read and stored, then no answer: the client cannot tell
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def feedback_server(request: pytest.FixtureRequest) -> Iterator[_Feedback]:
    server = _Feedback(drop=request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _send_labels(server: _Feedback, n: int, until: Any) -> Traffic:
    traffic = Traffic("127.0.0.1", server.server_address[1], CycleSettings())
    for i in range(n):
        heapq.heappush(traffic._labels, (time.monotonic(), f"req-{i}", [True]))
    thread = threading.Thread(target=traffic._feedback, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not until(traffic) and time.monotonic() < deadline:
        time.sleep(0.05)
    traffic._stop.set()
    thread.join(timeout=15)
    return traffic


@pytest.mark.parametrize("feedback_server", [1], indirect=True)
def test_a_post_left_unanswered_is_sent_again_and_counted_once(
    feedback_server: _Feedback,
) -> None:
    traffic = _send_labels(feedback_server, 3, lambda t: t.stats.labels_sent >= 3)
    assert (traffic.stats.labels_sent, traffic.stats.labels_failed) == (3, 0)
    # The server read the same three labels twice: once unanswered, once answered.
    assert len(feedback_server.posts) == 2
    assert feedback_server.posts[0] == feedback_server.posts[1]
    assert sorted(item["request_id"] for item in feedback_server.posts[0]) == [
        "req-0",
        "req-1",
        "req-2",
    ]


@pytest.mark.parametrize("feedback_server", [100], indirect=True)
def test_labels_never_answered_count_as_failed_after_the_last_try(
    feedback_server: _Feedback,
) -> None:
    traffic = _send_labels(feedback_server, 2, lambda t: t.stats.labels_failed >= 2)
    assert (traffic.stats.labels_sent, traffic.stats.labels_failed) == (0, 2)
    assert len(feedback_server.posts) == LABEL_TRIES
