"""Deterministic train/validation/test splits of a dataset version.

The same rows, seed, fractions and stratify column always give the same assignment:
rows are shuffled with ``numpy.random.default_rng(seed)`` and cut by the fractions,
rounded by largest remainder so the sizes add up. With ``stratify``, each class (nulls
being one class) is shuffled and cut on its own, in order of first appearance, so every
split keeps the class ratios (to within a row per class).

A split is recorded with the version it came from (see ``ll_dataset_splits``); the
assignment (one byte per row: 0 train, 1 validation, 2 test) is a blob in the
content-addressed store, so a recorded split reloads exactly, whatever later versions of
this code would compute.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline.data.errors import DataArgumentError
from loopline.store.errors import BlobIntegrityError

if TYPE_CHECKING:
    from loopline.data.datasets import DatasetVersion
    from loopline.store.objects.cas import ContentStore
    from loopline.store.stores import Stores

SPLIT_NAMES = ("train", "validation", "test")


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """(train, validation, test) from 3 fractions, or 2 (train, test); else DataArgumentError.

    Each must be in [0, 1], train above 0, and they must add up to 1.
    """
    try:
        values = [float(f) for f in fractions]
    except (TypeError, ValueError) as exc:
        raise DataArgumentError(
            f"fractions must be numbers, like (0.7, 0.15, 0.15), not {fractions!r}"
        ) from exc
    if len(values) == 2:
        values = [values[0], 0.0, values[1]]
    if len(values) != 3:
        raise DataArgumentError(
            f"fractions must be (train, validation, test) or (train, test), "
            f"not {len(values)} numbers: {list(fractions)!r}"
        )
    for name, f in zip(SPLIT_NAMES, values, strict=True):
        if not math.isfinite(f) or not 0.0 <= f <= 1.0:
            raise DataArgumentError(f"the {name} fraction must be between 0 and 1, not {f}")
    if values[0] <= 0:
        raise DataArgumentError("the train fraction must be above 0")
    total = sum(values)
    if abs(total - 1.0) > 1e-6:
        raise DataArgumentError(
            f"fractions must add up to 1, not {total:g} ({' + '.join(f'{v:g}' for v in values)})"
        )
    return values[0], values[1], values[2]


def params_key(seed: int, fractions: tuple[float, float, float], stratify: str | None) -> str:
    """sha256 naming a split's parameters (the same parameters give the same split)."""
    text = json.dumps(
        {"seed": seed, "fractions": list(fractions), "stratify": stratify, "method": 1},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Sizes for ``n`` items by ``fractions`` that add up to ``n`` (largest remainder)."""
    raw = [f * n for f in fractions]
    sizes = [math.floor(r) for r in raw]
    left = n - sum(sizes)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - sizes[i]), i))
    for i in order[:left]:
        sizes[i] += 1
    return sizes


def assign(
    n: int,
    fractions: tuple[float, float, float],
    seed: int,
    strata: Any = None,
) -> Any:
    """The split of each of ``n`` rows: an int8 numpy array of 0 (train), 1, 2 (test).

    ``strata`` is an integer class code per row (any negative value is one class).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=np.int8)
    if strata is None:
        groups = [np.arange(n)]
    else:
        codes = np.asarray(strata)
        codes = np.where(codes < 0, -1, codes)
        order = np.argsort(codes, kind="stable")
        _, starts = np.unique(codes[order], return_index=True)
        bounds = [*starts.tolist(), n]
        groups = [order[bounds[i] : bounds[i + 1]] for i in range(len(starts))]
    for group in groups:
        perm = rng.permutation(group)
        a, b, _ = allocate(len(perm), fractions)
        out[perm[:a]] = 0
        out[perm[a : a + b]] = 1
        out[perm[a + b :]] = 2
    return out


