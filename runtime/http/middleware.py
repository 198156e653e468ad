"""Pure-ASGI serving middleware (no BaseHTTPMiddleware overhead): request id, header (431) and body (413) limits,
``X-Content-Type-Options: nosniff`` and ``Cache-Control: no-store`` on every response (static docs assets keep
their own), in-flight gauge, per-route/status/version metrics (counters and histograms buffered in process memory,
pushed every ``FLUSH_INTERVAL_S``: ``Metrics.flush``), EMF samples, ``Connection: close`` while draining and the
JSON access log line (``runtime.access_log``: every error and slow request, ``sample_rate`` of the rest).

It shares two values with the app through the request state (``scope["state"]``): it sets ``request_id``, and
reads ``model_version`` (set by the data plane) to label the metrics.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.contract.serving import AccessLog
from runtime.lifecycle import Drain
from runtime.metrics import FLUSH_INTERVAL_S, Metrics
from runtime.telemetry import EmfAggregator

access = logging.getLogger("mldeploy.access")
RID_RE = re.compile(rb"^[\w.-]{1,64}$")  # a client's X-Request-ID we keep (else a new id)
_STATIC_ROUTES = {"/predict", "/health", "/ready", "/v1/models", "/docs", "/openapi.json"}
_QUIET_ROUTES = ("/health", "/ready")
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_STORE = (b"cache-control", b"no-store")


_ids = random.Random()  # seeded from os.urandom in each worker; ids must be unique, not secret
_getrandbits = _ids.getrandbits


class _BodyTooLargeError(Exception):
    pass


def new_request_id() -> bytes:
    """16 random hex digits (a Mersenne Twister draw, not ``os.urandom``: no system call per request)."""
    return b"%016x" % _getrandbits(64)


def route_label(path: str) -> str:
    """Bounded-cardinality route label."""
    if path in _STATIC_ROUTES:
        return path
    if path.startswith("/v1/models/") and path.endswith("/predict"):
        return "/v1/models/{name}/versions/{version}/predict" if "/versions/" in path else "/v1/models/{name}/predict"
    return "other"


class Serving:
    """The per-request bookkeeping shared by ``ServingMiddleware`` and the predict fast path
    (``runtime.http.fastpath``): requests in flight, the response headers every answer carries, metrics, EMF
    samples, the sampled access log and the after-response hooks."""

    def __init__(self, metrics: Metrics, emf: EmfAggregator, access_log: AccessLog | bool, drain: Drain,
                 client_ip: Callable[[Scope], str] | None = None,
                 responded: Callable[[Any], None] | None = None) -> None:
        self.metrics = metrics
        self.emf = emf
        self.client_ip = client_ip
        if isinstance(access_log, bool):
            access_log = AccessLog(enabled=access_log, sample_rate=1.0)
        self.access_log = access_log.enabled
        self.sample_rate = access_log.sample_rate
        self.slow_s = access_log.slow_ms / 1000.0
        self._credit = 0.0  # sampling: a line each time the accumulated rate reaches 1 (exactly sample_rate)
        self.drain = drain
        self.responded = responded  # (Prediction) -> None, once its answer is sent (``InferenceService.responded``)
        # labelled children, cached: ``labels()`` costs a lock and a tuple of str() per call
        self._children: dict[tuple[str, int, str], tuple[Any, Any]] = {}  # (route, status, version) -> both
        self._latency: dict[tuple[str, str], Any] = {}
        self.in_flight = 0
        metrics.gauge(metrics.in_flight, lambda: self.in_flight)
        # one append per answered request: (route, status, version, seconds), folded into the Prometheus buffers
        # and the EMF reservoirs at each metrics flush (FLUSH_INTERVAL_S) and each EMF flush
        self._samples: deque[tuple[str, int, str, float]] = deque()
        self._sample = self._samples.append
        self._fold_lock = threading.Lock()
        metrics.before_flush(self.fold)
        emf.before_flush(self.fold)

    def _labelled(self, route: str, status: int, version: str) -> tuple[Any, Any]:
        """The request counter child of (route, status, version) and the buffered latency histogram of (route,
        version), shared by every status."""
        m = self.metrics
        hist = self._latency.get((route, version))
        if hist is None:
            hist = self._latency[(route, version)] = m.histogram(m.latency.labels(route, version))
        return m.counter(m.requests.labels(route, str(status), version)), hist

    def decorate(self, headers: list[tuple[bytes, bytes]], rid: bytes) -> list[tuple[bytes, bytes]]:
        """``headers`` (a new list) + request id, nosniff, no-store unless set, ``Connection: close`` if draining."""
        headers = list(headers)
        headers += ((b"x-request-id", rid), _NOSNIFF)
        for k, _ in headers:
            if k == b"cache-control":
                break
        else:
            headers.append(_NO_STORE)
        if self.drain.active:
            headers.append((b"connection", b"close"))
        return headers

    def record(self, scope: Scope, route: str, status: int, elapsed: float, rid: str) -> None:
        """Count one answered request (metrics and EMF: one sample, see ``fold``), write its access log line if
        due, then run the after-response hooks."""
        state = scope.get("state") or {}
        version = state.get("model_version", "")
        self._sample((route, status, version, elapsed))
        m = self.metrics
        now = time.monotonic()
        if now - m.flushed_at >= FLUSH_INTERVAL_S:  # a scrape sees the sample within FLUSH_INTERVAL_S (at once
            m.flush(now)  # with one worker: ``Metrics.render`` flushes first)
        if self.access_log and route not in _QUIET_ROUTES:
            if status >= 400 or elapsed > self.slow_s:
                self._log(scope, route, status, elapsed, rid, version)
            else:  # sampling: a line each time the accumulated rate reaches 1 (exactly sample_rate)
                credit = self._credit + self.sample_rate
                if credit >= 0.999999:  # not 1.0: ten additions of 0.1 make 0.9999999999999999
                    credit -= 1.0
                    self._log(scope, route, status, elapsed, rid, version)
                self._credit = credit
        prediction = state.get("prediction")
        if prediction is not None and status < 400 and self.responded is not None:
            self.responded(prediction)

    def fold(self) -> None:
        """Move the recorded samples into the request counters and latency histograms (buffered: pushed by the
        ``Metrics.flush`` that calls this first) and the EMF counts and reservoirs (any thread)."""
        with self._fold_lock:  # held throughout: a flush that finds the lock taken waits for this fold's samples
            pending = self._samples
            popleft = pending.popleft
            self._fold([popleft() for _ in range(len(pending))])
        self.emf.fold()  # the confidences the data plane recorded meanwhile

    def _fold(self, samples: list[tuple[str, int, str, float]]) -> None:
        groups: dict[tuple[str, int, str], list[float]] = {}
        for route, status, version, elapsed in samples:
            key = (route, status, version)
            got = groups.get(key)
            if got is None:
                got = groups[key] = []
            got.append(elapsed)
        per_version: dict[str, tuple[list[float], list[int]]] = {}
        for key, elapsed in groups.items():
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = self._labelled(*key)
            counter, hist = children
            counter.inc(len(elapsed))
            observe_many = getattr(hist, "observe_many", None)
            if observe_many is not None:
                observe_many(elapsed)
            else:
                for e in elapsed:
                    hist.observe(e)
            route, status, version = key
            if version:
                got = per_version.get(version)
                if got is None:
                    got = per_version[version] = ([], [0])
                got[0].extend(elapsed)
                if status >= 500:
                    got[1][0] += len(elapsed)
        for version, (latencies, errors) in per_version.items():
            self.emf.add_requests(version, latencies, errors[0], scale=1000.0)

    def _log(self, scope: Scope, route: str, status: int, elapsed: float, rid: str, version: str) -> None:
        access.info("%s %s %d", scope["method"], scope["path"], status, extra={
            "request_id": rid, "route": route, "status": status, "version": version,
            "latency_ms": round(elapsed * 1000.0, 3), "client": self._client(scope)})

    def _client(self, scope: Scope) -> str | None:
        if self.client_ip is not None:
            return self.client_ip(scope)
        return scope["client"][0] if scope.get("client") else None

    async def refuse(self, send: Send, rid: str, status: int, reason: str, detail: str) -> None:
        self.metrics.rejected.labels(reason).inc()
        body = orjson.dumps({"detail": detail, "request_id": rid})
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class ServingMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, emf: EmfAggregator, max_body_bytes: int,
                 access_log: AccessLog | bool, drain: Drain, max_header_bytes: int = 32 * 1024,
                 client_ip: Callable[[Scope], str] | None = None, serving: Serving | None = None) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.limit = max_body_bytes
        self.serving = serving or Serving(metrics, emf, access_log, drain, client_ip)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        rid = b""
        length = None
        header_bytes = 0
        for k, v in scope["headers"]:
            header_bytes += len(k) + len(v)
            if k == b"x-request-id" and RID_RE.match(v):
                rid = v
            elif k == b"content-length":
                length = int(v) if v.isdigit() else None
        rid_b = rid or new_request_id()
        rid_s = rid_b.decode()
        state = scope.setdefault("state", {})
        state["request_id"] = rid_s
        status = 500
        started = False
        serving = self.serving

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message = {**message, "headers": serving.decorate(message.get("headers", ()), rid_b)}
            await send(message)

        received = 0
        limit = self.limit

        async def receive_wrapper() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLargeError
            return message

        serving.in_flight += 1
        try:
            if header_bytes > self.max_header_bytes:
                await serving.refuse(send_wrapper, rid_s, 431, "header_too_large",
                                     f"request headers exceed max_header_bytes ({self.max_header_bytes} bytes)")
            elif length is not None and length > limit:
                await self._too_large(send_wrapper, rid_s)
            else:
                try:
                    await self.app(scope, receive_wrapper if length is None else receive, send_wrapper)
                except _BodyTooLargeError:
                    if started:
                        raise
                    await self._too_large(send_wrapper, rid_s)
        finally:
            serving.in_flight -= 1
            serving.record(scope, route_label(scope["path"]), status, time.perf_counter() - t0, rid_s)

    async def _too_large(self, send: Send, rid: str) -> None:
        detail = f"request body exceeds max_body_bytes ({self.limit} bytes)"
        await self.serving.refuse(send, rid, 413, "body_too_large", detail)
