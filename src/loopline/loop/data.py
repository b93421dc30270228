"""The data a retraining runs on: the newest dataset version plus the production rows
labelled since, and the fresh holdout kept out of it.

The champion's lineage names its training dataset. The labels received since the newest
version of that dataset was created are joined to the inputs the server logged for them
(:meth:`FeedbackStore.labelled_inputs`); the newest ``holdout_share`` of those rows (by
prediction time) become the *fresh holdout*, a dataset of their own that the gates judge
challenger and champion on, and the rest are appended to the dataset as a new version,
the one the pipeline trains on. Both are content-addressed: building them again for the
same rollout (a controller restarted mid-way) finds the same versions.

Production rows are validated against the dataset's schema first: rows with a broken
feature (a column gone null, a type that changed) are refused here, so a model is never
retrained on them; the refusal names the problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from loopline.loop.errors import LoopConfigError

if TYPE_CHECKING:
    from loopline.loop.settings import LoopSettings
    from loopline.registry import ModelVersion
    from loopline.store.stores import Stores

HOLDOUT_SUFFIX = ".fresh-holdout"
#: Validation warnings that, on many rows, mean broken data rather than a new world.
SUSPECT_RULES = ("below_min", "above_max", "unseen_category")


@dataclass
class TrainingData:
    """What a rollout trains and judges on."""

    dataset: str
    #: The newest version before this rollout, and the one it trains on (the same when
    #: no labelled production rows were added).
    base_version: int
    version: int
    digest: str
    #: Labelled production rows appended, and those kept out as the fresh holdout.
    production_rows: int = 0
    holdout_rows: int = 0
    #: ``NAME@VERSION`` of the fresh holdout, or None (too few labelled rows).
    holdout: str | None = None
    #: Labels whose logged inputs could not be found (not used).
    unjoined: int = 0
    since: datetime | None = None
    #: Why these rows cannot be trained on (a validation failure), or empty.
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "base_version": self.base_version,
            "version": self.version,
            "digest": self.digest,
            "ref": self.ref,
            "production_rows": self.production_rows,
            "holdout_rows": self.holdout_rows,
            "holdout": self.holdout,
            "unjoined": self.unjoined,
            "since": None if self.since is None else self.since.isoformat(),
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


def training_dataset(champion: ModelVersion) -> tuple[str, str | None]:
    """(dataset name, its recorded target column or None) from the champion's lineage."""
    for ref in champion.datasets:
        if ref.role == "train":
            return ref.name, None
    raise LoopConfigError(
        f"{champion.ref} records no training dataset, so the loop cannot tell what to "
        "retrain it on",
        hint="Register models with datasets=[DatasetRef(name, version, digest, 'train')]",
    )


def labels_since_newest_version(stores: Stores, champion: ModelVersion) -> int:
    """Labels of the model received since the newest version of its training dataset."""
    import sqlalchemy as sa

    from loopline.data import Datasets
    from loopline.monitor.tables import feedback

    name, _ = training_dataset(champion)
    since = Datasets(stores).get(name).created_at
    with stores.db.read() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(feedback)
                .where(feedback.c.model == champion.name, feedback.c.received_at >= since)
            ).scalar_one()
        )


def build_training_data(
    stores: Stores,
    champion: ModelVersion,
    settings: LoopSettings,
    *,
    target: str,
    rollout_id: str,
) -> TrainingData:
    """The training data and fresh holdout of a rollout of ``champion``'s model."""
    import pandas as pd

    from loopline.data import Datasets
    from loopline.monitor.feedback import LABEL, PREDICTED_AT, FeedbackStore

    ds = Datasets(stores)
    name, _ = training_dataset(champion)
    latest = ds.get(name)
    since = latest.created_at
    labelled, unjoined = FeedbackStore(stores.db).labelled_inputs(
        stores.objects, champion.name, since=since
    )
    data = TrainingData(name, latest.version, latest.version, latest.digest, since=since)
    data.unjoined = unjoined
    if unjoined:
        data.notes.append(f"{unjoined} labels had no logged inputs to join (not used)")
    if not len(labelled):
        data.notes.append(f"no labelled production rows since {name}@{latest.version}")
        return data
    base = ds.load(name, latest.version)
    if target not in base.columns:
        raise LoopConfigError(
            f"dataset {name}@{latest.version} has no target column {target!r}",
            hint=f"Set target in [gates.{champion.name}] (or [monitor.{champion.name}])",
        )
    rows = _as_dataset_rows(labelled, base, target, LABEL)
    report = ds.validate(name, rows)
    if not report.ok:
        data.problems.append(
            f"{len(rows)} labelled production rows fail the schema of {name}: {report.summary()}"
        )
        return data
    # Values the schema only warns about (out of range, unseen categories) are a broken
    # upstream feature when they are common: a column that changed unit, a renamed code.
    for finding in report.warnings:
        if finding.rule not in SUSPECT_RULES or not len(rows):
            continue
        share = finding.count / len(rows)
        if share > settings.max_suspect_share:
            data.problems.append(
                f"{share:.0%} of the labelled production rows: {finding.message} (more than "
                f"max_suspect_share={settings.max_suspect_share:g})"
            )
    if data.problems:
        return data
    n_holdout = round(len(rows) * settings.holdout_share)
    if n_holdout < settings.min_holdout_rows:
        if settings.holdout_share > 0:
            data.notes.append(
                f"only {len(rows)} labelled production rows: no fresh holdout (it would "
                f"have {n_holdout} rows, fewer than min_holdout_rows={settings.min_holdout_rows})"
            )
        n_holdout = 0
    order = labelled[PREDICTED_AT].argsort(kind="stable").to_numpy()
    rows = rows.iloc[order].reset_index(drop=True)
    train_rows = rows.iloc[: len(rows) - n_holdout]
    holdout_rows = rows.iloc[len(rows) - n_holdout :]
    if n_holdout:
        holdout = ds.add(
            name + HOLDOUT_SUFFIX,
            holdout_rows.reset_index(drop=True),
            description=(
                f"the newest {n_holdout} labelled production rows of {champion.name}, kept out "
                f"of training by rollout {rollout_id[:12]}"
            ),
        )
        data.holdout = holdout.ref
        data.holdout_rows = n_holdout
    if len(train_rows):
        combined = pd.concat([base, train_rows], ignore_index=True)
        version = ds.add(
            name,
            combined,
            description=(
                f"{name}@{latest.version} plus {len(train_rows)} labelled production rows of "
                f"{champion.name} (rollout {rollout_id[:12]})"
            ),
        )
        data.version, data.digest = version.version, version.digest
        data.production_rows = len(train_rows)
    return data


def _as_dataset_rows(labelled: Any, base: Any, target: str, label: str) -> Any:
    """The joined rows with the dataset's columns, in its order and (where they convert)
    its dtypes; a column the log lacks is null."""
    import pandas as pd

    out = pd.DataFrame(index=range(len(labelled)))
    for column in base.columns:
        source = label if column == target else column
        values = labelled[source] if source in labelled.columns else None
        if values is None:
            out[column] = pd.Series([None] * len(labelled), dtype=base[column].dtype)
            continue
        values = values.reset_index(drop=True)
        try:
            out[column] = values.astype(base[column].dtype)
        except (TypeError, ValueError):
            out[column] = values
    return out
