"""The server's sockets (a port is one server's alone), its signal handling (every stop is
graceful) and errors handed from a worker to the supervisor."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopline.cli.main import exit_code_for
from loopline.errors import ConfigError
from loopline.registry.errors import PackageIntegrityError
from loopline.serve.errors import PortInUseError, ServeError
from loopline.serve.server import (
    GracefulStop,
    Listeners,
    bind_listeners,
    foreign_listeners,
    make_socket,
    read_failure,
    report_failure,
)
from loopline.serve.settings import ServeSettings

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux SO_REUSEPORT")


@pytest.fixture
def groups() -> Iterator[list[Listeners]]:
    made: list[Listeners] = []
    yield made
    for group in made:
        group.close()


def _settings(workers: int, port: int = 0) -> ServeSettings:
    return ServeSettings(host="127.0.0.1", port=port, workers=workers)


def _reuseport_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def _bind_as_other_user(port: int) -> str:
    """Try, in a child running as user nobody, to join the port with SO_REUSEPORT."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        outcome = b"joined"
        try:
            os.setgid(65534)
            os.setuid(65534)
            sock = _reuseport_socket()
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError as exc:
            outcome = b"refused" if exc.errno == 98 else f"error {exc}".encode()
        os.write(write, outcome)
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as f:
        return f.read().decode()


def test_a_single_worker_socket_is_exclusive(groups: list[Listeners]) -> None:
    group = bind_listeners(_settings(1))
    groups.append(group)
    (sock,) = group.sockets
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
    # No other socket can take a share: not one that sets SO_REUSEPORT itself...
    intruder = _reuseport_socket()
    with pytest.raises(OSError, match="in use"):
        intruder.bind(("127.0.0.1", group.port))
    intruder.close()
    # ...and not a second server, which gets a port-in-use error (exit 2).
    with pytest.raises(PortInUseError) as info:
        bind_listeners(_settings(1, group.port))
    assert f"127.0.0.1:{group.port}" in str(info.value)
    with pytest.raises(PortInUseError):
        bind_listeners(_settings(3, group.port))


def test_several_workers_get_their_own_sockets_that_no_other_server_joins(
    groups: list[Listeners],
) -> None:
    group = bind_listeners(_settings(3))
    groups.append(group)
    assert len(group.sockets) == 3
    assert {s.getsockname()[1] for s in group.sockets} == {group.port}
    assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in group.sockets)
    assert len({s.fileno() for s in group.sockets}) == 3
    for workers in (1, 2):
        with pytest.raises(PortInUseError):
            bind_listeners(_settings(workers, group.port))


@linux
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_another_user_cannot_join_a_server_group(groups: list[Listeners]) -> None:
    for workers in (1, 3):
        group = bind_listeners(_settings(workers))
        groups.append(group)
        assert _bind_as_other_user(group.port) == "refused"


@linux
def test_a_same_user_socket_joining_the_group_is_seen(groups: list[Listeners]) -> None:
    group = bind_listeners(_settings(2))
    groups.append(group)
    ours = {os.fstat(s.fileno()).st_ino for s in group.sockets}
    assert foreign_listeners(socket.AF_INET, "127.0.0.1", group.port, ours) == 0
    joiner = _reuseport_socket()
    try:
        joiner.bind(("127.0.0.1", group.port))  # the kernel lets a user's own programs in
        joiner.listen()
        assert foreign_listeners(socket.AF_INET, "127.0.0.1", group.port, ours) == 1
        assert foreign_listeners(socket.AF_INET, "127.0.0.2", group.port, ours) == 0
    finally:
        joiner.close()


def test_the_anchor_holds_the_port_while_no_worker_listens(groups: list[Listeners]) -> None:
    group = bind_listeners(_settings(2))
    groups.append(group)
    assert group.anchor is not None
    for sock in group.sockets:  # handed to workers that have all died
        sock.close()
    with pytest.raises(PortInUseError):
        bind_listeners(_settings(1, group.port))
    with pytest.raises(PortInUseError):
        bind_listeners(_settings(2, group.port))
    probe = socket.socket()
    with pytest.raises(ConnectionRefusedError):  # the anchor takes no connection
        probe.connect(("127.0.0.1", group.port))
    probe.close()
    if sys.platform.startswith("linux") and os.geteuid() == 0:
        assert _bind_as_other_user(group.port) == "refused"
    fresh = group.replace(1)
    assert group.sockets[1] is fresh
    assert fresh.getsockname()[1] == group.port


def test_port_in_use_is_a_usage_error() -> None:
    err = PortInUseError("::1", 8080)
    assert isinstance(err, ServeError)
    assert isinstance(err, ConfigError)
    assert exit_code_for(err) == 2
    assert "[::1]:8080" in str(err)
    assert "--port" in str(err)


def test_other_bind_failures_are_serve_errors() -> None:
    with pytest.raises(ServeError) as info:
        make_socket("192.0.2.1", 0)  # not an address of this machine
    assert not isinstance(info.value, PortInUseError)


def test_every_stop_signal_asks_for_the_same_graceful_stop() -> None:
    import uvicorn

    from loopline.serve.server import _graceful_server

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not called")

    stop = GracefulStop()
    server = _graceful_server(uvicorn.Config(app), stop)
    with server.capture_signals():
        for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM, signal.SIGINT):
            signal.raise_signal(sig)  # no KeyboardInterrupt, no default SIGTERM death
            assert server.should_exit
            assert not server.force_exit  # uvicorn would skip the lifespan shutdown
    assert stop.requested
    # uvicorn re-raises the captured signals after serving; nothing is recorded here.
    assert server._captured_signals == []


def test_a_stop_before_the_server_exists_stops_it_at_once() -> None:
    import uvicorn

    from loopline.serve.server import _graceful_server

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not called")

    stop = GracefulStop()
    with stop.installed():
        signal.raise_signal(signal.SIGTERM)
    server = _graceful_server(uvicorn.Config(app), stop)
    assert server.should_exit


def test_a_worker_error_is_rebuilt_with_its_class_and_data(tmp_path: Path) -> None:
    err = PackageIntegrityError("churn/2", "model.skops", "a" * 64, "b" * 64)
    report_failure(tmp_path / "failed-0", err)
    back = read_failure(tmp_path / "failed-0")
    assert type(back) is PackageIntegrityError
    assert str(back) == str(err)
    assert back.file == "model.skops"
    assert exit_code_for(back) == 4
    assert read_failure(tmp_path / "failed-1") is None


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@linux
@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_a_same_user_socket_joining_an_ipv6_group_is_seen(groups: list[Listeners]) -> None:
    group = bind_listeners(ServeSettings(host="::1", port=0, workers=2))
    groups.append(group)
    ours = {os.fstat(s.fileno()).st_ino for s in group.sockets}
    assert foreign_listeners(socket.AF_INET6, "::1", group.port, ours) == 0
    joiner = socket.socket(socket.AF_INET6)
    joiner.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        joiner.bind(("::1", group.port))
        joiner.listen()
        assert foreign_listeners(socket.AF_INET6, "::1", group.port, ours) == 1
    finally:
        joiner.close()
    with pytest.raises(PortInUseError) as info:
        bind_listeners(ServeSettings(host="::1", port=group.port, workers=1))
    assert f"[::1]:{group.port}" in str(info.value)
