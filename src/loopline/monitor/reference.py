"""A model version's reference: what its production data and predictions are compared to.

The reference of a model version is built from the dataset version it was trained on
(the registry's lineage names it): the training part of its recorded split when there is
one, else all its rows. It holds, per input column of the model's signature, the exact
summary the drift statistics need (:mod:`loopline.monitor.sketches`), the multivariate
and anomaly models (:mod:`loopline.monitor.multivariate`), the model's feature
importances when it exposes them, and, computed on the validation rows (the split's
validation part, else its test part, else all rows): the distribution of the model's own
predictions and scores, and the calibration for estimating performance without labels
(:mod:`loopline.monitor.estimate`).

A reference is computed once and stored as canonical JSON in the content-addressed store;
``ll_monitor_references`` records which blob is the reference of which (model, version,
baseline). Any other dataset version can be a baseline too (``--reference DATASET@V``):
its rows are then the reference of the features, and the model's predictions on them the
reference of the predictions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline.monitor.errors import MonitorError, MonitorReferenceError
from loopline.monitor.estimate import Calibration
from loopline.monitor.multivariate import AnomalyScorer, Encoder, PcaDrift, sample_rows
from loopline.monitor.sketches import (
    CategoricalReference,
    NumericReference,
    Reference,
    build_categorical_reference,
    build_numeric_reference,
    reference_from_dict,
)

if TYPE_CHECKING:
    from loopline.registry import ModelVersion, Registry
    from loopline.store.stores import Stores

FORMAT = 1
TRAINING = "training"
NUMERIC_KINDS = ("integer", "float")
CATEGORICAL_KINDS = ("string", "category", "boolean")


@dataclass
class PredictionReference:
    """The model's own outputs on the validation rows."""

    task: str
    classes: list[str] | None
    #: Predicted labels (classifiers) as a categorical reference.
    labels: CategoricalReference | None
    #: The score: the positive class's probability (binary), the top class's (multi-class)
    #: or the predicted value (regression).
    scores: NumericReference | None
    calibration: Calibration | None
    rows: int
    #: Realized metrics on the validation rows, when they carry labels.
    metrics: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "classes": self.classes,
            "labels": None if self.labels is None else self.labels.to_dict(),
            "scores": None if self.scores is None else self.scores.to_dict(),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "rows": self.rows,
            "metrics": self.metrics,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PredictionReference:
        return cls(
            task=str(d["task"]),
            classes=None if d.get("classes") is None else [str(c) for c in d["classes"]],
            labels=None if d.get("labels") is None else CategoricalReference.from_dict(d["labels"]),
            scores=None if d.get("scores") is None else NumericReference.from_dict(d["scores"]),
            calibration=(
                None if d.get("calibration") is None else Calibration.from_dict(d["calibration"])
            ),
            rows=int(d["rows"]),
            metrics=dict(d.get("metrics") or {}),
        )


@dataclass
class ModelReference:
    """Everything monitoring compares a window of one model version with."""

    model: str | None
    version: int | None
    baseline: str
    dataset: str
    rows: int
    features: dict[str, Reference]
    target: str | None = None
    importances: dict[str, float] | None = None
    multivariate: PcaDrift | None = None
    anomaly: AnomalyScorer | None = None
    prediction: PredictionReference | None = None
    validation: str = ""
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": self.model,
            "version": self.version,
            "baseline": self.baseline,
            "dataset": self.dataset,
            "rows": self.rows,
            "target": self.target,
            "features": {k: v.to_dict() for k, v in self.features.items()},
            "importances": self.importances,
            "multivariate": None if self.multivariate is None else self.multivariate.to_dict(),
            "anomaly": None if self.anomaly is None else self.anomaly.to_dict(),
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "validation": self.validation,
            "created_at": self.created_at,
        }

    def to_json(self) -> bytes:
        return json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=True
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ModelReference:
        d = json.loads(data)
        if d.get("format") != FORMAT:
            raise MonitorReferenceError(
                f"cannot read a monitoring reference in format {d.get('format')!r}; this "
                f"loopline reads format {FORMAT}",
                hint="Rebuild it: loopline monitor run ... --rebuild-reference",
            )
        return cls(
            model=d.get("model"),
            version=d.get("version"),
            baseline=str(d["baseline"]),
            dataset=str(d["dataset"]),
            rows=int(d["rows"]),
            features={k: reference_from_dict(v) for k, v in d["features"].items()},
            target=d.get("target"),
            importances=d.get("importances"),
            multivariate=None
            if d.get("multivariate") is None
            else PcaDrift.from_dict(d["multivariate"]),
            anomaly=None if d.get("anomaly") is None else AnomalyScorer.from_dict(d["anomaly"]),
            prediction=(
                None
                if d.get("prediction") is None
                else PredictionReference.from_dict(d["prediction"])
            ),
            validation=str(d.get("validation", "")),
            created_at=str(d.get("created_at", "")),
        )

    @property
    def numeric(self) -> list[str]:
        return [k for k, v in self.features.items() if isinstance(v, NumericReference)]

    @property
    def categorical(self) -> list[str]:
        return [k for k, v in self.features.items() if isinstance(v, CategoricalReference)]


