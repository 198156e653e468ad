"""OpenAI-compatible embeddings: ``POST /v1/embeddings`` for text-embedding models (task ``feature-extraction``).

``{"model", "input": str | [str], "encoding_format"?: "float" | "base64", "dimensions"?}`` →
``{"object": "list", "data": [{"object": "embedding", "index": i, "embedding": …}], "model", "usage"}``, through the
app's data plane (guard, version routing, batching, timeouts, row limits, metrics). ``model`` is the served name, or
``name:version`` to pin a version (as the ``X-Model-Version`` header does). ``base64`` is little-endian float32, as
the ``openai`` client (which asks for it by default) decodes it. ``dimensions`` other than the model's own is a 400:
the vectors are not truncatable in general. Errors are OpenAI's ``{"error": {"message", "type", "param", "code"}}``
(``errors.openai_error``); models of another task are a 404 ``model_not_found``.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from runtime.batching import Inputs
from runtime.dataplane import BIG_ROWS, InferenceService, ModelNotServedError
from runtime.http.protocols.dataplane import ProtocolDataPlane
from runtime.http.protocols.errors import JSON
from runtime.http.security import Guard, rate_limit_headers
from runtime.inputs import InputError, PayloadTooLargeError
from runtime.repository import ModelVersion

PATH = "/v1/embeddings"
TASK = "feature-extraction"
_BIG_JSON = 64 * 1024
_FIELDS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})

_DOC = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["model", "input"],
        "properties": {
            "model": {"type": "string", "description": "the served model's name, or name:version"},
            "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "encoding_format": {"type": "string", "enum": ["float", "base64"], "default": "float"},
            "dimensions": {"type": "integer", "description": "only the model's own dimension is accepted"},
            "user": {"type": "string"}}}}}},
    "responses": {"200": {"description": "{\"object\": \"list\", \"data\": [{\"object\": \"embedding\", "
                                         "\"index\", \"embedding\"}], \"model\", \"usage\"}"},
                  "400": {"description": "Malformed request: {\"error\": {\"message\", \"type\", \"param\", "
                                         "\"code\"}}"},
                  "404": {"description": "Unknown model, or not an embedding model"}},
}


class EmbeddingRequest:
    """A parsed ``/v1/embeddings`` body."""

    __slots__ = ("dimensions", "encoding", "model", "texts", "version")

    def __init__(self, doc: Any) -> None:
        if not isinstance(doc, dict):
            raise InputError(["body"], "expected a JSON object with 'model' and 'input'")
        model = doc.get("model")
        if not isinstance(model, str) or not model:
            raise InputError(["model"], "'model' is required: the served model's name")
        self.model, _, version = model.partition(":")
        self.version = version or None
        texts = doc.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts:
            raise InputError(["input"], "'input' must be a string or a non-empty list of strings")
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise InputError(["input", bad], "must be a string (token-id inputs are not supported)")
        self.texts: list[str] = texts
        self.encoding = doc.get("encoding_format") or "float"
        if self.encoding not in ("float", "base64"):
            raise InputError(["encoding_format"], "must be 'float' or 'base64'")
        dims = doc.get("dimensions")
        if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
            raise InputError(["dimensions"], "must be a positive integer")
        self.dimensions: int | None = dims
        unknown = sorted(set(doc) - _FIELDS)
        if unknown:
            raise InputError([unknown[0]], f"unknown parameter {unknown[0]!r}")


class EmbeddingDataPlane(ProtocolDataPlane):
    """The app's data plane; ``decode`` takes the texts parsed by the route (``request.state.embedding``) and
    refuses versions that are not embedding models."""

    async def decode(self, request: Request, mv: ModelVersion) -> Inputs:
        req: EmbeddingRequest = request.state.embedding
        m = mv.manifest
        if m.task != TASK or mv.spec.single is None or mv.spec.single.dtype != "string":
            raise ModelNotServedError(f"model {self.name!r} is not a text-embedding model (task {m.task!r}); "
                                      "/v1/embeddings serves feature-extraction models")
        dims = next((o.shape[-1] for o in m.outputs if o.shape), None)
        if req.dimensions is not None and isinstance(dims, int) and req.dimensions != dims:
            raise InputError(["dimensions"], f"this model's embeddings have {dims} dimensions; "
                                             "other values are not supported")
        name = mv.spec.single.name
        mv.spec.check_rows(len(req.texts), "inputs")
        return {name: mv.spec.check(name, np.asarray(req.texts, dtype=object), ["input"])}


def _tokens(mv: ModelVersion, texts: list[str]) -> int:
    """Tokens the model sees (special tokens included, truncated to its maximum length); 0 if no tokenizer."""
    encoder = getattr(getattr(mv.batcher, "model", None), "encoder", None)
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is None:
        return 0
    return sum(sum(e.attention_mask) for e in tokenizer.encode_batch(texts))


def embeddings_body(req: EmbeddingRequest, vectors: np.ndarray, tokens: int, max_bytes: int) -> bytes:
    """The OpenAI answer for ``vectors`` (one row per input)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(req.texts):
        raise ValueError(f"the model returned embeddings of shape {list(vectors.shape)} for {len(req.texts)} inputs")
    if req.encoding == "base64":
        rows = vectors.astype("<f4")
        data = [{"object": "embedding", "index": i, "embedding": base64.b64encode(r.tobytes()).decode()}
                for i, r in enumerate(rows)]
    else:
        data = [{"object": "embedding", "index": i, "embedding": r} for i, r in enumerate(vectors)]
    body = orjson.dumps({"object": "list", "data": data, "model": req.model,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}},
                        option=orjson.OPT_SERIALIZE_NUMPY)
    if len(body) > max_bytes:
        raise PayloadTooLargeError(f"the answer would be {len(body)} bytes, above max_response_bytes "
                                   f"({max_bytes}): send fewer inputs")
    return body


