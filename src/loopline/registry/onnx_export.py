"""ONNX export of scikit-learn models at registration, with a parity check.

Export (:func:`export_onnx`) converts with skl2onnx using one named input per signature
column (``[None, 1]`` tensors: ``float`` for numbers and booleans, ``string`` for strings
and categories), which lets a ``ColumnTransformer`` pick its columns by name over mixed
dtypes. Column names that are not valid ONNX names (spaces, slashes) become the names
skl2onnx gives their graph inputs, recorded in ``input_names``. The converted model is
then checked against the original on evaluation rows: the largest difference of the class
probabilities (of the predictions, for regressors), relative to the scale of the outputs
and compared in float32 (the precision the converted graph computes in), must be within
the tolerance, else the ONNX file is not kept and the manifest says why. A conversion
that fails for any reason is likewise recorded, never raised: ONNX is an optional fast
path.

Only registration imports this module (by name, see ``onnx_runtime.EXPORTER``); the
serving path runs the kept file with :class:`~loopline.registry.onnx_runtime.OnnxModel`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loopline.registry.onnx_runtime import (
    DEFAULT_TOLERANCE,
    MAX_PARITY_ROWS,
    ONNX_FILE,
    OnnxModel,
    onnx_input_type,
)
from loopline.registry.signature import Signature


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
    graph_inputs = [i.name for i in onx.graph.input]
    if len(graph_inputs) != len(inputs):
        info["reason"] = (
            f"the converted model has {len(graph_inputs)} inputs for {len(inputs)} columns"
        )
        return None, info
    renamed = {i["name"]: g for i, g in zip(inputs, graph_inputs, strict=True) if i["name"] != g}
    if renamed:
        info["input_names"] = renamed

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
        diff, scale = _max_abs_diff(expected, got)
    except Exception as exc:  # a model that converts but cannot run is not kept either
        info["reason"] = f"the converted model failed to run: {_one_line(exc)}"
        return None, info
    info["outputs"] = runner.output_names
    relative = None if diff is None else diff / scale
    info["parity"] = {
        "compared": compared,
        "max_abs_diff": diff,
        "scale": scale,
        "relative_diff": relative,
        "rows_checked": len(rows),
    }
    if relative is None or relative > tolerance:
        shown = "NaN" if relative is None else f"{relative:.3g}"
        info["reason"] = (
            f"parity check failed: {compared} differ by {shown} of their scale "
            f"({scale:.3g}) > tolerance {tolerance:g} on {len(rows)} rows"
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


def _max_abs_diff(expected: Any, got: Any) -> tuple[float | None, float]:
    """The largest absolute difference of two outputs, both rounded to float32 first, and
    the scale of the outputs (their largest absolute value, at least 1). The difference is
    None when the shapes differ or a value is not finite."""
    import numpy as np

    a = np.asarray(expected, dtype=np.float32).astype(np.float64).reshape(len(expected), -1)
    b = np.asarray(got, dtype=np.float32).astype(np.float64).reshape(len(got), -1)
    if a.shape != b.shape:
        return None, 1.0
    if not len(a):
        return 0.0, 1.0
    scale = float(max(1.0, np.max(np.abs(a)))) if np.isfinite(a).all() else 1.0
    diff = float(np.max(np.abs(a - b)))
    return (diff if np.isfinite(diff) else None), scale


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:500]
