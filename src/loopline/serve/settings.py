"""The ``[serve]`` section of ``loopline.toml``, with ``LOOPLINE_SERVE_*`` overrides.

The core settings ignore sections that later layers own; this module reads ``[serve]``
from the project's ``loopline.toml`` itself::

    [serve]
    host = "127.0.0.1"        # another address needs auth = true (or --insecure)
    port = 8080
    workers = 1               # processes, each with its own SO_REUSEPORT socket
    max_batch_size = 1024     # rows per model call
    max_wait_ms = 2.0         # longest a request waits for others to join its batch
    max_body_bytes = 16777216 # larger bodies get 413
    poll_interval_s = 10.0    # how often the alias, traffic split and keys are re-read
    log_flush_s = 10.0        # prediction log: flush every N seconds ...
    log_flush_rows = 50000    # ... or M rows, whichever comes first
    log_max_buffer_rows = 500000  # beyond this, rows are dropped (and counted), not queued
    log_predictions = true
    auth = false
    check_ranges = false      # reject numbers outside the training range

Precedence: command-line options > ``LOOPLINE_SERVE_<KEY>`` > ``[serve]`` > defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from loopline.config import read_section
from loopline.errors import ConfigError

if TYPE_CHECKING:
    from loopline.config import Settings

ENV_PREFIX = "LOOPLINE_SERVE_"
SECTION = "serve"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_batch_size: int = 1024
    max_wait_ms: float = 2.0
    max_body_bytes: int = 16 * 1024 * 1024
    poll_interval_s: float = 10.0
    log_flush_s: float = 10.0
    log_flush_rows: int = 50_000
    log_max_buffer_rows: int = 500_000
    log_predictions: bool = True
    auth: bool = False
    check_ranges: bool = False
    #: Seconds a graceful stop waits for in-flight requests before closing connections.
    graceful_timeout_s: float = 30.0

    def with_overrides(self, **changes: Any) -> ServeSettings:
        clean = {k: v for k, v in changes.items() if v is not None}
        return _checked(replace(self, **clean), "command line")


_MINIMUM: dict[str, float] = {
    "port": 0,
    "workers": 1,
    "max_batch_size": 1,
    "max_wait_ms": 0,
    "max_body_bytes": 1,
    "poll_interval_s": 0.05,
    "log_flush_s": 0.05,
    "log_flush_rows": 1,
    "log_max_buffer_rows": 1,
    "graceful_timeout_s": 0,
}


def load_serve_settings(
    settings: Settings | None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> ServeSettings:
    """The serve settings of a project: its ``[serve]`` section, env, then ``overrides``."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    section = read_section(settings, SECTION) if settings is not None else {}
    label = f"{settings.config_file} [{SECTION}]" if settings is not None else SECTION
    for key, value in section.items():
        values[key] = value
        source[key] = label
    known = {f.name: f for f in fields(ServeSettings)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in [{SECTION}]; expected one of "
            f"{', '.join(sorted(known))}",
            source=source[unknown[0]],
        )
    for name in known:
        env_name = ENV_PREFIX + name.upper()
        if env.get(env_name):
            values[name] = env[env_name]
            source[name] = env_name
    parsed: dict[str, Any] = {}
    defaults = ServeSettings()
    for name, value in values.items():
        parsed[name] = _coerce(name, value, type(getattr(defaults, name)), source[name])
    result = _checked(replace(defaults, **parsed), "settings")
    return result.with_overrides(**overrides) if overrides else result


def _coerce(name: str, value: Any, kind: type, source: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{name} must be true or false, not {value!r}", source=source)
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{name} must be an integer, not {value!r}", source=source)
        try:
            return (
                int(str(value).strip().replace("_", "")) if isinstance(value, str) else int(value)
            )
        except ValueError:
            raise ConfigError(f"{name} must be an integer, not {value!r}", source=source) from None
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{name} must be a number, not {value!r}", source=source)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a number, not {value!r}", source=source) from None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a non-empty string, not {value!r}", source=source)
    return value.strip()


def _checked(s: ServeSettings, source: str) -> ServeSettings:
    for name, minimum in _MINIMUM.items():
        value = getattr(s, name)
        if value < minimum:
            raise ConfigError(f"[serve] {name} must be >= {minimum:g}, not {value}", source=source)
    if s.port > 65535:
        raise ConfigError(f"[serve] port must be <= 65535, not {s.port}", source=source)
    return s


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
