"""The ``[monitor.MODEL]`` tables of ``loopline.toml``: how a model is watched.

    [monitor.credit_risk]
    every = "5m"                 # the controller runs it this often (none: by hand only)
    window = "1h"                # each run looks at the last hour of the prediction log
    numeric_test = "auto"        # auto, ks, wasserstein, psi
    categorical_test = "auto"    # auto, chi2, jensenshannon, psi
    wasserstein_threshold = 0.1  # normed Wasserstein above this: drift
    drift_share = 0.5            # the model drifts when this share of its features does
    min_labels = 50              # fewer labels in a window: "insufficient_data"
    columns = { income = { test = "psi", threshold = 0.25 }, note = { ignore = true } }

Every key is checked when read (an unknown one names the closest); thresholds apply to
the statistic of the chosen test; ``columns`` overrides the test, the threshold or
ignores a column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from loopline.config import did_you_mean, load_named_sections
from loopline.monitor.drift import DriftOptions

if TYPE_CHECKING:
    from loopline.config import Settings

_COLUMN_KEYS = {"test", "threshold", "ignore"}
_TESTS = {"auto", "ks", "wasserstein", "psi", "chi2", "jensenshannon"}


@dataclass(frozen=True)
class MonitorSettings:
    model: str
    every: str | None = None
    window: str = "1h"
    #: How long after a window ends the controller's scheduled run waits for the servers
    #: to flush the window's last log rows (their ``log_flush_s``, plus a margin).
    delay: str = "15s"
    #: How late labels arrive: the controller runs each window again this long after it
    #: ended, so its realized performance counts the labels that came meanwhile ("0s":
    #: never).
    label_delay: str = "0s"
    #: The label column of the training data (default: the one column beside the inputs).
    target: str | None = None
    #: Another baseline than the training data: ``DATASET@VERSION``.
    reference: str | None = None
    numeric_test: Literal["auto", "ks", "wasserstein", "psi"] = "auto"
    categorical_test: Literal["auto", "chi2", "jensenshannon", "psi"] = "auto"
    small_sample: int = field(default=1000, metadata={"min": 1})
    alpha: float = field(default=0.05, metadata={"min": 0.0, "max": 1.0})
    wasserstein_threshold: float = field(default=0.1, metadata={"min": 0.0})
    jensenshannon_threshold: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    psi_threshold: float = field(default=0.2, metadata={"min": 0.0})
    min_rows: int = field(default=30, metadata={"min": 1})
    drift_share: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    #: Quality: the null share may rise this much over the reference's before it alerts.
    null_share: float = field(default=0.05, metadata={"min": 0.0, "max": 1.0})
    out_of_range_share: float = field(default=0.05, metadata={"min": 0.0, "max": 1.0})
    unseen_share: float = field(default=0.05, metadata={"min": 0.0, "max": 1.0})
    rejected_share: float = field(default=0.05, metadata={"min": 0.0, "max": 1.0})
    anomaly_share: float = field(default=0.02, metadata={"min": 0.0, "max": 1.0})
    min_labels: int = field(default=50, metadata={"min": 1})
    multivariate: bool = True
    #: Per column: {"test": ..., "threshold": ..., "ignore": true}.
    columns: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, spec in self.columns.items():
            if not isinstance(spec, dict):
                raise ValueError(
                    f'columns.{name} must be a table like {{ test = "psi", threshold = 0.3 }}'
                )
            unknown = sorted(set(spec) - _COLUMN_KEYS)
            if unknown:
                raise ValueError(
                    f"columns.{name} has an unknown key {unknown[0]!r}"
                    f"{did_you_mean(unknown[0], _COLUMN_KEYS)}; expected test, threshold, ignore"
                )
            test = spec.get("test", "auto")
            if test not in _TESTS:
                raise ValueError(
                    f"columns.{name}.test {test!r} is not one of {', '.join(sorted(_TESTS))}"
                    f"{did_you_mean(str(test), _TESTS)}"
                )
            threshold = spec.get("threshold")
            if threshold is not None and (
                isinstance(threshold, bool) or not isinstance(threshold, int | float)
            ):
                raise ValueError(f"columns.{name}.threshold must be a number, not {threshold!r}")
            if "ignore" in spec and not isinstance(spec["ignore"], bool):
                raise ValueError(f"columns.{name}.ignore must be true or false")
        if self.every is not None:
            from loopline.monitor.windows import parse_duration

            try:
                parse_duration(self.every, argument="every")
            except Exception as exc:
                raise ValueError(str(exc)) from None
        from loopline.monitor.windows import parse_duration

        try:
            parse_duration(self.window)
            if self.delay not in ("0", "0s"):
                parse_duration(self.delay, argument="delay")
            if self.label_delay not in ("0", "0s"):
                parse_duration(self.label_delay, argument="label_delay")
        except Exception as exc:
            raise ValueError(str(exc)) from None

    def options(self) -> DriftOptions:
        return DriftOptions(
            numeric_test=self.numeric_test,
            categorical_test=self.categorical_test,
            small_sample=self.small_sample,
            alpha=self.alpha,
            wasserstein_threshold=self.wasserstein_threshold,
            jensenshannon_threshold=self.jensenshannon_threshold,
            psi_threshold=self.psi_threshold,
            min_rows=self.min_rows,
        )

    def column_options(self, name: str, numeric: bool) -> DriftOptions | None:
        """The options for one column (None: the column is ignored)."""
        from dataclasses import replace

        spec = self.columns.get(name)
        base = self.options()
        if spec is None:
            return base
        if spec.get("ignore"):
            return None
        test = spec.get("test", "auto")
        changes: dict[str, Any] = {}
        if test != "auto":
            key = "numeric_test" if numeric else "categorical_test"
            if numeric and test in ("chi2", "jensenshannon"):
                raise ValueError(f"column {name!r} is numeric: {test} is for categories")
            if not numeric and test in ("ks", "wasserstein"):
                raise ValueError(f"column {name!r} is categorical: {test} is for numbers")
            changes[key] = test
        threshold = spec.get("threshold")
        if threshold is not None:
            chosen = test if test != "auto" else None
            for attr, tests in (
                ("alpha", ("ks", "chi2")),
                ("wasserstein_threshold", ("wasserstein",)),
                ("jensenshannon_threshold", ("jensenshannon",)),
                ("psi_threshold", ("psi",)),
            ):
                if chosen is None or chosen in tests:
                    changes[attr] = float(threshold)
        return replace(base, **changes)


def monitor_configs(settings: Settings) -> dict[str, MonitorSettings]:
    """Every ``[monitor.MODEL]`` table, checked."""
    return load_named_sections(settings, "monitor", MonitorSettings, name_field="model")


def monitor_config(settings: Settings, model: str) -> MonitorSettings:
    """The model's table, or the defaults when it has none."""
    return monitor_configs(settings).get(model) or MonitorSettings(model=model)
