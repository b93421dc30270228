"""The errors of the model server.

ServeError  The model server cannot start or act as asked (``loopline.serve``)
    UnsafeBindError  Binding an address other than loopback would expose an endpoint wi...
    PortInUseError  The address a server was asked to listen on is taken by another pro...
    ApiKeyError  An API key that does not exist or was revoked, or a role that does not...
"""

from __future__ import annotations

from loopline.errors import ConfigError, LooplineError


class ServeError(LooplineError):
    """The model server cannot start or act as asked (``loopline.serve``).

    ServeError
    ├── UnsafeBindError     a non-loopback address without auth (or ``--insecure``; also
    │                       a ConfigError: the CLI exits 2)
    ├── PortInUseError      the address is taken by another process (also a ConfigError:
    │                       the CLI exits 2)
    └── ApiKeyError         no such API key, a revoked one, or an unknown role
    """


class UnsafeBindError(ServeError, ConfigError):
    """Binding an address other than loopback would expose an endpoint without auth (a
    configuration error: the CLI exits 2)."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"Refusing to serve on {host} without authentication: anyone who can reach "
            "that address could call the model",
            hint="Turn auth on ([serve] auth = true, or LOOPLINE_SERVE_AUTH=1, and create keys "
            "with: loopline keys create --role predict), or pass --insecure",
        )


class PortInUseError(ServeError, ConfigError):
    """The address a server was asked to listen on is taken by another process."""

    def __init__(self, host: str, port: int, reason: str = "the port is in use") -> None:
        self.host = host
        self.port = port
        self.reason = reason
        self.source = None
        shown = f"[{host}]" if ":" in host else host
        LooplineError.__init__(
            self,
            f"Cannot listen on {shown}:{port}: {reason}",
            hint="Stop the server that uses it, or pick another port with --port",
        )


class ApiKeyError(ServeError):
    """An API key that does not exist or was revoked, or a role that does not exist."""


class ServeArgumentError(ServeError, ConfigError):
    """A server option is wrong (a canary share, a candidate of another model): usage, so
    the CLI exits 2. ``argument`` names it, ``value`` is what was given."""

    def __init__(
        self, message: str, *, argument: str, value: object = None, hint: str | None = None
    ) -> None:
        self.argument = argument
        self.value = value
        self.source = None
        LooplineError.__init__(self, message, hint=hint)


class ModelLoadError(ServeError):
    """The model a server serves could not be loaded: ``ref`` and the ``cause``."""

    def __init__(self, message: str, *, ref: str, cause: str, hint: str | None = None):
        self.ref = ref
        self.cause = cause
        super().__init__(message, hint=hint)
