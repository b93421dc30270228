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

from loopline.echo import echo_text
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


#: Most dimensions a tensor may have (numpy's limit is 32 or 64, by version).
MAX_DIMS = 32
#: Largest size of one dimension (so a shape with a 0 in it cannot ask for more).
_MAX_DIM = 2**62


def parse_infer(body: bytes, header_length: str | None) -> InferRequest:
    """Decode a ``POST .../infer`` body (JSON, or JSON header + binary tensors).

    Every field is checked for its type before it is used, so a malformed request is a
    400 that names the field (never a 500).
    """
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
    if rid is not None and not isinstance(rid, str):
        raise HTTPProblem(400, "bad_shape", f"id must be a string, not {echo_text(rid)}")
    params = _parameters(data.get("parameters"), "parameters")
    default_binary = _flag(params, "binary_data_output", "parameters", False)
    tensors: list[Tensor] = []
    seen: set[str] = set()
    offset = 0
    for i, spec in enumerate(inputs):
        if not isinstance(spec, dict):
            raise HTTPProblem(400, "bad_shape", f"inputs[{i}] must be an object")
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise HTTPProblem(
                400,
                "bad_shape",
                f"inputs[{i}].name must be a non-empty string, not {echo_text(name)}",
            )
        label = f"Input {echo_text(name)}"
        if name in seen:
            raise HTTPProblem(400, "bad_shape", f"{label} is given twice")
        seen.add(name)
        datatype = spec.get("datatype")
        if not isinstance(datatype, str) or datatype not in DTYPES:
            raise HTTPProblem(
                400,
                "bad_datatype",
                f"{label}: datatype {echo_text(datatype)} is not one of {', '.join(DTYPES)}",
            )
        shape = _shape(spec.get("shape"), label)
        count = 1
        for d in shape:
            count *= d
        tparams = _parameters(spec.get("parameters"), f"inputs[{i}].parameters")
        size = tparams.get("binary_data_size")
        if size is not None:
            if (
                not isinstance(size, int)
                or isinstance(size, bool)
                or size < 0
                or offset + size > len(binary)
            ):
                raise HTTPProblem(
                    400,
                    "bad_binary",
                    f"{label}: binary_data_size {echo_text(size)} does not fit the "
                    f"{len(binary) - offset} bytes left after the JSON header",
                )
            array = _from_binary(np, label, datatype, binary[offset : offset + size], count)
            offset += size
        else:
            array = _from_json(np, label, datatype, spec.get("data"), count)
        try:
            array = array.reshape(shape)
        except ValueError as exc:
            raise HTTPProblem(400, "bad_shape", f"{label}: shape {shape}: {exc}") from None
        tensors.append(Tensor(name, datatype, shape, array))
    if offset != len(binary):
        raise HTTPProblem(
            400,
            "bad_binary",
            f"{len(binary) - offset} bytes after the JSON header belong to no input "
            "(parameters.binary_data_size)",
        )
    wanted: dict[str, bool] = {}
    outputs = data.get("outputs")
    if outputs is not None and not isinstance(outputs, list):
        raise HTTPProblem(400, "bad_shape", "outputs must be a list of objects with a name")
    for j, out in enumerate(outputs or []):
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise HTTPProblem(400, "bad_shape", f"outputs[{j}] must be an object with a name")
        oparams = _parameters(out.get("parameters"), f"outputs[{j}].parameters")
        wanted[out["name"]] = _flag(
            oparams, "binary_data", f"outputs[{j}].parameters", default_binary
        )
    return InferRequest(id=rid, inputs=tensors, outputs=wanted, binary_default=default_binary)


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HTTPProblem(400, "bad_shape", f"{where} must be an object, not {echo_text(value)}")
    return value


def _flag(params: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise HTTPProblem(
            400, "bad_shape", f"{where}.{key} must be true or false, not {echo_text(value)}"
        )
    return value


def _shape(shape: Any, label: str) -> list[int]:
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= MAX_DIMS
        or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= _MAX_DIM for d in shape
        )
    ):
        raise HTTPProblem(
            400,
            "bad_shape",
            f"{label}: shape must be a list of 1 to {MAX_DIMS} sizes >= 0, not {echo_text(shape)}",
        )
    return shape


def _from_binary(np: Any, label: str, datatype: str, raw: bytes, count: int) -> Any:
    if datatype == "BYTES":
        items: list[str] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise HTTPProblem(400, "bad_binary", f"{label}: truncated BYTES element")
            (length,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            chunk = raw[pos : pos + length]
            if len(chunk) != length:
                raise HTTPProblem(400, "bad_binary", f"{label}: truncated BYTES element")
            try:
                items.append(chunk.decode("utf-8"))
            except UnicodeDecodeError:
                raise HTTPProblem(
                    400, "bad_binary", f"{label}: a BYTES element is not UTF-8"
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
                f"{label}: {len(raw)} bytes do not hold {count} {datatype} values",
            )
        arr = np.frombuffer(raw, dtype=dtype)
    if len(arr) != count:
        raise HTTPProblem(400, "bad_shape", f"{label}: {len(arr)} values do not fill its shape")
    return arr


def _from_json(np: Any, label: str, datatype: str, data: Any, count: int) -> Any:
    if not isinstance(data, list):
        raise HTTPProblem(400, "bad_shape", f"{label}: data must be a list")
    flat = _flatten(data)
    if len(flat) != count:
        raise HTTPProblem(
            400,
            "bad_shape",
            f"{label}: {len(flat)} values do not fill its shape ({count} needed)",
        )
    for v in flat:
        if not _accepts(datatype, v):
            raise HTTPProblem(
                400,
                "bad_datatype",
                f"{label}: value {echo_text(v)} is not of datatype {datatype}",
            )
    if datatype == "BYTES":
        arr = np.empty(count, dtype=object)
        arr[:] = flat
        return arr
    dtype = np.dtype(DTYPES[datatype])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        for v in flat:
            if not info.min <= v <= info.max:
                raise HTTPProblem(
                    400,
                    "bad_datatype",
                    f"{label}: value {echo_text(v)} does not fit {datatype} "
                    f"({info.min} to {info.max})",
                )
    elif dtype.kind == "f" and datatype != "FP64":
        limit = float(np.finfo(dtype).max)
        for v in flat:
            if abs(v) > limit:
                raise HTTPProblem(
                    400,
                    "bad_datatype",
                    f"{label}: value {echo_text(v)} does not fit {datatype} (at most {limit:g})",
                )
    try:
        return np.array(flat, dtype=dtype)
    except (OverflowError, ValueError, TypeError) as exc:
        raise HTTPProblem(
            400, "bad_datatype", f"{label}: values do not fit {datatype} ({exc})"
        ) from None


def _accepts(datatype: str, value: Any) -> bool:
    """Whether a JSON value can be an element of a ``datatype`` tensor."""
    if datatype == "BYTES":
        return value is None or isinstance(value, str)  # null: a missing value
    if datatype == "BOOL":
        return type(value) is bool
    if datatype.startswith(("INT", "UINT")):
        # An integer, or a number with nothing after the point (3.0): never truncated.
        return type(value) is int or (type(value) is float and value.is_integer())
    return type(value) in (int, float)


def _flatten(data: list[Any]) -> list[Any]:
    """The values of nested lists in row-major order (iteratively: any depth)."""
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    stack: list[Any] = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
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
                f"Input {echo_text(tensor.name)}: shape {tensor.shape} is not [N] or [N, 1] (one "
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
            f"Unknown output {echo_text(unknown[0])}; this model has predict"
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