# -- building --------------------------------------------------------------------------------


def build_reference(
    columns: dict[str, Any],
    kinds: dict[str, str],
    *,
    dataset: str,
    baseline: str = TRAINING,
    model: str | None = None,
    version: int | None = None,
    workers: int | None = None,
) -> ModelReference:
    """The feature side of a reference from Arrow columns (``kinds``: signature kinds)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    numeric = [k for k in columns if kinds.get(k) in NUMERIC_KINDS]
    categorical = [k for k in columns if kinds.get(k) in CATEGORICAL_KINDS]

    def one(name: str) -> Reference:
        if name in numeric:
            return build_numeric_reference(columns[name])
        return build_categorical_reference(columns[name])

    names = numeric + categorical
    pool = max(1, min(workers or (os.cpu_count() or 1), len(names) or 1))
    with ThreadPoolExecutor(pool, thread_name_prefix="loopline-reference") as ex:
        built = dict(zip(names, ex.map(one, names), strict=True))
    rows = len(next(iter(columns.values()))) if columns else 0
    sample = sample_rows(rows)
    sampled = {k: _take(columns[k], sample) for k in names}
    encoder = Encoder.fit(sampled, numeric, categorical)
    return ModelReference(
        model=model,
        version=version,
        baseline=baseline,
        dataset=dataset,
        rows=rows,
        features=built,
        multivariate=PcaDrift.fit(encoder, sampled),
        anomaly=AnomalyScorer.fit(encoder, sampled),
        created_at=datetime.now(UTC).isoformat(),
    )


def _take(col: Any, rows: Any) -> Any:
    import pyarrow as pa

    if len(rows) == len(col):
        return col
    return col.take(pa.array(rows))


def add_predictions(
    reference: ModelReference, model: Any, frame: Any, labels: Any | None, *, source: str
) -> None:
    """Fill ``reference.prediction`` from the model's outputs on ``frame`` (the validation
    rows; ``labels`` their true values, or None)."""
    import numpy as np
    import pyarrow as pa

    signature = getattr(model, "signature", None)
    kind = signature.output.kind if signature is not None else "unknown"
    reference.validation = source
    if len(frame) == 0:
        return
    predicted = np.asarray(model.predict(frame))
    if kind == "classifier":
        classes = [str(c) for c in model.classes_]
        proba = np.asarray(model.predict_proba(frame), dtype=np.float64)
        score = proba[:, 1] if len(classes) == 2 else proba.max(axis=1)
        calibration = None
        metrics: dict[str, float | None] = {}
        if labels is not None and len(classes) >= 2:
            truth = np.asarray([str(v) for v in labels], dtype=object)
            if len(set(truth.tolist())) >= 2:
                calibration = Calibration.fit(classes, proba, truth)
            metrics = _realized(truth, np.asarray([str(v) for v in predicted]), proba, classes)
        reference.prediction = PredictionReference(
            task="classification",
            classes=classes,
            labels=build_categorical_reference(_arrow(predicted)),
            scores=build_numeric_reference(pa.array(score)),
            calibration=calibration,
            rows=len(frame),
            metrics=metrics,
        )
    else:
        values = np.asarray(predicted, dtype=np.float64)
        metrics = {}
        if labels is not None:
            from loopline.monitor.performance import realized_metrics

            metrics = realized_metrics("regression", labels, values, None, None)
        reference.prediction = PredictionReference(
            task="regression",
            classes=None,
            labels=None,
            scores=build_numeric_reference(pa.array(values)),
            calibration=None,
            rows=len(frame),
            metrics=metrics,
        )


def _arrow(values: Any) -> Any:
    """Predicted labels as a typed Arrow array (the log holds them typed, so both sides
    of a comparison name their categories the same way)."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([str(v) for v in values.tolist()])


