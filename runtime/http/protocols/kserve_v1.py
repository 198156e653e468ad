"""KServe V1 (TensorFlow-Serving style): ``POST /v1/models/{name}:predict`` and ``GET /v1/models/{name}``.

``{"instances": [...]}`` (rows, or records keyed by feature name) → ``{"predictions": [...]}``, through the app's
data plane with the native JSON decoder (which reads ``instances``) whatever the Content-Type, as KServe does
(``curl -d`` sends a form type). Errors are ``{"error": …}``.
"""

from __future__ import annotations

import asyncio

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from runtime.batching import Inputs
from runtime.dataplane import BIG_ROWS, InferenceService, ModelNotServedError, Prediction
from runtime.http.protocols.dataplane import ProtocolDataPlane
from runtime.http.protocols.errors import JSON
from runtime.http.security import Guard, rate_limit_headers
from runtime.inputs import PayloadTooLargeError, parse_json
from runtime.repository import ModelVersion

_BIG_JSON = 64 * 1024

_PREDICT_DOC = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["instances"],
        "properties": {"instances": {"type": "array", "description": "rows, or objects keyed by feature name"}}}}}},
    "responses": {"200": {"description": "{\"predictions\": [...]}, one per instance"},
                  "400": {"description": "Malformed instances: {\"error\": …}"},
                  "404": {"description": "Unknown model: {\"error\": …}"}},
}


def predictions_body(p: Prediction, max_bytes: int) -> bytes:
    """``{"predictions": …}``: the native answer's predictions (the primary output when it has none)."""
    predictions = p.fields["predictions"] if "predictions" in p.fields else p.primary()
    body = orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)
    if len(body) > max_bytes:
        raise PayloadTooLargeError(f"the answer would be {len(body)} bytes, above max_response_bytes "
                                   f"({max_bytes}): send fewer instances")
    return body


class InstancesDataPlane(ProtocolDataPlane):
    """The app's data plane reading every body as JSON (above 64 KiB off the event loop)."""

    async def decode(self, request: Request, mv: ModelVersion) -> Inputs:
        body = await request.body()
        if len(body) > _BIG_JSON:
            return await asyncio.to_thread(parse_json, body, mv.spec)
        return parse_json(body, mv.spec)


class KServeV1Endpoints:
    """The KServe V1 routes of one app."""

    def __init__(self, dataplane: InferenceService, guard: Guard) -> None:
        self.dataplane = InstancesDataPlane(dataplane)
        self.repository = dataplane.repository
        self.guard = guard
        self.name = dataplane.name
        self.max_response_bytes = dataplane.settings.max_response_bytes

    def register(self, router: APIRouter) -> None:
        """``:predict`` carries the guard; the model readiness probe does not (like ``/ready``)."""
        dep = self.guard.dependency()
        guarded = [Depends(dep)] if dep else []
        tags = ["KServe V1"]
        router.add_api_route("/v1/models/{name}:predict", self.predict, methods=["POST"], tags=tags,
                             dependencies=guarded, summary="KServe V1 predict", openapi_extra=_PREDICT_DOC)
        router.add_api_route("/v1/models/{name}", self.model_ready, methods=["GET"], tags=tags,
                             summary="KServe V1 model readiness")

    async def predict(self, request: Request, name: str) -> Response:
        p = await self.dataplane.predict(request, name=name)
        if p.rows > BIG_ROWS:
            body = await asyncio.to_thread(predictions_body, p, self.max_response_bytes)
        else:
            body = predictions_body(p, self.max_response_bytes)
        headers = {**rate_limit_headers(request), "X-Model-Version": p.version, "Cache-Control": "no-store"}
        return Response(body, media_type=JSON, headers=headers)

    async def model_ready(self, name: str) -> Response:
        if name != self.name:
            raise ModelNotServedError(f"model {name!r} is not served here; this server serves {self.name!r}")
        ready = self.repository.ready
        return Response(orjson.dumps({"name": name, "ready": ready}), status_code=200 if ready else 503,
                        media_type=JSON)
