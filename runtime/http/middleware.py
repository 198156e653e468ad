"""Pure-ASGI serving middleware (no BaseHTTPMiddleware overhead): request id, header (431) and body (413) limits,
``X-Content-Type-Options: nosniff`` and ``Cache-Control: no-store`` on every response (static docs assets keep
their own), in-flight gauge, per-route/status/version metrics (histograms buffered: ``Metrics.flush``), EMF
samples, ``Connection: close`` while draining and the JSON access log line (``runtime.access_log``: every error
and slow request, ``sample_rate`` of the rest).

It shares two values with the app through the request state (``scope["state"]``): it sets ``request_id``, and
reads ``model_version`` (set by the data plane) to label the metrics.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.contract.serving import AccessLog
from runtime.lifecycle import Drain
from runtime.metrics import Metrics
from runtime.telemetry import EmfAggregator

access = logging.getLogger("mldeploy.access")
_RID_RE = re.compile(rb"^[\w.-]{1,64}$")
_STATIC_ROUTES = {"/predict", "/health", "/ready", "/v1/models", "/docs", "/openapi.json"}
_QUIET_ROUTES = ("/health", "/ready")
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_STORE = (b"cache-control", b"no-store")


class _BodyTooLargeError(Exception):
    pass


def route_label(path: str) -> str:
    """Bounded-cardinality route label."""
    if path in _STATIC_ROUTES:
        return path
    if path.startswith("/v1/models/") and path.endswith("/predict"):
        return "/v1/models/{name}/versions/{version}/predict" if "/versions/" in path else "/v1/models/{name}/predict"
    return "other"


class ServingMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, emf: EmfAggregator, max_body_bytes: int,
                 access_log: AccessLog | bool, drain: Drain, max_header_bytes: int = 32 * 1024,
                 client_ip: Callable[[Scope], str] | None = None) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.client_ip = client_ip
        self.metrics = metrics
        self.emf = emf
        self.limit = max_body_bytes
        if isinstance(access_log, bool):
            access_log = AccessLog(enabled=access_log, sample_rate=1.0)
        self.access_log = access_log.enabled
        self.sample_rate = access_log.sample_rate
        self.slow_s = access_log.slow_ms / 1000.0
        self._credit = 0.0  # sampling: a line each time the accumulated rate reaches 1 (exactly sample_rate)
        self.drain = drain
        # labelled children, cached: ``labels()`` costs a lock and a tuple of str() per call
        self._requests: dict[tuple[str, int, str], Any] = {}
        self._latency: dict[tuple[str, str], Any] = {}
        self.in_flight = 0
        metrics.gauge(metrics.in_flight, lambda: self.in_flight)

    def _sampled(self) -> bool:
        self._credit += self.sample_rate
        if self._credit >= 0.999999:  # not 1.0: ten additions of 0.1 make 0.9999999999999999
            self._credit -= 1.0
            return True
        return False

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
            if k == b"x-request-id" and _RID_RE.match(v):
                rid = v
            elif k == b"content-length":
                length = int(v) if v.isdigit() else None
        rid_b = rid or os.urandom(8).hex().encode()
        rid_s = rid_b.decode()
        state = scope.setdefault("state", {})
        state["request_id"] = rid_s
        status = 500
        started = False
        drain = self.drain
        extra_headers = ((b"x-request-id", rid_b), _NOSNIFF)

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers += extra_headers
                for k, _ in headers:
                    if k == b"cache-control":
                        break
                else:
                    headers.append(_NO_STORE)
                if drain.active:
                    headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
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

        m = self.metrics
        self.in_flight += 1
        try:
            if header_bytes > self.max_header_bytes:
                await self._refuse(send_wrapper, rid_s, 431, "header_too_large",
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
            self.in_flight -= 1
            elapsed = time.perf_counter() - t0
            version = state.get("model_version", "")
            path = scope["path"]
            route = route_label(path)
            key = (route, status, version)
            counter = self._requests.get(key)
            if counter is None:
                # not buffered: a scrape right after a response counts it (histograms lag ≤ FLUSH_INTERVAL_S)
                counter = self._requests[key] = m.requests.labels(route, str(status), version)
            counter.inc()
            hist = self._latency.get((route, version))
            if hist is None:
                hist = self._latency[(route, version)] = m.histogram(m.latency.labels(route, version))
            hist.observe(elapsed)
            m.maybe_flush(time.monotonic())
            if version:
                self.emf.request(version, elapsed * 1000.0, status < 500)
            if self.access_log and route not in _QUIET_ROUTES and (
                    status >= 400 or elapsed > self.slow_s or self._sampled()):
                access.info("%s %s %d", scope["method"], path, status, extra={
                    "request_id": rid_s, "route": route, "status": status, "version": version,
                    "latency_ms": round(elapsed * 1000.0, 3),
                    "client": self._client(scope)})

    def _client(self, scope: Scope) -> str | None:
        if self.client_ip is not None:
            return self.client_ip(scope)
        return scope["client"][0] if scope.get("client") else None

    async def _too_large(self, send: Send, rid: str) -> None:
        detail = f"request body exceeds max_body_bytes ({self.limit} bytes)"
        await self._refuse(send, rid, 413, "body_too_large", detail)

    async def _refuse(self, send: Send, rid: str, status: int, reason: str, detail: str) -> None:
        self.metrics.rejected.labels(reason).inc()
        body = orjson.dumps({"detail": detail, "request_id": rid})
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