def _realized(
    truth: Any, predicted: Any, proba: Any, classes: list[str]
) -> dict[str, float | None]:
    from loopline.monitor.performance import realized_metrics

    return realized_metrics("classification", truth, predicted, proba, classes)


def feature_importances(model: Any, columns: list[str]) -> dict[str, float] | None:
    """Importance per input column, when the model (or its last step) exposes one that
    matches the inputs: ``feature_importances_`` or the magnitude of ``coef_``."""
    import numpy as np

    candidates = [model]
    native = getattr(model, "model", None)
    if native is not None:
        candidates.append(native)
    for m in list(candidates):
        steps = getattr(m, "steps", None)
        if steps:
            candidates.append(steps[-1][1])
    for m in candidates:
        values = getattr(m, "feature_importances_", None)
        if values is None and getattr(m, "coef_", None) is not None:
            coef = np.atleast_2d(np.asarray(m.coef_, dtype=np.float64))
            values = np.abs(coef).sum(axis=0)
        if values is None:
            continue
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size == len(columns) and np.all(np.isfinite(arr)) and arr.sum() > 0:
            return {c: float(v / arr.sum()) for c, v in zip(columns, arr, strict=True)}
    return None


# -- the stored reference of a model version --------------------------------------------------


def model_reference(
    stores: Stores,
    mv: ModelVersion,
    *,
    registry: Registry | None = None,
    baseline: str | None = None,
    target: str | None = None,
    rebuild: bool = False,
) -> ModelReference:
    """The reference of ``mv`` against ``baseline`` (default: its training data), from
    the store when it was built before, else built now and stored."""
    from loopline.monitor.tables import references as t
    from loopline.registry import Registry

    reg = registry or Registry(stores)
    key = baseline or TRAINING
    import sqlalchemy as sa

    if not rebuild:
        with stores.db.read() as conn:
            digest = conn.execute(
                sa.select(t.c.digest).where(
                    t.c.model == mv.name, t.c.version == mv.version, t.c.baseline == key
                )
            ).scalar()
        if digest is not None:
            try:
                return ModelReference.from_json(stores.cas.get(digest))
            except MonitorReferenceError:
                pass  # an older format: build it again
    reference = _build_for_version(stores, reg, mv, key, target)
    digest = stores.cas.put(reference.to_json())

    def save(conn: sa.Connection) -> None:
        conn.execute(
            t.delete().where(t.c.model == mv.name, t.c.version == mv.version, t.c.baseline == key)
        )
        conn.execute(
            t.insert().values(
                model=mv.name,
                version=mv.version,
                baseline=key,
                digest=digest,
                dataset=reference.dataset,
                created_at=datetime.now(UTC),
            )
        )

    stores.db.run_write(save, conflicts=5)
    return reference


def try_model_reference(
    stores: Stores, mv: ModelVersion, *, registry: Registry | None = None
) -> tuple[ModelReference | None, str | None]:
    """:func:`model_reference` of ``mv`` against its training data, built now if it was
    not, for callers that go on without one (a registration, a rollout about to deploy):
    ``(reference, None)``, or ``(None, why not)`` when the monitor cannot describe it."""
    try:
        return model_reference(stores, mv, registry=registry), None
    except MonitorError as exc:
        return None, str(exc)


