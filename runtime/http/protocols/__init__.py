"""Standard inference protocols beside the native endpoints, over the same data plane and guard.

- ``v2``: Open Inference Protocol v2 (KServe V2 / Triton / MLServer) with the binary tensor extension;
- ``kserve_v1``: KServe V1 ``:predict``;
- ``openai``: OpenAI-compatible ``POST /v1/embeddings`` for text-embedding models;
- ``errors``: their ``{"error": …}`` format, wrapped around the app's exception handlers.

A protocol is a class built from ``(dataplane, guard[, drain])`` with ``register(router)``. Requests go through
``InferenceService.predict`` (routing, version pinning, batching, timeouts, row limits, metrics); a protocol with
its own body format subclasses the data plane's ``decode`` (as ``v2.TensorDataPlane`` does). An OpenAI-compatible
``POST /v1/embeddings`` for text-embedding models fits the same shape: a decoder for ``{"model", "input"}`` and an
encoder for the ``{"object": "list", "data": [...], "usage"}`` answer, registered here.
"""

from __future__ import annotations

from fastapi import APIRouter

from runtime.dataplane import InferenceService
from runtime.http.protocols.errors import protocol_handlers
from runtime.http.protocols.kserve_v1 import KServeV1Endpoints
from runtime.http.protocols.openai import OpenAIEndpoints
from runtime.http.protocols.v2 import V2Endpoints
from runtime.http.security import Guard
from runtime.lifecycle import Drain

__all__ = ["protocol_handlers", "register_protocols"]


def register_protocols(router: APIRouter, dataplane: InferenceService, guard: Guard, drain: Drain) -> V2Endpoints:
    """Add the v2, KServe V1 and OpenAI routes to ``router`` (after the native ones); the v2 endpoints (whose
    inference the predict fast path also serves, ``runtime.http.fastpath``)."""
    v2 = V2Endpoints(dataplane, guard, drain)
    v2.register(router)
    KServeV1Endpoints(dataplane, guard).register(router)
    OpenAIEndpoints(dataplane, guard).register(router)
    return v2
