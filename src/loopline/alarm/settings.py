"""The ``[alarms.NAME]`` and ``[actions.NAME]`` tables of ``loopline.toml``.

    [alarms.drift]
    model = "credit_risk@champion"       # the version holding the alias is watched
    when = "feature_drift.max_psi > 0.2" # the gate language: names are monitor metrics
    periods = 3                          # look at the last 3 windows ...
    datapoints = 2                       # ... alarm when 2 of them breach
    missing = "ignore"                   # ignore | breaching | insufficient
    actions = ["ops", "retrain"]         # [actions.NAME] tables, run on entering ALARM
    ok_actions = ["ops"]                 # run on returning to OK

    [actions.ops]
    kind = "webhook"
    url = "https://hooks.example.com/loopline"
    secret_env = "LOOPLINE_HOOK_SECRET"  # the HMAC key, read from this variable

    [actions.retrain]
    kind = "retrain"                     # also: rollback, promote, rollout (the loop's)
    model = "credit_risk"

    [events]
    webhooks = ["ops"]                   # [actions.NAME] webhooks told of every event
    kinds = ["model.*", "rollout.*", "alarm.*", "gate.*"]   # which ones (default: all)
    retry_for = "1d"                     # keep retrying a delivery this long
    backfill = "1h"                      # a new webhook also gets the last hour's events

An alarm's condition is one criterion of the gate language (``evaluate.gates``): names
are the monitor's model-level metrics of a window (``drift.share``, ``quality.null_share``,
``performance.f1``, ``estimated.accuracy``, ``health.error_share``,
``health.latency_p99_ms`` ...), or a feature's metrics when ``feature`` is set. Arithmetic
works (``health.latency_p99_ms > 2 * 150``). Every value is checked when read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from loopline.config import load_named_sections

if TYPE_CHECKING:
    from loopline.config import Settings

ACTION_KINDS = ("webhook", "retrain", "rollback", "promote", "rollout")


@dataclass(frozen=True)
class AlarmSettings:
    name: str
    model: str
    when: str
    feature: str = ""
    role: str = "primary"
    periods: int = field(default=1, metadata={"min": 1, "max": 100})
    datapoints: int = field(default=1, metadata={"min": 1, "max": 100})
    #: Consecutive non-breaching windows before an alarm returns to OK (default: periods).
    recover: int | None = field(default=None, metadata={"min": 1, "max": 100})
    missing: Literal["ignore", "breaching", "insufficient"] = "ignore"
    actions: tuple[str, ...] = ()
    ok_actions: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        from loopline.evaluate.errors import GateSyntaxError
        from loopline.evaluate.gates import Gate

        if self.datapoints > self.periods:
            raise ValueError(
                f"datapoints ({self.datapoints}) cannot exceed periods ({self.periods}): an "
                "alarm counts breaching windows among the last `periods`"
            )
        if "@" not in self.model and "/" not in self.model:
            raise ValueError(f"model {self.model!r} must name an alias: MODEL@ALIAS")
        try:
            gate = Gate.parse(self.when)
        except GateSyntaxError as exc:
            raise ValueError(
                f"when {self.when!r}: expected {exc.expected} at position {exc.position}"
            ) from None
        if gate.is_data_check:
            raise ValueError(f"when {self.when!r} must compare a metric, like 'drift.share > 0.5'")
        if gate.uses_champion:
            raise ValueError(f"when {self.when!r}: alarms have no champion.* names")

    @property
    def recover_windows(self) -> int:
        return self.recover if self.recover is not None else self.periods


@dataclass(frozen=True)
class ActionSettings:
    name: str
    kind: Literal["webhook", "retrain", "rollback", "promote", "rollout"]
    # webhook
    url: str | None = None
    secret: str | None = None
    secret_env: str | None = None
    timeout_s: float = field(default=5.0, metadata={"min": 0.001})
    retries: int = field(default=3, metadata={"min": 0, "max": 20})
    backoff_s: float = field(default=0.5, metadata={"min": 0.0})
    headers: dict[str, Any] = field(default_factory=dict)
    # retrain / rollback / promote / rollout
    model: str | None = None
    alias: str | None = None
    version: int | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "webhook" and not self.url:
            raise ValueError('a webhook action needs url = "https://..."')
        if self.kind != "webhook" and not self.model:
            raise ValueError(f'a {self.kind} action needs model = "NAME"')
        if self.secret and self.secret_env:
            raise ValueError("give secret or secret_env, not both")

    def secret_value(self, environ: dict[str, str] | None = None) -> str | None:
        if self.secret_env:
            env = os.environ if environ is None else environ
            value = env.get(self.secret_env)
            if not value:
                from loopline.alarm.errors import ActionConfigError

                raise ActionConfigError(
                    f"action {self.name!r}: the variable {self.secret_env} holding its secret "
                    "is not set",
                    hint=f"export {self.secret_env}=...",
                )
            return value
        return self.secret


@dataclass(frozen=True)
class EventsSettings:
    """The ``[events]`` table: which webhooks receive the project's events (the audit
    log: versions registered, aliases moved, gates failed, alarms changed, rollout steps),
    which kinds, and how long a delivery is retried (see :mod:`loopline.alarm.delivery`)."""

    webhooks: tuple[str, ...] = ()
    #: Patterns of event kinds (``model.*``, ``rollout.promoted``); ``*`` is every kind.
    kinds: tuple[str, ...] = ("*",)
    #: The wait after the first failed attempt; it doubles after each one, with jitter.
    backoff_s: float = field(default=5.0, metadata={"min": 0.0, "max": 86400.0})
    max_backoff_s: float = field(default=600.0, metadata={"min": 0.0, "max": 86400.0})
    #: A delivery still failing this long after it was queued is given up (``failed``).
    retry_for: str = "1d"
    #: Deliveries attempted per pass (a controller tick, ``loopline events deliver``).
    batch: int = field(default=100, metadata={"min": 1, "max": 10000})
    #: What a webhook new to ``webhooks`` gets of the past: the events of this last
    #: stretch of time ("0": none, "all": every event in the log).
    backfill: str = "1h"

    def __post_init__(self) -> None:
        from loopline.monitor.errors import MonitorArgumentError
        from loopline.monitor.windows import parse_duration

        for pattern in self.kinds:
            if not pattern.strip() or any(c.isspace() for c in pattern):
                raise ValueError(
                    f"kinds: {pattern!r} is not a pattern of event kinds; write one like "
                    '"model.*", "rollout.promoted" or "*"'
                )
        if len(set(self.webhooks)) != len(self.webhooks):
            raise ValueError("webhooks names a webhook twice")
        try:
            parse_duration(self.retry_for, argument="retry_for")
            if self.backfill not in ("0", "0s", "all"):
                parse_duration(self.backfill, argument="backfill")
        except MonitorArgumentError as exc:
            raise ValueError(f'{exc.message} (backfill may also be "0" or "all")') from None

    @property
    def retry_for_s(self) -> float:
        from loopline.monitor.windows import parse_duration

        return parse_duration(self.retry_for, argument="retry_for").total_seconds()

    @property
    def backfill_s(self) -> float | None:
        """Seconds of the past a new subscriber gets; None for all of it."""
        from loopline.monitor.windows import parse_duration

        if self.backfill == "all":
            return None
        if self.backfill in ("0", "0s"):
            return 0.0
        return parse_duration(self.backfill, argument="backfill").total_seconds()

    def wants(self, kind: str) -> bool:
        """Whether events of ``kind`` are delivered."""
        from fnmatch import fnmatchcase

        return any(fnmatchcase(kind, pattern) for pattern in self.kinds)


def events_config(settings: Settings) -> EventsSettings:
    """The ``[events]`` table, checked: every webhook it names is an ``[actions.NAME]``
    table of kind webhook."""
    from loopline.config import did_you_mean, load_section
    from loopline.errors import ConfigError

    config = load_section(settings, "events", EventsSettings)
    actions = action_configs(settings)
    source = str(settings.config_file or "loopline.toml")
    for name in config.webhooks:
        action = actions.get(name)
        if action is None:
            raise ConfigError(
                f"[events] webhooks names {name!r}, which no [actions.NAME] table declares"
                f"{did_you_mean(name, actions)}",
                source=source,
                hint=f'Declare it: [actions.{name}] kind = "webhook", url = "https://..."',
            )
        if action.kind != "webhook":
            raise ConfigError(
                f"[events] webhooks names {name!r}, a {action.kind} action; events are "
                "delivered to webhooks only",
                source=source,
            )
    return config


def alarm_configs(settings: Settings) -> dict[str, AlarmSettings]:
    alarms = load_named_sections(settings, "alarms", AlarmSettings)
    actions = action_configs(settings)
    for alarm in alarms.values():
        for name in (*alarm.actions, *alarm.ok_actions):
            if name not in actions:
                from loopline.config import did_you_mean
                from loopline.errors import ConfigError

                raise ConfigError(
                    f"[alarms.{alarm.name}] names the action {name!r}, which no [actions.NAME] "
                    f"table declares{did_you_mean(name, actions)}",
                    source=str(settings.config_file or "loopline.toml"),
                )
    return alarms


def action_configs(settings: Settings) -> dict[str, ActionSettings]:
    return load_named_sections(settings, "actions", ActionSettings)
