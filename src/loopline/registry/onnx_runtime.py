"""ONNX inference: the onnxruntime path a server (or batch job) serves a package with.

:class:`OnnxModel` wraps an ``onnxruntime.InferenceSession`` with the same
``predict``/``predict_proba`` as the native model, over one named ``[None, 1]`` input per
signature column. Export (skl2onnx, at registration) is in :mod:`loopline.registry.onnx_export`,
which nothing on the serving path imports: a server needs onnxruntime, never the converter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loopline.registry.signature import ColumnSpec

ONNX_FILE = "model.onnx"
DEFAULT_TOLERANCE = 1e-5
#: Parity is checked on at most this many evaluation rows.
MAX_PARITY_ROWS = 10_000

#: Where the exporter lives, imported by name only when a model is registered with ONNX
#: (like the CLI's commands and the object stores' backends), so that importing the
#: registry never reaches skl2onnx.
EXPORTER = "loopline.registry.onnx_export:export_onnx"


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
        self.session = ort.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs: list[dict[str, str]] = [dict(i) for i in info.get("inputs", [])]
        self.output_names: list[str] = [o.name for o in self.session.get_outputs()]
        self.classes_ = None if classes is None else np.asarray(classes)

    def feeds(self, X: Any) -> dict[str, Any]:
        """The input tensors for the rows of DataFrame ``X``."""
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
            out[spec["name"]] = arr.reshape(-1, 1)
        return out

    def run(self, X: Any) -> list[Any]:
        result: list[Any] = self.session.run(None, self.feeds(X))
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
