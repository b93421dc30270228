"""Errors of the web UI: the few it raises itself (the pages raise the SDK's own)."""

from __future__ import annotations

from loopline.errors import ConfigError, LooplineError


class UIError(LooplineError):
    """Something about the web UI itself (not the data it shows)."""


class UnsafeUIBindError(UIError, ConfigError):
    """Binding an address other than loopback would expose the UI without a login."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(
            f"Refusing to serve the UI on {host} without authentication: anyone who can "
            "reach that address could read every run and move model aliases",
            hint="Turn auth on ([serve] auth = true, or --auth, and create keys with: "
            "loopline keys create --role read), or pass --insecure",
        )


class PageNotFoundError(UIError):
    """A page for something that does not exist (an artifact name, a monitored model)."""


class PageArgumentError(UIError):
    """A query parameter or form field that is not what the page expects."""

    def __init__(self, message: str, *, argument: str, value: object = None) -> None:
        self.argument = argument
        self.value = value
        super().__init__(message)
