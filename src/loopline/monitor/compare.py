"""``monitor compare``: drift and quality between two tables, with no model.

The Evidently use case: before a batch is scored, is it like the data the model learned
from? Either side is a file (CSV or Parquet, read by the data layer with its checks) or a
dataset version (``NAME@V``). The reference side is summarised exactly as a model's
training data is, the current side streamed through the same sketches, and the verdict
uses the same tests, thresholds and quality rules as ``monitor run``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopline.monitor.reference import reference_for_table
from loopline.monitor.runner import GroupResult, _Group
from loopline.monitor.settings import MonitorSettings

if TYPE_CHECKING:
    from loopline.store.stores import Stores

BATCH_ROWS = 262_144


@dataclass
class CompareReport:
    reference: str
    current: str
    result: GroupResult
    seconds: float

    @property
    def status(self) -> str:
        return self.result.status

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "current": self.current,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            **self.result.to_dict(),
        }


def compare_tables(
    reference: Any,
    current: Any,
    *,
    reference_name: str = "reference",
    current_name: str = "current",
    settings: MonitorSettings | None = None,
) -> CompareReport:
    """Compare two Arrow tables column by column (the columns both hold)."""
    import time

    start = time.perf_counter()
    shared = [c for c in reference.column_names if c in current.column_names]
    ref = reference_for_table(reference.select(shared), dataset=reference_name)
    config = settings or MonitorSettings(model="compare")
    group = _Group(0, "current", ref, config, prefix="")
    for batch in current.select(shared).to_batches(max_chunksize=BATCH_ROWS):
        import pyarrow as pa

        group.update(pa.Table.from_batches([batch]), None, None)
    result = group.result(0)
    result.baseline = reference_name
    return CompareReport(reference_name, current_name, result, time.perf_counter() - start)


def read_side(stores: Stores | None, text: str) -> tuple[Any, str]:
    """A file path/URL or ``DATASET@VERSION`` as an Arrow table, and its display name."""
    from pathlib import Path

    if "@" in text and not Path(text).exists() and stores is not None:
        from loopline.data.datasets import Datasets

        name, _, version = text.partition("@")
        ds = Datasets(stores)
        dv = ds.get(name, int(version) if version.isdigit() else (version or None))
        return ds.table_of(dv), dv.ref
    from loopline.data.ingest import read_source

    ingested = read_source(text)
    return ingested.table, text