def strata_codes(column: Any) -> Any:
    """Integer class codes of a column (classes in order of first appearance; null -1)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    encoded = pc.dictionary_encode(arr)
    indices = pc.fill_null(encoded.indices.cast(pa.int64()), -1)
    return indices.to_numpy(zero_copy_only=False)


@dataclass(frozen=True)
class SplitRecord:
    """Where a split came from, and how to get the same rows back."""

    id: int
    dataset: str
    version: int
    dataset_digest: str
    seed: int
    fractions: tuple[float, float, float]
    stratify: str | None
    #: Blob of one byte per row (0 train, 1 validation, 2 test).
    assignment_digest: str
    sizes: dict[str, int]
    #: Content digest of each split's table.
    digests: dict[str, str]
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dataset": self.dataset,
            "version": self.version,
            "dataset_digest": self.dataset_digest,
            "seed": self.seed,
            "fractions": list(self.fractions),
            "stratify": self.stratify,
            "assignment_digest": self.assignment_digest,
            "sizes": dict(self.sizes),
            "digests": dict(self.digests),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


@dataclass
class Split:
    """The three parts of a split as pandas DataFrames, with their record.

    Rows keep their order from the dataset, and each DataFrame's index is the rows'
    positions in the dataset version (also in ``indices``, as numpy arrays).
    """

    record: SplitRecord
    train: Any
    validation: Any
    test: Any
    indices: dict[str, Any] = field(default_factory=dict)
    #: True when this call recorded the split (False: it was recorded before).
    created: bool = False

    def __iter__(self) -> Any:
        return iter((self.train, self.validation, self.test))


def record_split(
    stores: Stores,
    found: DatasetVersion,
    table: Any,
    fractions: tuple[float, float, float],
    seed: int,
    stratify: str | None,
    key: str,
) -> Split:
    """Compute, store and record a split (or return the one recorded meanwhile)."""
    import numpy as np
    import sqlalchemy as sa

    from loopline.data.content import table_digest
    from loopline.data.tables import dataset_splits as s
    from loopline.store.db.events import current_actor, record_event
    from loopline.store.db.types import new_id, unique_violation

    strata = strata_codes(table.column(stratify)) if stratify else None
    assignment = assign(table.num_rows, fractions, seed, strata)
    assignment_digest = stores.cas.put(assignment.tobytes())
    indices = {n: np.flatnonzero(assignment == i) for i, n in enumerate(SPLIT_NAMES)}
    parts = {n: table.take(idx) for n, idx in indices.items()}
    sizes = {n: len(idx) for n, idx in indices.items()}
    digests = {n: table_digest(p) for n, p in parts.items()}
    now = datetime.now(UTC)
    actor = current_actor()

    def write(conn: sa.Connection) -> Any:
        existing = conn.execute(
            sa.select(s).where(s.c.version_id == found.id, s.c.params_key == key)
        ).first()
        if existing is not None:
            return existing, False
        result = conn.execute(
            s.insert().values(
                version_id=found.id,
                params_key=key,
                seed=seed,
                fractions=list(fractions),
                stratify=stratify,
                assignment_digest=assignment_digest,
                sizes=sizes,
                digests=digests,
                created_at=now,
                created_by=actor,
            )
        )
        record_event(conn, "dataset.split", found.ref, {"seed": seed, "sizes": sizes}, actor=actor)
        return conn.execute(sa.select(s).where(s.c.id == new_id(result))).one(), True

    try:
        row, created = stores.db.run_write(write)
    except unique_violation():
        with stores.db.read() as conn:
            row = conn.execute(
                sa.select(s).where(s.c.version_id == found.id, s.c.params_key == key)
            ).one()
        created = False
    record = split_record(found, row)
    if not created:
        return split_from_record(stores.cas, record, table)
    return Split(
        record=record,
        train=_frame(parts["train"], indices["train"]),
        validation=_frame(parts["validation"], indices["validation"]),
        test=_frame(parts["test"], indices["test"]),
        indices=indices,
        created=True,
    )


def split_from_record(cas: ContentStore, record: SplitRecord, table: Any) -> Split:
    """The split a record describes, from its stored assignment (verified)."""
    import numpy as np

    data = cas.get(record.assignment_digest)
    assignment = np.frombuffer(data, dtype=np.int8)
    if len(assignment) != table.num_rows:
        raise BlobIntegrityError(
            cas.key_for(record.assignment_digest),
            f"{table.num_rows} rows",
            f"{len(assignment)} rows",
            cas.store.url,
        )
    indices = {n: np.flatnonzero(assignment == i) for i, n in enumerate(SPLIT_NAMES)}
    frames = {n: _frame(table.take(idx), idx) for n, idx in indices.items()}
    return Split(
        record=record,
        train=frames["train"],
        validation=frames["validation"],
        test=frames["test"],
        indices=indices,
        created=False,
    )


def split_record(found: DatasetVersion, row: Any) -> SplitRecord:
    """The record of a row of ``ll_dataset_splits``."""
    from loopline.store.db.types import to_utc

    m = row._mapping
    fr = [float(f) for f in m["fractions"]]
    return SplitRecord(
        id=int(m["id"]),
        dataset=found.name,
        version=found.version,
        dataset_digest=found.digest,
        seed=int(m["seed"]),
        fractions=(fr[0], fr[1], fr[2]),
        stratify=m["stratify"],
        assignment_digest=m["assignment_digest"],
        sizes={k: int(n) for k, n in m["sizes"].items()},
        digests=dict(m["digests"]),
        created_at=to_utc(m["created_at"]),
        created_by=m["created_by"],
    )


def _frame(table: Any, rows: Any) -> Any:
    """``table`` as a DataFrame indexed by the rows' positions in the dataset."""
    import pandas as pd

    frame = table.to_pandas()
    frame.index = pd.Index(rows, name=None)
    return frame
