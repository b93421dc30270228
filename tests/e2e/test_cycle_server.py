"""The cycle's model server fails with a loopline error that names its log, not a hang
or a bare exception, when ``loopline serve`` cannot start."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e.cli import init
from loopline.project.cycle import Server
from loopline.serve.errors import ServeError


def test_a_server_that_cannot_start_says_why_and_where_its_log_is(tmp_path: Path) -> None:
    project = init(tmp_path)  # a project with no model registered: nothing to serve
    server = Server(project, environ={})
    with pytest.raises(ServeError) as info:
        server.start(timeout_s=60)
    message = str(info.value)
    assert message.startswith("The model server exited before it listened")
    assert str(server.log) in message
    assert "credit_risk" in message  # the server's own error: no model of that name yet
    assert server.stop() is not None  # it had exited; stopping it again is harmless
