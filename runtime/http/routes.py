"""The endpoints, as a class over the data plane, registered on an ``APIRouter`` (FastAPI is imported only by
``register``: the probes are answered without it until the app is built, ``runtime.http.app.LazyApp``)."""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from starlette.requests import Request  # at run time: FastAPI reads the endpoints' annotations
from starlette.responses import Response

from runtime.dataplane import BIG_ROWS, JSON, NPY, InferenceService, Prediction
from runtime.http.security import Guard, rate_limit_headers
from runtime.inputs import PayloadTooLargeError
from runtime.lifecycle import Drain
from runtime.openapi import request_body, responses

if TYPE_CHECKING:
    from fastapi import APIRouter


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def json_response(status: int, doc: Any) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON)


class Endpoints:
    """Inference, metadata and probe endpoints of one app."""

    def __init__(self, dataplane: InferenceService, guard: Guard, drain: Drain) -> None:
        self.dataplane = dataplane
        self.repository = dataplane.repository
        self.metrics = dataplane.metrics
        self.guard = guard
        self.drain = drain
        self.name = dataplane.name
        self.max_response_bytes = dataplane.settings.max_response_bytes

    def register(self, router: APIRouter) -> None:
        """Add every route to ``router``; inference and metadata routes carry the guard dependency."""
        from fastapi import Depends

        dep = self.guard.dependency()
        guarded = [Depends(dep)] if dep else []
        latest = self.repository.latest
        extra = {"requestBody": request_body(latest), "responses": responses(latest)}
        infer = {"methods": ["POST"], "openapi_extra": extra, "tags": ["inference"], "dependencies": guarded}
        router.add_api_route("/predict", self.predict, summary="Predict (weighted version routing)", **infer)
        router.add_api_route("/v1/models/{name}/predict", self.predict_named, **infer)
        router.add_api_route("/v1/models/{name}/versions/{version}/predict", self.predict_version, **infer)
        router.add_api_route("/v1/models", self.models, methods=["GET"], tags=["metadata"], dependencies=guarded,
                             summary="Manifest metadata, routing weights and drift")
        router.add_api_route("/health", self.health, methods=["GET"], tags=["probes"], summary="Liveness")
        router.add_api_route("/ready", self.ready, methods=["GET"], tags=["probes"],
                             summary="Readiness: loaded, warmed and not draining")
        # no /metrics here: it is served on runtime.metrics_port only (runtime.http.metrics_endpoint)

    def _body(self, request: Request, p: Prediction) -> tuple[bytes, str]:
        if NPY in request.headers.get("accept", ""):
            body, ctype = npy_bytes(p.primary()), NPY
        else:
            rid = request.scope.get("state", {}).get("request_id")  # set by the serving middleware
            doc = {"request_id": rid, "model": self.name, "version": p.version, **p.fields}
            body, ctype = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), JSON
        if len(body) > self.max_response_bytes:  # backstop: the row limit already accounts for the answer size
            raise PayloadTooLargeError(f"the answer would be {len(body)} bytes, above max_response_bytes "
                                       f"({self.max_response_bytes}): send fewer rows")
        return body, ctype

    async def _respond(self, request: Request, p: Prediction) -> Response:
        headers = {**rate_limit_headers(request), "X-Model-Version": p.version, "Cache-Control": "no-store"}
        if p.rows > BIG_ROWS:
            body, ctype = await asyncio.to_thread(self._body, request, p)
        else:
            body, ctype = self._body(request, p)
        return Response(body, media_type=ctype, headers=headers)

    async def predict(self, request: Request) -> Response:
        return await self._respond(request, await self.dataplane.predict(request))

    async def predict_named(self, request: Request, name: str) -> Response:
        return await self._respond(request, await self.dataplane.predict(request, name=name))

    async def predict_version(self, request: Request, name: str, version: str) -> Response:
        return await self._respond(request, await self.dataplane.predict(request, name=name, version=version))

    async def models(self) -> Response:
        return json_response(200, self.repository.describe())

    async def health(self) -> Response:
        return json_response(*probe(self.repository, self.drain, "/health"))

    async def ready(self) -> Response:
        return json_response(*probe(self.repository, self.drain, "/ready"))


def probe(repository: Any, drain: Drain, path: str) -> tuple[int, dict[str, Any]]:
    """The status and document of ``GET /health`` or ``GET /ready`` (also answered by ``runtime.http.lazy``)."""
    if path == "/health":
        return 200, {"status": "ok"}
    ok = repository.ready and not drain.active
    doc = {"ready": ok, "draining": drain.active, "versions": repository.router.versions,
           "providers": repository.providers}  # where each version runs: CUDA/GPU or CPU
    return 200 if ok else 503, doc
