"""The ``[serve]`` section of ``loopline.toml``, with ``LOOPLINE_SERVE_*`` overrides.

Read with the shared section loader (:func:`loopline.config.load_section`)::

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

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from loopline.config import build_section, load_section

if TYPE_CHECKING:
    from loopline.config import Settings

ENV_PREFIX = "LOOPLINE_SERVE_"
SECTION = "serve"


def _at_least(minimum: float) -> Any:
    return {"min": minimum}


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata={"min": 0, "max": 65535})
    workers: int = field(default=1, metadata=_at_least(1))
    max_batch_size: int = field(default=1024, metadata=_at_least(1))
    max_wait_ms: float = field(default=2.0, metadata=_at_least(0))
    max_body_bytes: int = field(default=16 * 1024 * 1024, metadata=_at_least(1))
    poll_interval_s: float = field(default=10.0, metadata=_at_least(0.05))
    log_flush_s: float = field(default=10.0, metadata=_at_least(0.05))
    log_flush_rows: int = field(default=50_000, metadata=_at_least(1))
    log_max_buffer_rows: int = field(default=500_000, metadata=_at_least(1))
    log_predictions: bool = True
    auth: bool = False
    check_ranges: bool = False
    #: Seconds a graceful stop waits for in-flight requests before closing connections.
    graceful_timeout_s: float = field(default=30.0, metadata=_at_least(0))

    def with_overrides(self, **changes: Any) -> ServeSettings:
        """These settings with the given (non-None) values, checked like the file's."""
        clean = {k: v for k, v in changes.items() if v is not None}
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        return build_section(
            ServeSettings,
            {**current, **clean},
            SECTION,
            dict.fromkeys(clean, "command line"),
            default_source="settings",
        )


def load_serve_settings(
    settings: Settings | None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> ServeSettings:
    """The serve settings of a project: its ``[serve]`` section, env, then ``overrides``."""
    result = load_section(settings, SECTION, ServeSettings, environ=environ, env_prefix=ENV_PREFIX)
    return result.with_overrides(**overrides) if overrides else result


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
