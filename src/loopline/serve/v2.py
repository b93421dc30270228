"""The Open Inference Protocol (KServe V2) over HTTP: tensors in, tensors out.

Each signature column is one input tensor of shape ``[N]`` or ``[N, 1]``; a single tensor
of shape ``[N, columns]`` whose name is not a column is also accepted (its columns in the
signature's order). Outputs are ``predict`` (labels or values, ``[N]``) and, for
classifiers, ``predict_proba`` (``[N, classes]``).

Tensor data comes as JSON (``data``, flat or nested row-major) or in the binary tensor
data extension that Triton's clients use by default: the JSON header's length in the
``Inference-Header-Content-Length`` header, then each input's raw little-endian bytes
(``parameters.binary_data_size``); strings (``BYTES``) as 4-byte length + UTF-8. Answers
use binary outputs when the request asks for them (``binary_data_output`` or an output's
``binary_data``).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from loopline.serve.bodies import HTTPProblem, parse_json

if TYPE_CHECKING:
    from loopline.registry.signature import Signature

HEADER_LENGTH = "inference-header-content-length"

#: V2 datatype -> numpy dtype string (BYTES is an object array of str).
DTYPES = {
    "BOOL": "bool",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BYTES": "object",
}
_KIND_DATATYPE = {
    "integer": "INT64",
    "float": "FP64",
    "boolean": "BOOL",
    "string": "BYTES",
    "category": "BYTES",
    "datetime": "BYTES",
    "object": "BYTES",
}


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    array: Any


@dataclass
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    #: Requested outputs: name -> binary?; empty means all outputs.
    outputs: dict[str, bool] = field(default_factory=dict)
    binary_default: bool = False


def column_datatype(kind: str) -> str:
    return _KIND_DATATYPE.get(kind, "BYTES")


def label_datatype(dtype: str | None) -> str:
    text = (dtype or "").lower()
    if text.startswith(("int", "uint")):
        return "INT64"
    if text.startswith("float"):
        return "FP64"
    if text == "bool":
        return "BOOL"
    return "BYTES"


def parse_infer(body: bytes, header_length: str | None) -> InferRequest:
    """Decode a ``POST .../infer`` body (JSON, or JSON header + binary tensors)."""
    import numpy as np

    binary = b""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise HTTPProblem(
                400, "bad_request", "Inference-Header-Content-Length is not a number"
            ) from None
        if n < 0 or n > len(body):
            raise HTTPProblem(
                400,
                "bad_request",
                f"Inference-Header-Content-Length {n} is outside the body ({len(body)} bytes)",
            )
        body, binary = body[:n], body[n:]
    data = parse_json(body)
    if not isinstance(data, dict):
        raise HTTPProblem(400, "bad_shape", "An inference request must be a JSON object")
    inputs = data.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise HTTPProblem(400, "bad_shape", "inputs must be a non-empty list of tensors")
    rid = data.get("id")
    params = data.get("parameters") or {}
    if not isinstance(params, dict):
        raise HTTPProblem(400, "bad_shape", "parameters must be an object")
    tensors: list[Tensor] = []
    offset = 0
    for i, spec in enumerate(inputs):
        if not isinstance(spec, dict):
            raise HTTPProblem(400, "bad_shape", f"inputs[{i}] must be an object")
        name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
        if not isinstance(name, str) or not name:
            raise HTTPProblem(400, "bad_shape", f"inputs[{i}].name must be a string")
        if datatype not in DTYPES:
            raise HTTPProblem(
                400,
                "bad_datatype",
                f"Input {name!r}: datatype {datatype!r} is not one of {', '.join(DTYPES)}",
            )
        if (
            not isinstance(shape, list)
            or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise HTTPProblem(
                400, "bad_shape", f"Input {name!r}: shape must be a list of sizes >= 0"
            )
        count = 1
        for d in shape:
            count *= d
        tparams = spec.get("parameters") or {}
        size = tparams.get("binary_data_size") if isinstance(tparams, dict) else None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise HTTPProblem(
                    400,
                    "bad_binary",
                    f"Input {name!r}: binary_data_size {size!r} does not fit the "
                    f"{len(binary) - offset} bytes left after the JSON header",
                )
            array = _from_binary(np, name, datatype, binary[offset : offset + size], count)
            offset += size
        else:
            array = _from_json(np, name, datatype, spec.get("data"), count)
        tensors.append(Tensor(name, datatype, shape, array.reshape(shape)))
    wanted: dict[str, bool] = {}
    default_binary = bool(params.get("binary_data_output", False))
    for j, out in enumerate(data.get("outputs") or []):
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise HTTPProblem(400, "bad_shape", f"outputs[{j}] must be an object with a name")
        oparams = out.get("parameters") or {}
        flag = oparams.get("binary_data", default_binary) if isinstance(oparams, dict) else False
        wanted[out["name"]] = bool(flag)
    return InferRequest(
        id=rid if isinstance(rid, str) else None,
        inputs=tensors,
        outputs=wanted,
        binary_default=default_binary,
    )


def _from_binary(np: Any, name: str, datatype: str, raw: bytes, count: int) -> Any:
    if datatype == "BYTES":
        items: list[str] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise HTTPProblem(400, "bad_binary", f"Input {name!r}: truncated BYTES element")
            (length,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            chunk = raw[pos : pos + length]
            if len(chunk) != length:
                raise HTTPProblem(400, "bad_binary", f"Input {name!r}: truncated BYTES element")
            try:
                items.append(chunk.decode("utf-8"))
            except UnicodeDecodeError:
                raise HTTPProblem(
                    400, "bad_binary", f"Input {name!r}: a BYTES element is not UTF-8"
                ) from None
            pos += length
        arr = np.empty(len(items), dtype=object)
        arr[:] = items
    else:
        dtype = np.dtype(DTYPES[datatype])
        if len(raw) != count * dtype.itemsize:
            raise HTTPProblem(
                400,
                "bad_binary",
                f"Input {name!r}: {len(raw)} bytes do not hold {count} {datatype} values",
            )
        arr = np.frombuffer(raw, dtype=dtype)
    if len(arr) != count:
        raise HTTPProblem(
            400, "bad_shape", f"Input {name!r}: {len(arr)} values do not fill its shape"
        )
    return arr


def _from_json(np: Any, name: str, datatype: str, data: Any, count: int) -> Any:
    if not isinstance(data, list):
        raise HTTPProblem(400, "bad_shape", f"Input {name!r}: data must be a list")
    flat = _flatten(data)
    if len(flat) != count:
        raise HTTPProblem(
            400,
            "bad_shape",
            f"Input {name!r}: {len(flat)} values do not fill its shape ({count} needed)",
        )
    if datatype == "BYTES":
        arr = np.empty(count, dtype=object)
        arr[:] = flat
        return arr
    allowed: tuple[type, ...] = (bool,) if datatype == "BOOL" else (int, float)
    for v in flat:
        if type(v) not in allowed:
            raise HTTPProblem(
                400,
                "bad_datatype",
                f"Input {name!r}: value {v!r} is not of datatype {datatype}",
            )
    try:
        return np.array(flat, dtype=np.dtype(DTYPES[datatype]))
    except (OverflowError, ValueError) as exc:
        raise HTTPProblem(
            400, "bad_datatype", f"Input {name!r}: values do not fit {datatype} ({exc})"
        ) from None


def _flatten(data: list[Any]) -> list[Any]:
    if not data or not isinstance(data[0], list):
        return data
    out: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def to_columns(request: InferRequest, signature: Signature) -> dict[str, Any]:
    """Input tensors as named 1-D columns (a ``[N, columns]`` tensor split by position)."""
    names = signature.columns
    if len(request.inputs) == 1 and request.inputs[0].name not in names:
        tensor = request.inputs[0]
        arr = tensor.array
        if arr.ndim == 2 and arr.shape[1] == len(names):
            return {name: arr[:, j] for j, name in enumerate(names)}
        if arr.ndim == 1 and len(names) == 1:
            return {names[0]: arr}
    out: dict[str, Any] = {}
    for tensor in request.inputs:
        arr = tensor.array
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise HTTPProblem(
                400,
                "bad_shape",
                f"Input {tensor.name!r}: shape {tensor.shape} is not [N] or [N, 1] (one "
                f"tensor per column), nor [N, {len(names)}] (all columns)",
            )
        out[tensor.name] = arr
    return out


def output_tensors(
    predictions: Any,
    probabilities: Any | None,
    label_type: str,
    wanted: Mapping[str, bool],
) -> list[Tensor]:
    import numpy as np

    outs: list[Tensor] = []
    if not wanted or "predict" in wanted:
        arr = np.asarray(predictions)
        if label_type == "BYTES":
            arr = np.array([str(v) for v in arr.tolist()], dtype=object)
        outs.append(Tensor("predict", label_type, [len(arr)], arr))
    if probabilities is not None and (not wanted or "predict_proba" in wanted):
        proba = np.asarray(probabilities, dtype=np.float64)
        outs.append(Tensor("predict_proba", "FP64", list(proba.shape), proba))
    unknown = [n for n in wanted if n not in ("predict", "predict_proba")] if wanted else []
    if unknown:
        raise HTTPProblem(
            400,
            "unknown_output",
            f"Unknown output {unknown[0]!r}; this model has predict"
            + (" and predict_proba" if probabilities is not None else ""),
        )
    return outs


def encode_response(
    header: dict[str, Any],
    tensors: Sequence[Tensor],
    wanted: Mapping[str, bool],
    binary_default: bool,
) -> tuple[bytes, dict[str, str]]:
    """The response body and extra headers (binary outputs where asked for)."""
    import numpy as np
    import orjson

    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for t in tensors:
        binary = wanted.get(t.name, binary_default)
        entry: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": t.shape}
        if binary:
            raw = _to_binary(np, t)
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = t.array.ravel().tolist()
        outputs.append(entry)
    head = orjson.dumps({**header, "outputs": outputs})
    if not blobs:
        return head, {"content-type": "application/json"}
    return head + b"".join(blobs), {
        "content-type": "application/octet-stream",
        "inference-header-content-length": str(len(head)),
    }


def _to_binary(np: Any, t: Tensor) -> bytes:
    if t.datatype == "BYTES":
        parts = []
        for v in t.array.ravel().tolist():
            raw = str(v).encode("utf-8")
            parts.append(struct.pack("<I", len(raw)) + raw)
        return b"".join(parts)
    arr = np.ascontiguousarray(t.array, dtype=np.dtype(DTYPES[t.datatype]))
    data: bytes = arr.tobytes()
    return data


def model_metadata(
    name: str, versions: Sequence[int], signature: Signature, platform: str
) -> dict[str, Any]:
    inputs = [
        {"name": c.name, "datatype": column_datatype(c.kind), "shape": [-1, 1]}
        for c in signature.inputs
    ]
    out = signature.output
    outputs: list[dict[str, Any]] = [
        {
            "name": "predict",
            "datatype": label_datatype(out.dtype) if out.kind == "classifier" else "FP64",
            "shape": [-1],
        }
    ]
    if out.kind == "classifier" and out.classes is not None:
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(out.classes)]}
        )
    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": platform,
        "inputs": inputs,
        "outputs": outputs,
    }
