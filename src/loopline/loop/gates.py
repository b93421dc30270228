"""Model gates: the project's declared criteria, evaluated on holdout data.

Declared per registered model in ``loopline.toml``::

    [gates.credit_risk]
    criteria = ["roc_auc >= 0.70", "roc_auc >= champion.roc_auc - 0.005", "data.valid"]
    holdout = "credit_applications"   # dataset providing the holdout rows
    split = "test"                    # part of its latest recorded split (omit: all rows)
    target = "default"                # label column
    champion = "champion"             # alias the candidate is compared with
    candidate = "challenger"          # what `loopline check` evaluates ("latest" for newest)

The candidate and the champion are evaluated on the same rows (the same dataset version
and split), and those rows are validated against the dataset's schema (``data.valid``).
This joins the registry, the evaluator and the datasets, so it lives above all three,
in the layer of the loop controller that drives promotions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from loopline.config import Settings, read_section
from loopline.errors import ConfigError, RegistryError

if TYPE_CHECKING:
    from loopline.evaluate import Evaluation, Verdict
    from loopline.registry import ModelVersion, Registry
    from loopline.store.stores import Stores

_KEYS = {
    "criteria",
    "holdout",
    "split",
    "target",
    "champion",
    "candidate",
    "if_no_champion",
    "threshold",
}


@dataclass(frozen=True)
class GateConfig:
    model: str
    criteria: tuple[str, ...]
    holdout: str | None = None
    split: str | None = "test"
    target: str | None = None
    champion: str = "champion"
    candidate: str = "challenger"
    if_no_champion: Literal["pass", "fail"] = "pass"
    threshold: float | None = None


@dataclass
class GateCheck:
    """The outcome of checking one candidate: the verdict and what it was based on."""

    model: str
    candidate: ModelVersion
    champion: ModelVersion | None
    verdict: Verdict
    candidate_eval: Evaluation | None = None
    champion_eval: Evaluation | None = None
    data_ref: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.verdict.passed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "candidate": self.candidate.ref if self.candidate else None,
            "champion": self.champion.ref if self.champion else None,
            "passed": self.passed,
            "data": self.data_ref,
            "verdict": self.verdict.to_dict(),
            "candidate_metrics": self.candidate_eval.metrics if self.candidate_eval else None,
            "champion_metrics": self.champion_eval.metrics if self.champion_eval else None,
            "notes": self.notes,
        }


def gate_configs(settings: Settings) -> dict[str, GateConfig]:
    """Every ``[gates.MODEL]`` table of the project, checked."""
    raw = read_section(settings, "gates")
    source = str(settings.config_file) if settings.config_file else "loopline.toml"
    out: dict[str, GateConfig] = {}
    for model, table in raw.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"[gates.{model}] must be a table", source=source)
        unknown = set(table) - _KEYS
        if unknown:
            raise ConfigError(
                f"unknown key {sorted(unknown)[0]!r} in [gates.{model}]; "
                f"expected one of {', '.join(sorted(_KEYS))}",
                source=source,
            )
        criteria = table.get("criteria", [])
        if not isinstance(criteria, list) or not all(isinstance(c, str) for c in criteria):
            raise ConfigError(
                f'[gates.{model}] criteria must be a list of strings such as "f1 >= 0.8"',
                source=source,
            )
        out[model] = GateConfig(
            model=model,
            criteria=tuple(criteria),
            holdout=table.get("holdout"),
            split=table.get("split", "test"),
            target=table.get("target"),
            champion=str(table.get("champion", "champion")),
            candidate=str(table.get("candidate", "challenger")),
            if_no_champion="fail" if table.get("if_no_champion") == "fail" else "pass",
            threshold=table.get("threshold"),
        )
    return out


def check_candidate(
    stores: Stores,
    config: GateConfig,
    candidate: ModelVersion,
    *,
    registry: Registry | None = None,
    champion: ModelVersion | str | None = "auto",
) -> GateCheck:
    """Evaluate ``candidate`` (and the champion) on the holdout rows; apply the criteria."""
    from loopline.evaluate import GateSet, evaluate
    from loopline.registry import Registry

    reg = registry or Registry(stores)
    if champion == "auto":
        champion = _holder(reg, config.model, config.champion)
    assert not isinstance(champion, str)
    gates = GateSet.from_strings(list(config.criteria))
    notes: list[str] = []
    if champion is not None and champion.version == candidate.version:
        notes.append(f"the candidate is the current {config.champion}")
    if config.holdout is None:
        # No holdout data: judge on the metrics recorded at registration.
        champ_metrics = dict(champion.metrics) if champion else None
        verdict = gates.evaluate(
            dict(candidate.metrics), champ_metrics, None, if_no_champion=config.if_no_champion
        )
        notes.append("no holdout configured: criteria use the metrics recorded at registration")
        return GateCheck(config.model, candidate, champion, verdict, notes=notes)

    frame, data_ref, report = _holdout(stores, config)
    target = config.target
    if target is None or target not in frame.columns:
        raise ConfigError(
            f"holdout {data_ref} has no target column {target!r} for model {config.model!r}",
            hint=f'Set target = "..." in [gates.{config.model}]',
        )
    x, y = frame.drop(columns=[target]), frame[target]
    cand_eval = evaluate(reg.load(candidate), x, y, data_id=data_ref, threshold=config.threshold)
    champ_eval = (
        evaluate(reg.load(champion), x, y, data_id=data_ref, threshold=config.threshold)
        if champion is not None
        else None
    )
    verdict = gates.evaluate(cand_eval, champ_eval, report.ok, if_no_champion=config.if_no_champion)
    if not report.ok:
        notes.append(f"holdout data failed validation: {report.summary()}")
    return GateCheck(
        config.model, candidate, champion, verdict, cand_eval, champ_eval, data_ref, notes
    )


def _holder(reg: Registry, model: str, alias: str) -> ModelVersion | None:
    try:
        return reg.resolve(f"{model}@{alias}")
    except RegistryError:
        return None


def resolve_candidate(reg: Registry, config: GateConfig) -> ModelVersion:
    """The version ``loopline check`` judges: an alias holder, or the newest version."""
    ref = config.model if config.candidate == "latest" else f"{config.model}@{config.candidate}"
    return reg.resolve(ref)


def _holdout(stores: Stores, config: GateConfig) -> tuple[Any, str, Any]:
    from loopline.data import Datasets

    ds = Datasets(stores)
    assert config.holdout is not None
    version = ds.get(config.holdout)
    if config.split:
        records = ds.splits(config.holdout, version.version)
        if not records:
            raise ConfigError(
                f"dataset {version.ref} has no recorded split to take the "
                f"{config.split!r} part from",
                hint=f"Split it first (Datasets.split), or remove split from "
                f"[gates.{config.model}]",
            )
        record = records[-1]
        parts = ds.load_split(record.id)
        if config.split not in ("train", "validation", "test"):
            raise ConfigError(
                f"[gates.{config.model}] split must be train, validation or "
                f"test, not {config.split!r}"
            )
        frame = getattr(parts, config.split)
        data_ref = f"{version.ref}#split{record.id}.{config.split}"
    else:
        frame = ds.load(config.holdout, version.version)
        data_ref = version.ref
    report = ds.validate(config.holdout, frame)
    return frame, data_ref, report
