"""The ``[loop.MODEL]`` and ``[controller]`` tables of ``loopline.toml``.

    [loop.credit_risk]
    pipeline = "pipelines/example.py"   # the retraining pipeline (a file, or example:NAME)
    params = { n_trials = 4, promote = false }
    data_param = "data"                 # it gets the training data as data = "NAME@VERSION"
    alias = "champion"                  # the serving alias the rollout may move
    mode = "canary"                     # or "shadow": the challenger only sees copies
    percent = 20                        # of the alias's traffic, during the bake
    bake_windows = 2                    # monitor windows the challenger bakes for
    bake = [                            # judged on each bake window, challenger vs champion
      "health.error_share <= champion.health.error_share + 0.01",
      "health.latency_p99_ms <= champion.health.latency_p99_ms * 3 + 25",
    ]
    holdout_share = 0.3                 # newest labelled production rows kept out of training
    compare_on = "fresh"                # champion.* criteria on the fresh holdout ("both")
    min_production_rows = 1000          # labels to wait for before training (max_wait)
    cooldown = "0s"                     # no new rollout this soon after one ended
    actions = ["ops"]                   # webhooks told of every step of a rollout

    [controller]
    tick_s = 1.0                        # how often the controller looks at its work
    lease_s = 15.0                      # a controller that stops renewing loses the lease
    port = 8790                         # /health, /metrics, POST /alertmanager

The bake criteria are the gate language: a name is a monitor metric of the challenger's
group in the window (``health.error_share``), ``champion.NAME`` the champion's in the
same window, and ``compare.prediction_psi`` / ``compare.positive_rate_diff`` compare the
two models' answers in the window directly. A criterion whose values the window does not
have (no labels yet for ``performance.*``) is not judged on that window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from loopline.config import load_named_sections, load_section

if TYPE_CHECKING:
    from loopline.config import Settings

#: What a bake checks when ``bake`` is not set: the challenger answers as reliably and
#: about as fast as the champion, and (where the window has them) no worse.
DEFAULT_BAKE: tuple[str, ...] = (
    "health.error_share <= champion.health.error_share + 0.01",
    "health.latency_p99_ms <= champion.health.latency_p99_ms * 3 + 25",
    "performance.roc_auc >= champion.performance.roc_auc - 0.03",
    "performance.accuracy >= champion.performance.accuracy - 0.03",
    "compare.positive_rate_diff <= 0.25",
)


@dataclass(frozen=True)
class LoopSettings:
    model: str
    #: The retraining pipeline: a .py file (``file.py:name`` for one of several), or
    #: ``example:NAME``. Without one, a rollout can only start from an existing version.
    pipeline: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: The pipeline parameter that receives the training data (``NAME@VERSION``); "" for
    #: a pipeline that finds its data itself.
    data_param: str = "data"
    alias: str = "champion"
    mode: Literal["canary", "shadow"] = "canary"
    percent: float = field(default=20.0, metadata={"min": 0.1, "max": 100.0})
    bake_windows: int = field(default=2, metadata={"min": 1, "max": 1000})
    #: Bake windows that may lack data (no traffic reached the challenger) before the
    #: rollout gives up and rolls back.
    max_empty_windows: int = field(default=5, metadata={"min": 0, "max": 1000})
    bake: tuple[str, ...] = DEFAULT_BAKE
    #: Share of the newest labelled production rows kept out of training: the gates'
    #: fresh holdout (beside the [gates.MODEL] holdout).
    holdout_share: float = field(default=0.3, metadata={"min": 0.0, "max": 0.9})
    #: Fewer labelled rows than this: the fresh holdout is skipped (too small to judge).
    min_holdout_rows: int = field(default=50, metadata={"min": 1})
    #: Where criteria that compare with the champion are judged: ``fresh`` (on the fresh
    #: holdout when there is one: the world as it is now; absolute criteria still hold on
    #: both holdouts) or ``both``.
    compare_on: Literal["fresh", "both"] = "fresh"
    #: Labelled production rows a retraining waits for (since the newest dataset version)
    #: before it trains, up to ``max_wait``; then it is refused.
    min_production_rows: int = field(default=0, metadata={"min": 0})
    max_wait: str = "1h"
    #: A share of the production rows above this with out-of-range values or unseen
    #: categories (a column that changed unit) refuses them for training.
    max_suspect_share: float = field(default=0.05, metadata={"min": 0.0, "max": 1.0})
    cooldown: str = "0s"
    #: [actions.NAME] tables (webhooks) told of every transition of a rollout.
    actions: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        from loopline.evaluate.errors import GateSyntaxError
        from loopline.evaluate.gates import Gate

        for index, criterion in enumerate(self.bake):
            try:
                gate = Gate.parse(criterion)
            except GateSyntaxError as exc:
                raise ValueError(
                    f"bake[{index}] {criterion!r}: expected {exc.expected} at position "
                    f"{exc.position}; a bake criterion compares monitor metrics, like "
                    "'health.error_share <= champion.health.error_share + 0.01'"
                ) from None
            if gate.is_data_check:
                raise ValueError(f"bake[{index}] {criterion!r} must compare metrics")
        if self.cooldown not in ("", "0", "0s"):
            from loopline.monitor.windows import parse_duration

            try:
                parse_duration(self.cooldown, argument="cooldown")
            except Exception as exc:
                raise ValueError(str(exc)) from None
        from loopline.monitor.windows import parse_duration

        try:
            parse_duration(self.max_wait, argument="max_wait")
        except Exception as exc:
            raise ValueError(str(exc)) from None
        if self.alias in ("latest",):
            raise ValueError("alias must name an alias a server follows, not 'latest'")

    @property
    def max_wait_s(self) -> float:
        from loopline.monitor.windows import parse_duration

        return parse_duration(self.max_wait, argument="max_wait").total_seconds()

    @property
    def cooldown_s(self) -> float:
        if self.cooldown in ("", "0", "0s"):
            return 0.0
        from loopline.monitor.windows import parse_duration

        return parse_duration(self.cooldown, argument="cooldown").total_seconds()


@dataclass(frozen=True)
class ControllerSettings:
    tick_s: float = field(default=1.0, metadata={"min": 0.05, "max": 3600.0})
    lease_s: float = field(default=15.0, metadata={"min": 1.0, "max": 3600.0})
    host: str = "127.0.0.1"
    port: int = field(default=8790, metadata={"min": 0, "max": 65535})
    #: Missed monitor windows a restarted controller still runs (older ones are skipped).
    catch_up: int = field(default=3, metadata={"min": 0, "max": 1000})
    #: Threads that run actions (webhooks ...) beside the controller's own work.
    action_workers: int = field(default=4, metadata={"min": 1, "max": 64})


def loop_configs(settings: Settings) -> dict[str, LoopSettings]:
    """Every ``[loop.MODEL]`` table, checked."""
    return load_named_sections(settings, "loop", LoopSettings, name_field="model")


def loop_config(settings: Settings, model: str) -> LoopSettings:
    return loop_configs(settings).get(model) or LoopSettings(model=model)


def controller_settings(settings: Settings) -> ControllerSettings:
    return load_section(settings, "controller", ControllerSettings)
