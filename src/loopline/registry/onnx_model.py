"""ONNX: export of scikit-learn models at registration, and the onnxruntime inference path.

Export (:func:`export_onnx`) converts with skl2onnx using one named input per signature
column (``[None, 1]`` tensors: ``float`` for numbers and booleans, ``string`` for strings
and categories), which lets a
``ColumnTransformer`` pick its columns by name over mixed dtypes. The converted model is
then checked against the original on evaluation rows: the largest absolute difference of
the class probabilities (of the predictions, for regressors) must be within the tolerance,
else the ONNX file is not kept and the manifest says why. A conversion that fails for any
reason is likewise recorded, never raised: ONNX is an optional fast path.

At serving time :class:`OnnxModel` wraps an ``onnxruntime.InferenceSession`` with the
same ``predict``/``predict_proba`` as the native model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loopline.registry.signature import ColumnSpec, Signature

ONNX_FILE = "model.onnx"
DEFAULT_TOLERANCE = 1e-5
#: Parity is checked on at most this many evaluation rows.
MAX_PARITY_ROWS = 10_000


def onnx_input_type(spec: ColumnSpec) -> str | None:
    """The ONNX tensor element type for a column, or None when it has none."""
    # Integers go in as floats too: preprocessing (imputers, scalers) computes in floats,
    # and skl2onnx refuses a ColumnTransformer that mixes int64 and float inputs.
    if spec.kind in ("integer", "float", "boolean"):
        return "float"
    if spec.kind in ("string", "category"):
        return "string"
    return None


def export_onnx(
    model: Any,
    signature: Signature,
    eval_rows: Any,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[bytes | None, dict[str, Any]]:
    """Convert ``model`` and check parity on ``eval_rows``; return (file or None, info).

    ``info`` is the manifest's ``onnx`` section: ``status`` is ``kept`` or ``omitted``,
    ``reason`` says why when omitted.
    """
    info: dict[str, Any] = {"status": "omitted", "reason": None, "tolerance": tolerance}
    inputs: list[dict[str, str]] = []
    for spec in signature.inputs:
        kind = onnx_input_type(spec)
        if kind is None:
            info["reason"] = f"column {spec.name!r} of kind {spec.kind} has no ONNX input type"
            return None, info
        inputs.append({"name": spec.name, "type": kind})
    info["inputs"] = inputs
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import (
            FloatTensorType,
            Int64TensorType,
            StringTensorType,
        )
    except ImportError:
        info["reason"] = "skl2onnx is not installed (pip install skl2onnx)"
        return None, info
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        info["reason"] = "onnxruntime is not installed (pip install onnxruntime)"
        return None, info

    tensor = {"int64": Int64TensorType, "float": FloatTensorType, "string": StringTensorType}
    initial_types = [(i["name"], tensor[i["type"]]([None, 1])) for i in inputs]
    classifier = signature.output.kind == "classifier"
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    options = {id(final): {"zipmap": False}} if classifier else None
    try:
        onx = convert_sklearn(
            _with_named_inputs(model, inputs, eval_rows),
            initial_types=initial_types,
            options=options,
        )
        data: bytes = onx.SerializeToString()
    except Exception as exc:  # any converter failure means "no ONNX", never a failed register
        info["reason"] = f"conversion failed: {_one_line(exc)}"
        return None, info
    info["opset"] = {(op.domain or "ai.onnx"): int(op.version) for op in onx.opset_import}

    rows = eval_rows.iloc[:MAX_PARITY_ROWS]
    try:
        runner = OnnxModel(data, info, classes=signature.output.classes)
        if classifier:
            expected = model.predict_proba(rows)
            got = runner.predict_proba(rows)
            compared = "probabilities"
        else:
            expected = model.predict(rows)
            got = runner.predict(rows)
            compared = "predictions"
        diff = _max_abs_diff(expected, got)
    except Exception as exc:  # a model that converts but cannot run is not kept either
        info["reason"] = f"the converted model failed to run: {_one_line(exc)}"
        return None, info
    info["outputs"] = runner.output_names
    info["parity"] = {"compared": compared, "max_abs_diff": diff, "rows_checked": len(rows)}
    if diff is None or diff > tolerance:
        shown = "NaN" if diff is None else f"{diff:.3g}"
        info["reason"] = (
            f"parity check failed: max abs diff of {compared} {shown} > tolerance "
            f"{tolerance:g} on {len(rows)} rows"
        )
        return None, info
    info["status"] = "kept"
    info["file"] = ONNX_FILE
    return data, info


def _with_named_inputs(model: Any, inputs: Sequence[Mapping[str, str]], rows: Any) -> Any:
    """A bare estimator reads one matrix; the ONNX graph has one input per column. Put a
    passthrough ``ColumnTransformer`` in front (for conversion only) to join them."""
    if hasattr(model, "steps") or type(model).__name__ == "ColumnTransformer":
        return model
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    names = [i["name"] for i in inputs]
    columns = ColumnTransformer([("columns", "passthrough", names)]).fit(rows.iloc[:10])
    return Pipeline([("columns", columns), ("model", model)])


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


def _max_abs_diff(expected: Any, got: Any) -> float | None:
    import numpy as np

    a = np.asarray(expected, dtype=np.float64).reshape(len(expected), -1)
    b = np.asarray(got, dtype=np.float64).reshape(len(got), -1)
    if a.shape != b.shape:
        return None
    if not len(a):
        return 0.0
    diff = float(np.max(np.abs(a - b)))
    return diff if np.isfinite(diff) else None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:500]