def _answer(mv: ModelVersion, req: EmbeddingRequest, vectors: np.ndarray, max_bytes: int) -> bytes:
    """The usage count and the body."""
    return embeddings_body(req, vectors, _tokens(mv, req.texts), max_bytes)


class OpenAIEndpoints:
    """The OpenAI-compatible routes of one app (embeddings)."""

    def __init__(self, dataplane: InferenceService, guard: Guard) -> None:
        self.dataplane = EmbeddingDataPlane(dataplane)
        self.guard = guard
        self.name = dataplane.name
        self.max_response_bytes = dataplane.settings.max_response_bytes

    def register(self, router: APIRouter) -> None:
        dep = self.guard.dependency()
        guarded = [Depends(dep)] if dep else []
        router.add_api_route(PATH, self.embeddings, methods=["POST"], tags=["OpenAI"], dependencies=guarded,
                             summary="OpenAI-compatible embeddings", openapi_extra=_DOC)

    async def embeddings(self, request: Request) -> Response:
        raw = await request.body()
        try:
            doc = await asyncio.to_thread(orjson.loads, raw) if len(raw) > _BIG_JSON else orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise InputError(["body"], f"invalid JSON: {e}") from None
        req = EmbeddingRequest(doc)
        if req.model != self.name:
            raise ModelNotServedError(f"model {req.model!r} is not served here; this server serves {self.name!r}")
        request.state.embedding = req
        p = await self.dataplane.predict(request, name=req.model, version=req.version)
        vectors = p.primary()
        if req.dimensions is not None and vectors.ndim == 2 and req.dimensions != vectors.shape[1]:
            raise InputError(["dimensions"], f"this model's embeddings have {vectors.shape[1]} dimensions; "
                                             "other values are not supported")
        if p.rows > BIG_ROWS // 8:  # tokens counted + vectors serialised off the event loop
            body = await asyncio.to_thread(_answer, p.mv, req, vectors, self.max_response_bytes)
        else:
            body = _answer(p.mv, req, vectors, self.max_response_bytes)
        headers = {**rate_limit_headers(request), "X-Model-Version": p.version, "Cache-Control": "no-store"}
        return Response(body, media_type=JSON, headers=headers)
