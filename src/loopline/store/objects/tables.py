"""Tables as content-addressed Parquet blobs: store a pyarrow Table or pandas DataFrame,
get back a verified pyarrow Table (or DataFrame) by digest.

Parquet is written with zstd compression and fixed writer options, so the same table
gives the same bytes, hence the same digest, with the same pyarrow version. pyarrow is
imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loopline.store.objects.cas import ContentStore
from loopline.types import Digest

#: Writer options fixed for reproducible bytes.
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3
ROW_GROUP_SIZE = 1024 * 1024


def put_table(cas: ContentStore, table: Any) -> Digest:
    """Store a ``pyarrow.Table`` or ``pandas.DataFrame`` as Parquet; return its digest.

    A DataFrame keeps its index the way ``pyarrow.Table.from_pandas`` does (a default
    RangeIndex as metadata, any other index as columns), so it round-trips.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        if _is_dataframe(table):
            table = pa.Table.from_pandas(table)
        else:
            raise TypeError(
                f"put_table expects a pyarrow.Table or a pandas.DataFrame, "
                f"not {type(table).__module__}.{type(table).__qualname__}"
            )
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression=COMPRESSION,
        compression_level=COMPRESSION_LEVEL,
        row_group_size=ROW_GROUP_SIZE,
        write_statistics=True,
        use_dictionary=True,
    )
    return cas.put(sink.getvalue().to_pybytes())


def get_table(cas: ContentStore, digest: str, columns: Sequence[str] | None = None) -> Any:
    """The ``pyarrow.Table`` stored under ``digest`` (verified), optionally some columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = cas.get(digest)
    return pq.read_table(pa.BufferReader(data), columns=list(columns) if columns else None)


def get_dataframe(cas: ContentStore, digest: str, columns: Sequence[str] | None = None) -> Any:
    """The ``pandas.DataFrame`` stored under ``digest`` (verified)."""
    return get_table(cas, digest, columns).to_pandas()


def _is_dataframe(obj: object) -> bool:
    # Checked by name so that pandas is never imported just to reject an argument.
    return any(
        cls.__module__.split(".", 1)[0] == "pandas" and cls.__name__ == "DataFrame"
        for cls in type(obj).__mro__
    )
