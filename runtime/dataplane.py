"""The data plane: route a request to a version → decode its body → batch → format → record metrics.

HTTP-agnostic apart from reading the Starlette request; failures are typed exceptions that ``runtime.http.errors``
turns into responses. ``request.state.model_version`` names the chosen version (the middleware labels metrics
with it). ``predict(request)`` serves the Starlette routes; the predict fast path (``runtime.http.fastpath``) reads
the body itself and calls ``select`` then ``predict_body``.

After-response hooks: ``InferenceService.after_response`` is a list of ``(Prediction) -> None`` callables (one
list per repository, shared by the protocol data planes) run once the answer of a successful prediction has been
sent — on every route, native or protocol — with ``Prediction.inputs`` holding the decoded request. A hook runs on
the event loop after the response, so it must be quick (queue the work); its exceptions are logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from starlette.datastructures import QueryParams
from starlette.requests import Request

from runtime.batching import InferenceError, Inputs, QueueFullError
from runtime.images import decode_images, images_to_inputs
from runtime.inputs import (
    IMAGE_TYPES,
    InputError,
    InputSpec,
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
_HOOKS: weakref.WeakKeyDictionary[Any, list[Callable[[Any], None]]] = weakref.WeakKeyDictionary()


def _hooks(repository: ModelRepository) -> list[Callable[[Any], None]]:
    """The repository's after-response hook list (one per repository, whichever data plane asks)."""
    hooks = _HOOKS.get(repository)
    if hooks is None:
        hooks = _HOOKS[repository] = []
    return hooks


def _top_k(query_string: bytes) -> int | None:
    """The ``top_k`` query parameter (422 unless an integer)."""
    top_k = QueryParams(query_string).get("top_k")
    try:
        return int(top_k) if top_k else None
    except ValueError:
        raise InputError(["query", "top_k"], "must be an integer") from None


def is_json(ctype: str) -> bool:
    """``ctype`` (lower-cased, without parameters) is a JSON media type."""
    return ctype in (JSON, "text/json") or ctype.endswith("+json")


_all, _isfinite = np.logical_and.reduce, np.isfinite
_SUM_CHECK = 64  # up to this many values, ``_json_rows`` checks finiteness with one Python sum


