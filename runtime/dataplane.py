"""The data plane: route a request to a version → decode its body → batch → format → record metrics.

HTTP-agnostic apart from reading the Starlette request; failures are typed exceptions that ``runtime.http.errors``
turns into responses. ``request.state.model_version`` names the chosen version (the middleware labels metrics
with it).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.requests import Request

from runtime.batching import InferenceError, Inputs, QueueFullError
from runtime.inputs import InputError, decode_image, images_to_inputs, parse_json, parse_npy, parse_raw
from runtime.metrics import Metrics
from runtime.repository import ModelRepository, ModelVersion
from runtime.settings import Settings
from runtime.telemetry import EmfAggregator

log = logging.getLogger("mldeploy.server")
JSON = "application/json"
NPY = "application/x-npy"
_BIG_JSON = 64 * 1024


class ModelNotServedError(Exception):
    """404: the path names another model than the one served."""


class NotReadyError(Exception):
    """503 + Retry-After: the model is still loading."""


class UnsupportedMediaTypeError(Exception):
    """415: the body's Content-Type is not one the runtime decodes."""


class ServerBusyError(Exception):
    """503 + Retry-After: the version's queue is full."""


class InferenceTimeoutError(Exception):
    """504: decoding + queueing + inference took longer than ``request_timeout_s``."""


@dataclass(slots=True)
class Prediction:
    """A formatted answer: response fields (predictions, probabilities, top_k, …) and the raw outputs."""

    version: str
    fields: dict[str, Any]
    outputs: Inputs
    mv: ModelVersion

    def primary(self) -> np.ndarray:
        """The array returned to ``Accept: application/x-npy`` clients."""
        return self.mv.formatter.primary(self.outputs)


class InferenceService:
    """Serves predictions from a ``ModelRepository``; records confidence metrics and EMF samples."""

    def __init__(self, settings: Settings, repository: ModelRepository, metrics: Metrics, emf: EmfAggregator) -> None:
        self.settings = settings
        self.repository = repository
        self.metrics = metrics
        self.emf = emf
        self.name = repository.name

    async def decode(self, request: Request, mv: ModelVersion) -> Inputs:
        """Body → named input arrays; JSON above 64 KiB and images are decoded off the event loop."""
        ctype = request.headers.get("content-type", JSON).split(";", 1)[0].strip().lower()
        if ctype == "multipart/form-data":
            try:
                form = await request.form(max_files=256, max_fields=16)
            except Exception as e:  # python-multipart / starlette raise several types for bad bodies
                raise InputError(["body"], f"invalid multipart body: {e}") from None
            files = [(k, v) for k, v in form.multi_items() if hasattr(v, "read")]
            if not files:
                raise InputError(["body"], "multipart upload has no file; send the image in a 'file' field")
            blobs = [(await f.read(), [k, i]) for i, (k, f) in enumerate(files)]
            # JPEG/PNG decoding + resizing takes milliseconds: keep it off the event loop
            images = await asyncio.to_thread(lambda: [decode_image(b, mv.spec, loc) for b, loc in blobs])
            return images_to_inputs(images, mv.spec)
        body = await request.body()
        if ctype in (JSON, "text/json") or ctype.endswith("+json"):
            if len(body) > _BIG_JSON:  # nested-list tensors: parse off the event loop
                return await asyncio.to_thread(parse_json, body, mv.spec)
            return parse_json(body, mv.spec)
        if ctype == NPY:
            return parse_npy(body, mv.spec)
        if ctype == "application/octet-stream":
            return parse_raw(body, request.headers, mv.spec)
        if ctype in ("image/jpeg", "image/png"):
            image = await asyncio.to_thread(decode_image, body, mv.spec, ["body"])
            return images_to_inputs([image], mv.spec)
        raise UnsupportedMediaTypeError(f"unsupported Content-Type {ctype!r}; use application/json, "
                                        "application/x-npy, application/octet-stream, multipart/form-data or "
                                        "image/jpeg|png")

    async def predict(self, request: Request, name: str | None = None, version: str | None = None) -> Prediction:
        """Route (weights, pin header or ``version``) → decode → batch → format; raises the errors above."""
        if name is not None and name != self.name:
            raise ModelNotServedError(f"model {name!r} is not served here; this server serves {self.name!r}")
        repo = self.repository
        chosen = repo.router.choose(request.headers, pinned=version)  # UnknownVersionError: 404
        request.scope.setdefault("state", {})["model_version"] = chosen  # request.state.model_version
        mv = repo.versions[chosen]
        batcher = mv.batcher
        if batcher is None or not repo.ready:
            raise NotReadyError("model is loading")
        s = self.settings
        try:
            async with asyncio.timeout(s.request_timeout_s):
                batcher.arriving += 1
                try:
                    inputs = await self.decode(request, mv)
                finally:
                    batcher.arriving -= 1
                self.metrics.queue_depth.labels(chosen).set(batcher.depth)
                outputs = await batcher.submit(inputs)
        except QueueFullError:
            self.metrics.rejected.labels("queue_full").inc()
            raise ServerBusyError(f"server busy: {s.max_queue} requests queued") from None
        except TimeoutError:
            self.metrics.rejected.labels("timeout").inc()
            raise InferenceTimeoutError(f"inference did not finish within {s.request_timeout_s}s") from None
        except InferenceError as e:
            log.error("inference failed: %s", e, extra={"version": chosen})
            raise
        top_k = request.query_params.get("top_k")
        try:
            k = int(top_k) if top_k else None
        except ValueError:
            raise InputError(["query", "top_k"], "must be an integer") from None
        fields, confidence = mv.formatter.format(outputs, k)
        if confidence is not None:
            self._observe(chosen, confidence.tolist())
        return Prediction(chosen, fields, outputs, mv)

    def _observe(self, version: str, conf: list[float]) -> None:
        hist = self.metrics.confidence.labels(version)
        for c in conf:
            hist.observe(c)
        low = sum(c < self.settings.low_confidence_threshold for c in conf)
        if low:
            self.metrics.low_confidence.labels(version).inc(low)
        self.emf.confidences(version, conf)