def _build_for_version(
    stores: Stores, reg: Registry, mv: ModelVersion, baseline: str, target: str | None
) -> ModelReference:
    from loopline.data.datasets import Datasets
    from loopline.data.errors import DatasetNotFoundError
    from loopline.store.errors import ObjectNotFoundError

    ds = Datasets(stores)
    if baseline == TRAINING:
        trained = [d for d in mv.datasets if d.role in ("train", "training")] or list(mv.datasets)
        if not trained:
            raise MonitorReferenceError(
                f"Model {mv.ref} records no training dataset, so it has no reference to "
                "compare production data with",
                hint="Register it with datasets=[...] (its lineage), or pass --reference "
                "DATASET@VERSION",
            )
        name, version, split_id = trained[0].name, trained[0].version, trained[0].split
    else:
        name, _, pin = baseline.partition("@")
        version, split_id = (int(pin) if pin.isdigit() else pin or None), None
    try:
        dv = ds.get(name, version)
    except DatasetNotFoundError as exc:
        raise MonitorReferenceError(
            f"Model {mv.ref}'s reference dataset {name}@{version} is gone ({exc.message})",
            hint="Restore it, or pass --reference DATASET@VERSION for another baseline",
        ) from exc
    inputs = [c.name for c in mv.signature.inputs]
    kinds = {c.name: c.kind for c in mv.signature.inputs}
    try:
        table = ds.table_of(dv)
    except ObjectNotFoundError as exc:
        raise MonitorReferenceError(
            f"Model {mv.ref}'s reference dataset {dv.ref} has lost its data ({exc.message})",
            hint="Add the data again (loopline data add) to restore it",
        ) from exc
    missing = [c for c in inputs if c not in table.column_names]
    if missing:
        raise MonitorReferenceError(
            f"Dataset {dv.ref} lacks the model's input columns {', '.join(missing)}; it "
            f"cannot be the reference of {mv.ref}",
            hint="Pass --reference with a dataset holding the model's inputs",
        )
    extra = [c for c in table.column_names if c not in inputs]
    target = target if target is not None else (extra[0] if len(extra) == 1 else None)
    if target is not None and target not in table.column_names:
        target = None

    train_rows, valid_rows, source = _parts(ds, dv, split_id, table.num_rows, baseline)
    train = table.take(train_rows) if train_rows is not None else table
    columns = {c: train.column(c) for c in inputs}
    reference = build_reference(
        columns, kinds, dataset=dv.ref, baseline=baseline, model=mv.name, version=mv.version
    )
    reference.target = target
    model = reg.load(mv)
    reference.importances = feature_importances(model.model, inputs)
    valid = table.take(valid_rows) if valid_rows is not None else table
    frame = valid.select(inputs).to_pandas()
    labels = valid.column(target).to_pylist() if target is not None else None
    add_predictions(reference, model, frame, labels, source=source)
    return reference


def _parts(ds: Any, dv: Any, split_id: int | None, n: int, baseline: str) -> tuple[Any, Any, str]:
    """Row positions of the reference's training and validation rows, and where the
    validation rows come from (said in reports)."""
    records = ds.splits(dv.name, dv.version)
    if split_id is not None:
        records = [r for r in records if r.id == split_id] or records
    if not records or baseline != TRAINING:
        return None, None, f"all {n} rows of {dv.ref} (no split recorded)"
    import numpy as np

    record = records[-1]
    assignment = np.frombuffer(ds._cas.get(record.assignment_digest), dtype=np.int8)
    if len(assignment) != n:
        return None, None, f"all {n} rows of {dv.ref} (its split does not fit)"
    train = np.flatnonzero(assignment == 0)
    for code, part in ((1, "validation"), (2, "test")):
        rows = np.flatnonzero(assignment == code)
        if rows.size:
            return train, rows, f"the {part} part of split {record.id} of {dv.ref}"
    return train, None, f"all {n} rows of {dv.ref} (its split has no validation rows)"


def reference_for_table(
    table: Any, *, dataset: str, kinds: dict[str, str] | None = None
) -> ModelReference:
    """A reference of any table's columns (``monitor compare``: no model)."""
    import pyarrow as pa

    inferred = kinds or {
        name: _kind_of(table.schema.field(name).type, pa) for name in table.column_names
    }
    columns = {
        c: table.column(c)
        for c in table.column_names
        if inferred.get(c) in NUMERIC_KINDS + CATEGORICAL_KINDS
    }
    return build_reference(columns, inferred, dataset=dataset, baseline=dataset)


def _kind_of(type_: Any, pa: Any) -> str:
    if pa.types.is_boolean(type_):
        return "boolean"
    if pa.types.is_integer(type_):
        return "integer"
    if pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return "float"
    if (
        pa.types.is_string(type_)
        or pa.types.is_large_string(type_)
        or pa.types.is_dictionary(type_)
    ):
        return "string"
    return "other"


def finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value