def _json_rows(body: bytes, spec: InputSpec) -> Inputs | None:
    """The common body, ``{"inputs": [[numbers…], …]}`` for a model with one float input of rank 2, decoded in a
    few numpy calls; None for anything else — other layouts, non-numbers, ragged rows, wrong widths, NaN/Infinity,
    too many rows — which ``parse_json`` then decodes or refuses with its precise error."""
    t = spec.single
    if t is None or len(t.shape) != 2:
        return None
    dtype = spec.dtypes[t.name]
    if dtype.kind != "f":
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = doc.get("inputs") if type(doc) is dict else None
    if type(value) is not list or not value or type(value[0]) is not list or len(value) > spec.max_rows:
        return None
    try:
        arr = np.array(value, dtype=dtype)
    except (ValueError, TypeError):
        return None
    width = t.shape[1]
    if arr.ndim != 2 or not arr.shape[1] or (width not in (None, -1) and arr.shape[1] != width):
        return None
    if arr.size <= _SUM_CHECK:  # NaN/Infinity (e.g. 1e39 as float32): parse_json's error
        total = sum(arr.ravel().tolist())  # a few values: one Python sum beats a numpy reduction's overhead
        if total - total != 0:  # inf or nan; finite float64 values summing past 1e308 merely take parse_json
            return None
    elif not _all(_isfinite(arr), axis=None):  # (ndarray.all() is 2× slower)
        return None
    return {t.name: arr}


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
    inputs: Inputs | None = None  # the decoded request (for after-response hooks, e.g. shadow traffic)

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
        # called with each Prediction once its answer has been sent (see ``responded``); shared by every data
        # plane of the repository (the protocols' subclasses too)
        self.after_response: list[Callable[[Prediction], None]] = _hooks(repository)

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
        if len(body) > _BIG_JSON and is_json(ctype):  # nested-list tensors: parse off the event loop
            return await asyncio.to_thread(parse_json, body, mv.spec)
        return self.decode_body(body, ctype, request.headers, mv)

    def decode_body(self, body: bytes, ctype: str, headers: Any, mv: ModelVersion) -> Inputs:
        """A whole JSON or raw-tensor body → named input arrays, on the caller's thread; 415 for other types."""
        if is_json(ctype):
            return _json_rows(body, mv.spec) or parse_json(body, mv.spec)
        if ctype == "application/octet-stream":
            return parse_raw(body, headers, mv.spec)
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

    def select(self, headers: Any, state: dict[str, Any], name: str | None = None,
               version: str | None = None) -> tuple[str, ModelVersion]:
        """The version that serves this request (weights, pin header or ``version``), left in
        ``state["model_version"]`` for the metrics; raises ModelNotServedError / UnknownVersionError (404) or
        NotReadyError (503)."""
        if name is not None and name != self.name:
            raise ModelNotServedError(f"model {name!r} is not served here; this server serves {self.name!r}")
        repo = self.repository
        chosen = repo.router.choose(headers, pinned=version)  # UnknownVersionError: 404
        state["model_version"] = chosen  # request.state.model_version
        mv = repo.versions[chosen]
        if mv.batcher is None or not repo.ready:
            raise NotReadyError("model is loading")
        if ("queue_depth", chosen) not in self._children:
            self._watch_queue(chosen, mv)
        return chosen, mv

    async def predict(self, request: Request, name: str | None = None, version: str | None = None) -> Prediction:
        """Route (weights, pin header or ``version``) → decode → batch → format; raises the errors above."""
        chosen, mv = self.select(request.headers, request.scope.setdefault("state", {}), name, version)
        batcher = mv.batcher
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                batcher.arriving += 1
                try:
                    inputs = await self.decode(request, mv)
                finally:
                    batcher.arriving -= 1
                outputs = await batcher.submit(inputs)
        except (QueueFullError, TimeoutError, InferenceError) as e:
            raise self.failed(e, chosen) from None
        p = await self._prediction(chosen, mv, inputs, outputs, request.scope.get("query_string"))
        request.scope["state"]["prediction"] = p  # the serving middleware runs the after-response hooks with it
        return p

    async def predict_body(self, body: bytes, ctype: str, headers: Any, chosen: str, mv: ModelVersion,
                           query_string: bytes = b"", started: float | None = None) -> Prediction:
        """``predict`` for a body already read (the fast path, ``runtime.http.fastpath``): JSON or a raw tensor
        (``ctype`` lower-cased, without parameters); ``chosen``/``mv`` from ``select``; ``started``: the request's
        ``time.perf_counter()`` start, from which ``request_timeout_s`` counts (default: now). A small body of a
        tiny model is decoded and answered without leaving this task, and without a timer, when its batcher is
        idle."""
        batcher = mv.batcher
        if started is None:
            started = time.perf_counter()
        try:
            if len(body) <= _BIG_JSON or not is_json(ctype):
                inputs = self.decode_body(body, ctype, headers, mv)
                rows = next(iter(inputs.values())).shape[0]
                outputs = batcher.run_now(inputs, rows)
                if outputs is None:
                    async with asyncio.timeout(self._left(started)):
                        outputs = await batcher.submit(inputs)
                elif rows <= BIG_ROWS:  # answered inline: format it here too, no further coroutine
                    k = _top_k(query_string) if query_string else None
                    return Prediction(chosen, self._format(chosen, mv, outputs, k), outputs, mv, rows, inputs)
            else:
                async with asyncio.timeout(self._left(started)):
                    batcher.arriving += 1
                    try:
                        inputs = await asyncio.to_thread(parse_json, body, mv.spec)
                    finally:
                        batcher.arriving -= 1
                    outputs = await batcher.submit(inputs)
        except (QueueFullError, TimeoutError, InferenceError) as e:
            raise self.failed(e, chosen) from None
        return await self._prediction(chosen, mv, inputs, outputs, query_string)

    def _left(self, started: float) -> float:
        """Seconds left of ``request_timeout_s`` for a request that started at ``started`` (perf_counter)."""
        return self.settings.request_timeout_s - (time.perf_counter() - started)

    def failed(self, e: Exception, chosen: str) -> Exception:
        """The exception to raise for a refused or failed inference (metrics and log recorded here)."""
        s = self.settings
        if isinstance(e, QueueFullError):
            self.metrics.rejected.labels("queue_full").inc()
            return ServerBusyError(f"server busy: {s.max_queue} requests queued")
        if isinstance(e, TimeoutError):
            self.metrics.rejected.labels("timeout").inc()
            return InferenceTimeoutError(f"inference did not finish within {s.request_timeout_s}s")
        log.error("inference failed: %s", e, extra={"version": chosen})
        return e

    async def _prediction(self, chosen: str, mv: ModelVersion, inputs: Inputs, outputs: Inputs,
                          query_string: bytes | None) -> Prediction:
        k = _top_k(query_string) if query_string else None
        rows = next(iter(inputs.values())).shape[0]
        if rows > BIG_ROWS:  # top-k dicts + one histogram observation per row: keep the loop free
            fields = await asyncio.to_thread(self._format, chosen, mv, outputs, k)
        else:
            fields = self._format(chosen, mv, outputs, k)
        return Prediction(chosen, fields, outputs, mv, rows, inputs)

    def responded(self, p: Prediction) -> None:
        """Run the ``after_response`` hooks (the answer is sent); a failing hook is logged, never raised."""
        if not self.after_response:
            return
        for hook in self.after_response:
            try:
                hook(p)
            except Exception:
                log.exception("after-response hook %r failed", hook, extra={"version": p.version})

    def _format(self, version: str, mv: ModelVersion, outputs: Inputs, k: int | None) -> dict[str, Any]:
        fields, confidence = mv.formatter.format(outputs, k)
        if confidence is not None:
            self._observe(version, confidence)
        return fields

    def _observe(self, version: str, conf: list[float]) -> None:
        hist = self._child("confidence", version)
        if len(conf) == 1:  # one row: no loops, no generator
            c = conf[0]
            hist.observe(c)
            if c < self.settings.low_confidence_threshold:
                self._child("low_confidence", version).inc(1)
            self.emf.confidence(version, c)
            return
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
