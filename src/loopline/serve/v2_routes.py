"""The Open Inference Protocol (KServe V2) routes; the codec is :mod:`loopline.serve.v2`.

``GET /v2`` (server metadata), ``GET /v2/models/{name}[/versions/{version}]`` (model
metadata from the signature), ``.../ready`` and ``POST .../infer``. A name other than the
served model's, or a version not served now, is a 404; problems are in the protocol's
style (``{"error": message, "code": ...}``). A request's ``id``, when it is a valid
request id, becomes its request id. Metadata needs the ``read`` role, inference
``predict``. (``/v2/health/...`` are the health routes, in
:mod:`loopline.serve.service_routes`.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import Response
from starlette.routing import Route

from loopline.echo import echo_text
from loopline.serve import v2
from loopline.serve.bodies import HTTPProblem, read_body
from loopline.serve.middleware import REQUEST_ID, request_context
from loopline.serve.responses import json_response, model_headers

if TYPE_CHECKING:
    from starlette.requests import Request

    from loopline.registry.validation import InputValidator, ValidationResult
    from loopline.serve.app import ServerApp


class V2Routes:
    """The ``/v2`` routes of one server."""

    def __init__(self, server: ServerApp) -> None:
        self.auth = server.auth
        self.inference = server.inference
        self.model_name = server.parsed.name
        self.max_body_bytes = server.serve.max_body_bytes
        self.tracker = server.tracker

    def routes(self) -> list[Route]:
        counted = self.tracker.counted
        meta = counted("v2_metadata", style="v2")
        infer = counted("v2_infer", style="v2", batched=True)
        return [
            Route("/v2", self.server_metadata, methods=["GET"], middleware=meta),
            Route("/v2/models/{name}", self.model_metadata, methods=["GET"], middleware=meta),
            Route("/v2/models/{name}/ready", self.model_ready, methods=["GET"], middleware=meta),
            Route("/v2/models/{name}/infer", self.infer, methods=["POST"], middleware=infer),
            Route(
                "/v2/models/{name}/versions/{version}",
                self.model_metadata,
                methods=["GET"],
                middleware=meta,
            ),
            Route(
                "/v2/models/{name}/versions/{version}/ready",
                self.model_ready,
                methods=["GET"],
                middleware=meta,
            ),
            Route(
                "/v2/models/{name}/versions/{version}/infer",
                self.infer,
                methods=["POST"],
                middleware=infer,
            ),
        ]

    async def infer(self, request: Request) -> Response:
        ctx = request_context(request)
        await self.auth.require(request, "predict")
        self._check_name(request.path_params["name"])
        version = version_number(request.path_params.get("version"))
        body = await read_body(request, self.max_body_bytes)
        parsed = v2.parse_infer(body, request.headers.get(v2.HEADER_LENGTH))
        if parsed.id is not None and REQUEST_ID.fullmatch(parsed.id):
            ctx.request_id = parsed.id

        def validate(v: InputValidator, drop: frozenset[str]) -> ValidationResult:
            return v.validate_columns(v2.to_columns(parsed, v.signature))

        served, answer = await self.inference.infer(ctx, validate, None, version=version)
        out = answer.outputs
        label_type = v2.label_datatype(served.signature.output.dtype)
        if served.signature.output.kind != "classifier":
            label_type = "FP64" if out.predictions.dtype.kind in "fiu" else "BYTES"
        tensors = v2.output_tensors(out.predictions, out.probabilities, label_type, parsed.outputs)
        header = {"model_name": served.name, "model_version": str(answer.version)}
        if parsed.id is not None:
            header["id"] = parsed.id
        data, headers = v2.encode_response(header, tensors, parsed.outputs, parsed.binary_default)
        return Response(data, headers={**headers, **model_headers(served)})

    async def server_metadata(self, request: Request) -> Response:
        from loopline import __version__

        await self.auth.require(request, "read")
        return json_response(
            {"name": "loopline", "version": __version__, "extensions": ["binary_tensor_data"]}
        )

    async def model_metadata(self, request: Request) -> Response:
        await self.auth.require(request, "read")
        name = request.path_params["name"]
        self._check_name(name)
        wanted = version_number(request.path_params.get("version"))
        served = self.inference.served(wanted)
        versions = sorted(self.inference.versions())
        return json_response(
            v2.model_metadata(
                name,
                [served.version] if wanted is not None else versions,
                served.signature,
                f"loopline_{served.loaded.flavor}",
            )
        )

    async def model_ready(self, request: Request) -> Response:
        await self.auth.require(request, "read")
        self._check_name(request.path_params["name"])
        self.inference.served(version_number(request.path_params.get("version")))
        return json_response({"name": self.model_name, "ready": True})

    def _check_name(self, name: str) -> None:
        if name != self.model_name:
            raise HTTPProblem(
                404,
                "unknown_model",
                f"Model {echo_text(name)} is not served here; this server serves "
                f"{self.model_name!r}",
            )


def version_number(text: str | None) -> int | None:
    """A version path parameter as a number (None when absent), or 404."""
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit()):  # not "²", which str.isdigit accepts
        raise HTTPProblem(
            404, "unknown_version", f"Version {echo_text(text)} is not a version number"
        )
    return int(text)
