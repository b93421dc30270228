"""The server's OpenAPI 3 document, built from the served model's signature, and ``/docs``.

The request schemas describe the real input: one property per signature column with its
JSON type, nullability and categories, so generated clients (and schemathesis) send
rows the model accepts. ``/docs`` is a self-contained HTML page (no JavaScript from
elsewhere): it works on a machine without internet access.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopline.registry.signature import ColumnSpec, Signature

_JSON_TYPE = {
    "integer": {"type": "integer"},
    "float": {"type": "number"},
    "boolean": {"type": "boolean"},
    "string": {"type": "string"},
    "datetime": {"type": "string", "format": "date-time"},
}


def _column_schema(spec: ColumnSpec) -> dict[str, Any]:
    schema: dict[str, Any] = dict(_JSON_TYPE.get(spec.kind, {}))
    if spec.categories is not None and spec.kind in ("string", "category"):
        schema["enum"] = list(spec.categories)
    if spec.nullable:
        schema["nullable"] = True
    return schema


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi_schema(
    signature: Signature | None, *, model: str, version: int | None, auth: bool
) -> dict[str, Any]:
    """The OpenAPI document for the model as currently served."""
    columns = [] if signature is None else list(signature.inputs)
    record = {
        "type": "object",
        "properties": {c.name: _column_schema(c) for c in columns},
        "required": [c.name for c in columns],
        "additionalProperties": False,
    }
    column_lists = {
        "type": "object",
        "properties": {
            c.name: {"type": "array", "items": _column_schema(c), "minItems": 1} for c in columns
        },
        "required": [c.name for c in columns],
        "additionalProperties": False,
    }
    errors = {
        "400": _error("Malformed body (JSON, CSV or Parquet that does not parse, bad shape)"),
        "413": _error("The body is larger than max_body_bytes"),
        "415": _error("A content type this route does not accept"),
        "422": _error("Rows that do not match the signature: each problem listed"),
        "503": _error("The model is not loaded yet"),
    }
    if auth:
        errors["401"] = _error("No API key, or an unknown or revoked one")
        errors["403"] = _error("The key's role does not allow this route")
    security: list[dict[str, list[str]]] = [{"bearer": []}] if auth else []

    def op(
        summary: str,
        body: dict[str, Any] | None,
        ok: dict[str, Any],
        *,
        secure: bool = True,
        errs: bool = True,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": summary, "responses": {"200": ok}}
        if body is not None:
            out["requestBody"] = {"required": True, "content": body}
        if errs:
            out["responses"].update(errors)
        if secure and security:
            out["security"] = security
        return out

    def json_ok(ref: str, description: str = "OK") -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
        }

    plain_ok = {
        "description": "OK",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
    predict_body = {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Record"},
                        "minItems": 1,
                    },
                    {"$ref": "#/components/schemas/Record"},
                    {"$ref": "#/components/schemas/Columns"},
                ]
            }
        },
        "text/csv": {"schema": {"type": "string"}},
    }
    invocations_body = {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {
                            "dataframe_split": {
                                "type": "object",
                                "properties": {
                                    "columns": {"type": "array", "items": {"type": "string"}},
                                    "data": {
                                        "type": "array",
                                        "items": {"type": "array", "items": {}},
                                    },
                                },
                                "required": ["data"],
                            },
                            "params": {"type": "object"},
                        },
                        "required": ["dataframe_split"],
                    },
                    {
                        "type": "object",
                        "properties": {
                            "dataframe_records": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Record"},
                            },
                            "params": {"type": "object"},
                        },
                        "required": ["dataframe_records"],
                    },
                    {
                        "type": "object",
                        "properties": {"inputs": {"$ref": "#/components/schemas/Columns"}},
                        "required": ["inputs"],
                    },
                    {
                        "type": "object",
                        "properties": {
                            "instances": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/Record"},
                            }
                        },
                        "required": ["instances"],
                    },
                ]
            }
        },
        "text/csv": {"schema": {"type": "string"}},
    }
    tensor: dict[str, Any] = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "enum": [c.name for c in columns] or None},
            "datatype": {"type": "string", "enum": ["BOOL", "INT64", "FP32", "FP64", "BYTES"]},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "data": {"type": "array", "items": {}},
        },
        "required": ["name", "datatype", "shape", "data"],
    }
    if not columns:
        tensor["properties"]["name"] = {"type": "string"}
    infer_body = {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "inputs": {"type": "array", "items": tensor, "minItems": 1},
                    "outputs": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    },
                },
                "required": ["inputs"],
            }
        }
    }
    feedback_item = {
        "type": "object",
        "properties": {
            "request_id": {"type": "string", "minLength": 1, "maxLength": 64},
            "row": {"type": "integer", "minimum": 0},
            "label": {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]},
        },
        "required": ["request_id", "label"],
    }
    feedback_body = {
        "application/json": {
            "schema": {"oneOf": [feedback_item, {"type": "array", "items": feedback_item}]}
        }
    }
    name_param = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    version_params = [
        *name_param,
        {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}},
    ]
    health = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
    paths: dict[str, Any] = {
        "/predict": {
            "post": op(
                "Predict rows (JSON records or columns, CSV, Parquet)",
                predict_body,
                json_ok("PredictResponse"),
            )
        },
        "/invocations": {
            "post": op("MLflow scoring protocol", invocations_body, json_ok("MLflowResponse"))
        },
        "/feedback": {"post": op("Ground truth for earlier requests", feedback_body, plain_ok)},
        "/health/live": {"get": op("The process answers", None, health, secure=False, errs=False)},
        "/health/ready": {
            "get": {
                "summary": "The model is loaded (503 until then)",
                "responses": {"200": health, "503": health},
            }
        },
        "/v2/health/live": {"get": op("V2: live", None, health, secure=False, errs=False)},
        "/v2/health/ready": {
            "get": {"summary": "V2: ready", "responses": {"200": health, "503": health}}
        },
        "/v2": {"get": op("V2: server metadata", None, plain_ok, errs=False)},
        "/v2/models/{name}": {
            "get": {
                **op("V2: model metadata", None, plain_ok, errs=False),
                "parameters": name_param,
                "responses": {"200": plain_ok, "404": _error("No model of that name")},
            }
        },
        "/v2/models/{name}/ready": {
            "get": {
                **op("V2: model ready", None, plain_ok, errs=False),
                "parameters": name_param,
                "responses": {"200": plain_ok, "404": _error("Not served or not ready")},
            }
        },
        "/v2/models/{name}/infer": {
            "post": {**op("V2: inference", infer_body, plain_ok), "parameters": name_param}
        },
        "/v2/models/{name}/versions/{version}/infer": {
            "post": {
                **op("V2: inference on a version", infer_body, plain_ok),
                "parameters": version_params,
            }
        },
        "/metrics": {
            "get": {
                **op("Prometheus metrics", None, {"description": "Text exposition"}, errs=False),
            }
        },
        "/admin/status": {"get": op("What is served, queues, the log", None, plain_ok, errs=False)},
        "/admin/reload": {
            "post": op(
                "Re-read the alias, the traffic split and keys now", None, plain_ok, errs=False
            )
        },
    }
    if auth:
        for route in (
            "/metrics",
            "/admin/status",
            "/admin/reload",
            "/v2",
            "/v2/models/{name}",
            "/v2/models/{name}/ready",
        ):
            for method in paths[route].values():
                method["responses"]["401"] = errors["401"]
                method["responses"]["403"] = errors["403"]
    components: dict[str, Any] = {
        "schemas": {
            "Record": record,
            "Columns": column_lists,
            "PredictResponse": {
                "type": "object",
                "properties": {
                    "request_id": {"type": "string"},
                    "model": {"type": "string"},
                    "version": {"type": "integer"},
                    "role": {"type": "string"},
                    "predictions": {"type": "array", "items": {}},
                    "probabilities": {
                        "type": "array",
                        "items": {"type": "array", "items": {"type": "number"}},
                    },
                    "classes": {"type": "array", "items": {}},
                },
                "required": ["request_id", "model", "version", "predictions"],
            },
            "MLflowResponse": {
                "type": "object",
                "properties": {"predictions": {"type": "array", "items": {}}},
                "required": ["predictions"],
            },
            "Error": {
                "type": "object",
                "properties": {
                    "error": {"type": "string"},
                    "message": {"type": "string"},
                    "problems": {"type": "array", "items": {"type": "object"}},
                    "request_id": {"type": "string"},
                },
            },
        }
    }
    if auth:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"loopline: {model}",
            "version": "unknown" if version is None else str(version),
            "description": "Predictions, feedback and metadata of a served model. "
            "See docs/serving.md.",
        },
        "paths": paths,
        "components": components,
    }


def docs_page(schema: dict[str, Any]) -> str:
    """A plain HTML page listing the routes, their bodies and the input columns."""
    rows = []
    for path, methods in schema["paths"].items():
        for method, spec in methods.items():
            if method == "parameters":
                continue
            body = spec.get("requestBody", {}).get("content", {})
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code>"
                f"</td><td>{html.escape(spec.get('summary', ''))}</td>"
                f"<td>{html.escape(', '.join(body))}</td></tr>"
            )
    record = schema["components"]["schemas"]["Record"]["properties"]
    cols = "".join(
        f"<tr><td><code>{html.escape(name)}</code></td><td>{html.escape(_describe(s))}</td></tr>"
        for name, s in record.items()
    )
    title = html.escape(schema["info"]["title"])
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>body{{font-family:sans-serif;margin:2em;max-width:70em}}"
        "td{padding:.2em .8em;border-bottom:1px solid #ddd}code{background:#f4f4f4}</style>"
        f"</head><body><h1>{title}</h1><p>Version {html.escape(schema['info']['version'])}. "
        "The machine-readable document is <a href='/openapi.json'>/openapi.json</a>.</p>"
        "<h2>Routes</h2><table><tr><th>method</th><th>path</th><th>what</th><th>bodies</th></tr>"
        + "".join(rows)
        + "</table><h2>Input columns</h2><table><tr><th>column</th><th>type</th></tr>"
        + cols
        + "</table><h2>Example</h2><pre>curl -s localhost:8080/predict -H 'Content-Type: "
        "application/json' -d '[{...one row...}]'</pre></body></html>"
    )


def _describe(schema: dict[str, Any]) -> str:
    text = str(schema.get("type", "any"))
    if "enum" in schema:
        text += " (one of " + ", ".join(str(v) for v in schema["enum"][:20]) + ")"
    if schema.get("nullable"):
        text += ", nullable"
    return text
