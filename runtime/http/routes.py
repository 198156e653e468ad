"""The endpoints, as a class over the data plane, registered on an ``APIRouter``."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from runtime.dataplane import JSON, NPY, InferenceService, Prediction
from runtime.http.security import Guard, rate_limit_headers
from runtime.lifecycle import Drain
from runtime.openapi import request_body, responses

_PROM = "text/plain; version=0.0.4; charset=utf-8"


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

    def register(self, router: APIRouter) -> None:
        """Add every route to ``router``; inference and metadata routes carry the guard dependency."""
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
        router.add_api_route("/metrics", self.prometheus, methods=["GET"], tags=["probes"],
                             summary="Prometheus metrics")

    def _respond(self, request: Request, p: Prediction) -> Response:
        headers = {**rate_limit_headers(request), "X-Model-Version": p.version}
        if NPY in request.headers.get("accept", ""):
            return Response(npy_bytes(p.primary()), media_type=NPY, headers=headers)
        rid = request.scope.get("state", {}).get("request_id")  # set by the serving middleware
        doc = {"request_id": rid, "model": self.name, "version": p.version, **p.fields}
        return Response(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), media_type=JSON, headers=headers)

    async def predict(self, request: Request) -> Response:
        return self._respond(request, await self.dataplane.predict(request))

    async def predict_named(self, request: Request, name: str) -> Response:
        return self._respond(request, await self.dataplane.predict(request, name=name))

    async def predict_version(self, request: Request, name: str, version: str) -> Response:
        return self._respond(request, await self.dataplane.predict(request, name=name, version=version))

    async def models(self) -> Response:
        return json_response(200, self.repository.describe())

    async def health(self) -> Response:
        return json_response(200, {"status": "ok"})

    async def ready(self) -> Response:
        ok = self.repository.ready and not self.drain.active
        doc = {"ready": ok, "draining": self.drain.active, "versions": self.repository.router.versions}
        return json_response(200 if ok else 503, doc)

    async def prometheus(self) -> Response:
        self.repository.sync_queue_depths()
        return Response(self.metrics.render(), media_type=_PROM)
