"""ONNX inference: the onnxruntime path a server (or batch job) serves a package with.

:class:`OnnxModel` wraps an ``onnxruntime.InferenceSession`` with the same
``predict``/``predict_proba`` as the native model, over one named ``[None, 1]`` input per
signature column. Export (skl2onnx, at registration) is in :mod:`loopline.registry.onnx_export`,
which nothing on the serving path imports: a server needs onnxruntime, never the converter.

A graph input is named like its column unless the column's name is not a valid ONNX name
(``"mean radius"``, ``"od280/od315"``): the manifest's ``onnx.input_names`` maps such
columns to their graph inputs. Packages without the mapping (exported before it existed)
use the column names as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loopline.registry.signature import ColumnSpec

ONNX_FILE = "model.onnx"
#: Parity tolerance, relative to the scale of the outputs (the largest absolute value, at
#: least 1): probabilities compare to within 1e-5, regression outputs in the hundreds to
#: within 1e-5 of their magnitude (float32 keeps about 7 digits).
DEFAULT_TOLERANCE = 1e-5
#: Parity is checked on at most this many evaluation rows.
MAX_PARITY_ROWS = 10_000

#: Where the exporter lives, imported by name only when a model is registered with ONNX
#: (like the CLI's commands and the object stores' backends), so that importing the
#: registry never reaches skl2onnx.
EXPORTER = "loopline.registry.onnx_export:export_onnx"


def serving_path(info: Mapping[str, Any] | None) -> str:
    """How a package with the manifest section ``info`` (``Manifest.onnx``) is served, and
    why not with ONNX when it is not, as one line for the terminal."""
    if info is not None and info.get("status") == "kept":
        parity = info.get("parity") or {}
        rows = parity.get("rows_checked")
        diff = parity.get("relative_diff", parity.get("max_abs_diff"))
        shown = f", parity {diff:.2g} on {rows} rows" if diff is not None and rows else ""
        return f"serves with ONNX Runtime{shown}"
    reason = (info or {}).get("reason") or "the package has no ONNX export"
    return f"serves with the native model ({reason})"


def input_names(info: Mapping[str, Any]) -> dict[str, str]:
    """Column name -> graph input name of a manifest's ``onnx`` section (identity for the
    columns the mapping does not name, and for packages exported before it existed)."""
    mapping = info.get("input_names") or {}
    return {str(i["name"]): str(mapping.get(i["name"], i["name"])) for i in info.get("inputs", [])}


def onnx_input_type(spec: ColumnSpec) -> str | None:
    """The ONNX tensor element type for a column, or None when it has none."""
    # Integers go in as floats too: preprocessing (imputers, scalers) computes in floats,
    # and skl2onnx refuses a ColumnTransformer that mixes int64 and float inputs.
    if spec.kind in ("integer", "float", "boolean"):
        return "float"
    if spec.kind in ("string", "category"):
        return "string"
    return None


class OnnxModel:
    """An ONNX model run by onnxruntime, with ``predict`` and ``predict_proba``.

    ``X`` must be a DataFrame with the signature's columns (see ``LoadedModel.prepare``).
    ``intra_op_num_threads`` bounds the threads one call uses (a server with several
    workers usually wants 1).
    """

    def __init__(
        self,
        data: bytes,
        info: Mapping[str, Any],
        *,
        classes: Sequence[Any] | None = None,
        intra_op_num_threads: int | None = None,
    ) -> None:
        import numpy as np
        import onnxruntime as ort

        options = ort.SessionOptions()
        if intra_op_num_threads is not None:
            options.intra_op_num_threads = intra_op_num_threads
        raw = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        #: Column name -> graph input name.
        self.input_names = input_names(info)
        #: The session, fed by column name (see :class:`_ColumnFeeds`).
        self.session: Any = (
            raw
            if all(k == v for k, v in self.input_names.items())
            else _ColumnFeeds(raw, self.input_names)
        )
        self._raw = raw
        #: One entry per signature column: ``name`` (the column) and ``type``.
        self.inputs: list[dict[str, str]] = [dict(i) for i in info.get("inputs", [])]
        self.output_names: list[str] = [o.name for o in raw.get_outputs()]
        self.classes_ = None if classes is None else np.asarray(classes)

    def feeds(self, X: Any) -> dict[str, Any]:
        """The input tensors for the rows of DataFrame ``X``, keyed by graph input name."""
        import numpy as np

        out: dict[str, Any] = {}
        for spec in self.inputs:
            col = X[spec["name"]]
            if spec["type"] == "string":
                values = col.astype(object).where(col.notna(), "").to_numpy()
                arr = np.asarray([str(v) for v in values], dtype=object)
            elif spec["type"] == "int64":
                arr = col.to_numpy(dtype=np.int64)
            else:
                arr = col.to_numpy(dtype=np.float32, na_value=np.nan)
            out[self.input_names.get(spec["name"], spec["name"])] = arr.reshape(-1, 1)
        return out

    def run(self, X: Any) -> list[Any]:
        result: list[Any] = self._raw.run(None, self.feeds(X))
        return result

    def predict(self, X: Any) -> Any:
        import numpy as np

        return np.asarray(self.run(X)[0]).ravel()

    def predict_proba(self, X: Any) -> Any:
        import numpy as np

        outputs = self.run(X)
        if len(outputs) < 2:
            raise AttributeError("this ONNX model has no probability output")
        return np.asarray(outputs[1])


def column_feeds(inputs: Sequence[tuple[str, str]], columns: Mapping[str, Any]) -> dict[str, Any]:
    """The input tensors (one ``(rows, 1)`` array each, keyed by column name) for the
    numpy ``columns`` of a request or a chunk: ``inputs`` are (column, type) pairs of the
    graph (``float``, ``int64``, ``string``); a missing float is NaN, a missing text ""."""
    import numpy as np

    out: dict[str, Any] = {}
    for name, kind in inputs:
        arr = columns[name]
        if kind == "float":
            if arr.dtype.kind == "O":
                arr = np.array([np.nan if v is None else float(v) for v in arr.tolist()])
            tensor = arr.astype(np.float32)
        elif kind == "int64":
            tensor = arr.astype(np.int64)
        else:
            tensor = np.array(["" if v is None else str(v) for v in arr.tolist()], dtype=object)
        out[name] = tensor.reshape(-1, 1)
    return out


class _ColumnFeeds:
    """An ``InferenceSession`` that takes its feeds keyed by column name, for callers that
    build tensors per signature column (the server's batch path): ``run`` renames them to
    the graph's input names."""

    def __init__(self, session: Any, names: Mapping[str, str]) -> None:
        self._session = session
        self._names = dict(names)

    def run(self, output_names: Any, feeds: Mapping[str, Any], *args: Any) -> Any:
        renamed = {self._names.get(k, k): v for k, v in feeds.items()}
        return self._session.run(output_names, renamed, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)
