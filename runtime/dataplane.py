"""The data plane: route a request to a version → decode its body → batch → format → record metrics.

HTTP-agnostic apart from reading the Starlette request; failures are typed exceptions that ``runtime.http.errors``
turns into responses. ``request.state.model_version`` names the chosen version (the middleware labels metrics
with it).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.requests import Request

from runtime.batching import InferenceError, Inputs, QueueFullError
from runtime.images import decode_images, images_to_inputs
from runtime.inputs import (
    IMAGE_TYPES,
    InputError,
    UnsupportedMediaTypeError,
    check_npy_length,
    npy_header,
    parse_json,
    parse_npy,
    parse_raw,
)
from runtime.metrics import Metrics
from runtime.repository import ModelRepository, ModelVersion
from runtime.settings import Settings, cpu_quota
from runtime.telemetry import EmfAggregator

log = logging.getLogger("mldeploy.server")
JSON = "application/json"
NPY = "application/x-npy"
_BIG_JSON = 64 * 1024
BIG_ROWS = 2048  # answers with more rows are formatted and serialised off the event loop


class ModelNotServedError(Exception):
    """404: the path names another model than the one served."""


class NotReadyError(Exception):
    """503 + Retry-After: the model is still loading."""


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
    rows: int = 0

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
        self._images: ThreadPoolExecutor | None = None
        self._children: dict[tuple[str, str], Any] = {}  # (metric, version) -> labelled child, cached

    def _child(self, metric: str, version: str) -> Any:
        """The buffered labelled child of a per-version counter/histogram (``Metrics.counter``/``histogram``)."""
        child = self._children.get((metric, version))
        if child is None:
            m = self.metrics
            raw = getattr(m, metric).labels(version)
            child = self._children[(metric, version)] = m.histogram(raw) if metric == "confidence" else m.counter(raw)
        return child

    def _watch_queue(self, version: str, mv: ModelVersion) -> None:
        """The version's queue-depth gauge, refreshed at every metrics flush (not set per request)."""
        self._children[("queue_depth", version)] = True
        self.metrics.gauge(self.metrics.queue_depth.labels(version),
                           lambda: mv.batcher.depth if mv.batcher is not None else 0)

    async def decode(self, request: Request, mv: ModelVersion) -> Inputs:
        """Body → named input arrays; JSON above 64 KiB and images are decoded off the event loop."""
        ctype = request.headers.get("content-type", JSON).split(";", 1)[0].strip().lower()
        if ctype == "multipart/form-data" or ctype in IMAGE_TYPES:
            return await self._decode_images(request, mv, ctype)
        if ctype == NPY:
            return parse_npy(await self._read_npy(request, mv), mv.spec)
        body = await request.body()
        if ctype in (JSON, "text/json") or ctype.endswith("+json"):
            if len(body) > _BIG_JSON:  # nested-list tensors: parse off the event loop
                return await asyncio.to_thread(parse_json, body, mv.spec)
            return parse_json(body, mv.spec)
        if ctype == "application/octet-stream":
            return parse_raw(body, request.headers, mv.spec)
        raise UnsupportedMediaTypeError(f"unsupported Content-Type {ctype!r}; use application/json, "
                                        "application/x-npy, application/octet-stream"
                                        + (", multipart/form-data or image/jpeg|png" if mv.manifest.image else ""))

    async def _read_npy(self, request: Request, mv: ModelVersion) -> bytes:
        """Stream the body; the row count in the ``.npy`` header is checked (413) before the rest is read."""
        spec = mv.spec
        if spec.single is None:
            raise InputError(["body"], "application/x-npy carries one tensor; this model has several inputs")
        chunks: list[bytes] = []
        checked = False
        async for chunk in request.stream():
            chunks.append(chunk)
            if not checked:
                header = npy_header(b"".join(chunks))
                if header is not None:
                    length = request.headers.get("content-length", "")
                    if length.isdigit():  # a header inconsistent with the body is malformed (422), not large
                        check_npy_length(header, int(length))
                    spec.check_rows(spec.rows_of_shape(spec.single.name, header[0]))
                    checked = True
        return b"".join(chunks)

    async def _decode_images(self, request: Request, mv: ModelVersion, ctype: str) -> Inputs:
        """Multipart uploads or one raw JPEG/PNG; 415 for models without an image spec (Pillow never imported)."""
        if mv.manifest.image is None:
            raise UnsupportedMediaTypeError(f"this model does not take images ({ctype}); send application/json, "
                                            "application/x-npy or application/octet-stream")
        if ctype in IMAGE_TYPES:
            blobs = [(await request.body(), ["body"])]
        else:
            try:
                form = await request.form(max_files=min(256, mv.spec.max_rows), max_fields=16)
            except Exception as e:  # python-multipart / starlette raise several types for bad bodies
                raise InputError(["body"], f"invalid multipart body: {str(e)[:200]}") from None
            files = [(k, v) for k, v in form.multi_items() if hasattr(v, "read")]
            if not files:
                raise InputError(["body"], "multipart upload has no file; send the image in a 'file' field")
            blobs = [(await f.read(), [k, i]) for i, (k, f) in enumerate(files)]
        # header checks + decoding take milliseconds: a bounded pool, off the event loop
        images = await asyncio.get_running_loop().run_in_executor(self._image_pool(), decode_images, blobs,
                                                                  mv.spec)
        return images_to_inputs(images, mv.spec)

    def _image_pool(self) -> ThreadPoolExecutor:
        if self._images is None:
            self._images = ThreadPoolExecutor(max_workers=max(1, min(4, cpu_quota())), thread_name_prefix="image")
        return self._images

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
        if ("queue_depth", chosen) not in self._children:
            self._watch_queue(chosen, mv)
        s = self.settings
        try:
            async with asyncio.timeout(s.request_timeout_s):
                batcher.arriving += 1
                try:
                    inputs = await self.decode(request, mv)
                finally:
                    batcher.arriving -= 1
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
        top_k = request.query_params.get("top_k") if request.scope.get("query_string") else None
        try:
            k = int(top_k) if top_k else None
        except ValueError:
            raise InputError(["query", "top_k"], "must be an integer") from None
        rows = next(iter(inputs.values())).shape[0]
        if rows > BIG_ROWS:  # top-k dicts + one histogram observation per row: keep the loop free
            fields = await asyncio.to_thread(self._format, chosen, mv, outputs, k)
        else:
            fields = self._format(chosen, mv, outputs, k)
        return Prediction(chosen, fields, outputs, mv, rows)

    def _format(self, version: str, mv: ModelVersion, outputs: Inputs, k: int | None) -> dict[str, Any]:
        fields, confidence = mv.formatter.format(outputs, k)
        if confidence is not None:
            self._observe(version, confidence.tolist())
        return fields

    def _observe(self, version: str, conf: list[float]) -> None:
        hist = self._child("confidence", version)
        if hasattr(hist, "observe_many"):
            hist.observe_many(conf)
        else:
            for c in conf:
                hist.observe(c)
        threshold = self.settings.low_confidence_threshold
        low = sum(c < threshold for c in conf)
        if low:
            self._child("low_confidence", version).inc(low)
        self.emf.confidences(version, conf)
