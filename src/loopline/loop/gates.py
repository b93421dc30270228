"""Model gates: the project's declared criteria, evaluated on holdout data.

Declared per registered model in ``loopline.toml``::

    [gates.credit_risk]
    criteria = ["roc_auc >= 0.70", "roc_auc >= champion.roc_auc - 0.005", "data.valid"]
    holdout = "credit_applications@3" # dataset (pinned to a version) of the holdout rows
    split = "test"                    # part of its recorded split; omit (or "all"): all rows
    target = "default"                # label column
    champion = "champion"             # alias the candidate is compared with
    candidate = "challenger"          # what `loopline check` evaluates ("latest" for newest)
    if_no_champion = "pass"           # or "fail": what champion-relative criteria do alone
    threshold = 0.5                   # decision threshold of a binary classifier

Everything is parsed when the table is read, criteria included, so a broken gate file is
a configuration error (``loopline check`` exits 2), never a failing model (exit 1). A
holdout dataset that does not exist is a configuration error too, found when the gate is
checked.

The candidate and the champion are evaluated on the same rows (the same dataset version
and split), and those rows are validated against the dataset's schema (``data.valid``).
This joins the registry, the evaluator and the datasets, so it lives above all three,
in the layer of the loop controller that drives promotions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from loopline.config import Settings, did_you_mean, load_named_sections
from loopline.errors import ConfigError
from loopline.registry.errors import RegistryError

if TYPE_CHECKING:
    from loopline.evaluate import Evaluation, Verdict
    from loopline.registry import ModelVersion, Registry
    from loopline.store.stores import Stores

SPLIT_PARTS = ("train", "validation", "test")
IF_NO_CHAMPION = ("pass", "fail")


@dataclass(frozen=True)
class GateConfig:
    """One ``[gates.MODEL]`` table. Checked on construction: a criterion that does not
    parse, a malformed holdout or an unknown split part raises ValueError (a ConfigError
    naming the table when read from loopline.toml)."""

    model: str
    criteria: tuple[str, ...] = ()
    #: Dataset name, optionally pinned: ``name@3`` (recommended for CI).
    holdout: str | None = None
    #: A part of the holdout's recorded split, or None (or "all") for all its rows.
    split: str | None = None
    target: str | None = None
    champion: str = "champion"
    candidate: str = "challenger"
    if_no_champion: Literal["pass", "fail"] = "pass"
    threshold: float | None = field(default=None, metadata={"min": 0.0, "max": 1.0})

    def __post_init__(self) -> None:
        from loopline.evaluate import GateSet
        from loopline.evaluate.errors import GateSyntaxError

        for index, criterion in enumerate(self.criteria):
            try:
                GateSet.from_strings([criterion])
            except GateSyntaxError as exc:
                found = f" (found {exc.found})" if exc.found else ""
                raise ValueError(
                    f"criteria[{index}] {criterion!r}: expected {exc.expected} at position "
                    f"{exc.position}{found}; a criterion compares two expressions, like "
                    "'f1 >= 0.8' or 'roc_auc >= champion.roc_auc - 0.005', or is 'data.valid'"
                ) from None
        if self.holdout is not None:
            name, _, pin = self.holdout.partition("@")
            if not name or (pin and not (pin.isdigit() and int(pin) > 0)):
                raise ValueError(
                    f"holdout {self.holdout!r} must be a dataset name, or NAME@VERSION with "
                    'a version number (e.g. "credit@3")'
                )
        if self.split == "all":
            object.__setattr__(self, "split", None)
        if self.split is not None:
            if self.split not in SPLIT_PARTS:
                raise ValueError(
                    f"split {self.split!r} is not one of {', '.join(SPLIT_PARTS)} or all"
                    f"{did_you_mean(self.split, (*SPLIT_PARTS, 'all'))}"
                )
            if self.holdout is None:
                raise ValueError(f"split {self.split!r} needs a holdout dataset")
        if self.if_no_champion not in IF_NO_CHAMPION:
            raise ValueError(
                f"if_no_champion {self.if_no_champion!r} is not one of "
                f"{', '.join(repr(v) for v in IF_NO_CHAMPION)}"
            )


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


#: The audit log's kind for a candidate its gates stopped (``[events]`` webhooks get it).
GATE_FAILED = "gate.failed"


def failure_event(check: GateCheck, source: str) -> tuple[str, dict[str, Any]]:
    """The subject and detail of the ``gate.failed`` event of a failed ``check``;
    ``source`` says who checked (``check``, ``rollout``)."""
    return check.candidate.ref, {
        "model": check.model,
        "candidate": check.candidate.ref,
        "champion": check.champion.ref if check.champion else None,
        "data": check.data_ref,
        "summary": check.verdict.summary(),
        "failing": check.verdict.reasons,
        "source": source,
    }


def record_failures(stores: Stores, failures: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """One ``gate.failed`` event per (subject, detail), in one transaction."""
    from loopline.store.db.events import record_event

    if not failures:
        return

    def fn(conn: Any) -> None:
        for subject, detail in failures:
            record_event(conn, GATE_FAILED, subject, detail)

    stores.db.run_write(fn)


def gate_configs(settings: Settings) -> dict[str, GateConfig]:
    """Every ``[gates.MODEL]`` table of the project, parsed and checked (criteria too)."""
    return load_named_sections(settings, "gates", GateConfig, name_field="model")


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
    from loopline.data.errors import DatasetNotFoundError

    ds = Datasets(stores)
    assert config.holdout is not None
    name, _, pin = config.holdout.partition("@")
    where = f"[gates.{config.model}] holdout {config.holdout!r}"
    source = str(stores.settings.config_file or "loopline.toml")
    try:
        version = ds.get(name, int(pin) if pin else None)
    except DatasetNotFoundError as exc:
        raise ConfigError(f"{where}: {exc.message}", source=source, hint=exc.hint) from exc
    if config.split:
        records = ds.splits(name, version.version)
        if not records:
            raise ConfigError(
                f"{where}: dataset {version.ref} has no recorded split to take the "
                f"{config.split!r} part from",
                source=source,
                hint=f'Split it first (loopline data split {name}), or set split = "all" '
                f"in [gates.{config.model}]",
            )
        record = records[-1]
        parts = ds.load_split(record.id)
        frame = getattr(parts, config.split)
        data_ref = f"{version.ref}#split{record.id}.{config.split}"
    else:
        frame = ds.load(name, version.version)
        data_ref = version.ref
    report = ds.validate(name, frame)
    return frame, data_ref, report
