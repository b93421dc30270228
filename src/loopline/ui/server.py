"""Serving the UI: one uvicorn process on a socket bound before anything is said.

The socket is bound first (port 0 becomes a free port, a port in use is an error), so
the address printed is the one listening. Ctrl+C or SIGTERM stops it gracefully.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from loopline.ui.errors import UnsafeUIBindError

if TYPE_CHECKING:
    from starlette.applications import Starlette

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8780


def check_bind(host: str, *, auth: bool, insecure: bool) -> None:
    """Refuse an address other than loopback without a login, unless ``insecure``."""
    from loopline.serve.settings import is_loopback

    if not is_loopback(host) and not auth and not insecure:
        raise UnsafeUIBindError(host)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (PortInUseError when it is taken)."""
    from loopline.serve.server import make_socket

    return make_socket(host, port)


def run(app: Starlette, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until stopped."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
