"""Step outputs to content-addressed bytes and back, in safe formats only.

| value                                   | format            | bytes                         |
|-----------------------------------------|-------------------|-------------------------------|
| pandas DataFrame / Series               | ``parquet-pandas``| Parquet (zstd)                |
| pyarrow Table                           | ``parquet-arrow`` | Parquet (zstd)                |
| polars DataFrame                        | ``parquet-polars``| Parquet (zstd)                |
| numpy array (not of objects)            | ``npy``           | ``np.save(allow_pickle=False)``|
| JSON values (dict/list/str/number/bool) | ``json``          | canonical JSON                |
| bytes                                   | ``bytes``         | as is                         |
| model (scikit-learn, XGBoost, LightGBM) | ``model``         | the registry's safe flavors   |
| dict / list / tuple of any of the above | ``bundle``        | JSON manifest of child digests |

Nothing is ever pickled. The digest of a value's bytes is its identity for caching.
"""

from __future__ import annotations

import io
import json
from typing import Any

from loopline.pipeline.errors import StepOutputError
from loopline.store.objects.cas import ContentStore

FORMAT_VERSION = 1


def store_value(cas: ContentStore, value: Any, *, where: str = "value") -> tuple[str, str]:
    """Store ``value``; return (format, digest)."""
    fmt, data = _encode(cas, value, where)
    return fmt, str(cas.put(data))


def load_value(cas: ContentStore, fmt: str, digest: str) -> Any:
    data = cas.get(digest)
    return _decode(cas, fmt, data)


def _encode(cas: ContentStore, value: Any, where: str) -> tuple[str, bytes]:
    kind = _kind(value)
    if kind == "bytes":
        return "bytes", bytes(value)
    if kind == "pandas":
        import pandas as pd
        import pyarrow as pa

        frame = value.to_frame() if isinstance(value, pd.Series) else value
        table = pa.Table.from_pandas(frame, preserve_index=True)
        meta = dict(table.schema.metadata or {})
        meta[b"loopline.series"] = b"1" if isinstance(value, pd.Series) else b"0"
        return "parquet-pandas", _parquet(table.replace_schema_metadata(meta))
    if kind == "arrow":
        return "parquet-arrow", _parquet(value)
    if kind == "polars":
        return "parquet-polars", _parquet(value.to_arrow())
    if kind == "numpy":
        if value.dtype.hasobject:
            raise StepOutputError(
                f"{where} is a numpy array of Python objects, which cannot be saved without "
                "pickle; convert it to a numeric or string dtype, or to a DataFrame"
            )
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return "npy", buf.getvalue()
    if kind == "model":
        from loopline.registry.flavors import detect_flavor

        flavor = detect_flavor(value)
        packed = flavor.save(value)
        files = {name: str(cas.put(data)) for name, data in sorted(packed.files.items())}
        manifest = {"flavor": flavor.name, "info": packed.info, "files": files, "v": FORMAT_VERSION}
        return "model", json.dumps(manifest, sort_keys=True, default=str).encode()
    json_text = _try_json(value)
    if json_text is not None:
        return "json", json_text.encode()
    if isinstance(value, dict | list | tuple):
        items: list[list[Any]] = []
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise StepOutputError(
                        f"{where} is a dict with a non-string key {k!r}; use string keys"
                    )
                fmt, digest = store_value(cas, v, where=f"{where}[{k!r}]")
                items.append([k, fmt, digest])
        else:
            for i, v in enumerate(value):
                fmt, digest = store_value(cas, v, where=f"{where}[{i}]")
                items.append([i, fmt, digest])
        manifest = {
            "kind": type(value).__name__ if isinstance(value, tuple | list) else "dict",
            "items": items,
            "v": FORMAT_VERSION,
        }
        return "bundle", json.dumps(manifest, sort_keys=True).encode()
    raise StepOutputError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which loopline "
        "cannot store safely; return a DataFrame, Arrow table, numpy array, JSON value, "
        "bytes, scikit-learn estimator, or a dict/list of those"
    )


def _decode(cas: ContentStore, fmt: str, data: bytes) -> Any:
    if fmt == "bytes":
        return data
    if fmt == "json":
        return json.loads(data)
    if fmt.startswith("parquet-"):
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        if fmt == "parquet-arrow":
            return table.replace_schema_metadata(None) if table.schema.metadata else table
        if fmt == "parquet-polars":
            import polars as pl

            return pl.from_arrow(table)
        is_series = (table.schema.metadata or {}).get(b"loopline.series") == b"1"
        frame = table.to_pandas()
        return frame.iloc[:, 0] if is_series else frame
    if fmt == "npy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if fmt == "model":
        from loopline.registry.flavors import flavor_named

        manifest = json.loads(data)
        files = {name: cas.get(digest) for name, digest in manifest["files"].items()}
        return flavor_named(manifest["flavor"]).load(files, manifest["info"], "a step output")
    if fmt == "bundle":
        manifest = json.loads(data)
        values = [(k, load_value(cas, f, d)) for k, f, d in manifest["items"]]
        if manifest["kind"] == "dict":
            return dict(values)
        seq = [v for _, v in values]
        return tuple(seq) if manifest["kind"] == "tuple" else seq
    raise StepOutputError(
        f"Unknown stored value format {fmt!r}; was it written by a newer loopline?"
    )


def _kind(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    module = type(value).__module__
    name = type(value).__name__
    if module.startswith("pandas") and name in ("DataFrame", "Series"):
        return "pandas"
    if module.startswith("pyarrow") and name == "Table":
        return "arrow"
    if module.startswith("polars") and name == "DataFrame":
        return "polars"
    if module.startswith("numpy") and name == "ndarray":
        return "numpy"
    if module.split(".")[0] in ("sklearn", "xgboost", "lightgbm") and hasattr(value, "predict"):
        return "model"
    if module.split(".")[0] in ("sklearn",) and hasattr(value, "get_params"):
        return "model"  # transformers: scalers, encoders, column transformers
    if module == "loopline.registry.flavors" and hasattr(value, "predict"):
        return "model"
    return "other"


def _try_json(value: Any) -> str | None:
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_numpy_scalar
        )
    except (TypeError, ValueError):
        return None


def _numpy_scalar(value: Any) -> Any:
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return value.item()
    raise TypeError(type(value).__name__)


def _parquet(table: Any) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()
