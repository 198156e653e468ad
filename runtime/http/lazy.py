"""``LazyApp``: the ASGI app ``python -m runtime`` serves (``runtime.http.app.create_app_from_env``).

Importing FastAPI and building the app (routes, OpenAPI, middleware) costs ~0.14 s of CPU, ~30 % of an iris
container's start, and nothing in it is needed to get ready. So this front runs the ASGI ``lifespan`` itself
(``ModelServer.lifespan``: model load and warm-up, shadow, the flush tasks, drain handlers; as Starlette's router
does) and answers ``GET /ready`` and ``GET /health`` itself — the same status, JSON body and headers as the routes
(``runtime.http.routes.probe``) behind the serving middleware, with the same bookkeeping (``Serving.record``).
The FastAPI app is built on the event loop right after the first ``/ready`` 200 (``loop.call_soon``), or by the
first request that needs it if one comes sooner: that request waits for the build (it runs on the loop, without
suspending, so concurrent first requests all find it built), never fails because of it.

A probe the front cannot answer exactly as the stack would — a root path, headers above ``max_header_bytes`` (431),
a body above ``max_body_bytes`` (413), an ``Origin`` while CORS is on — goes to the app.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.http.middleware import RID_RE, Serving, new_request_id
from runtime.http.routes import probe
from runtime.lifecycle import server_process

if TYPE_CHECKING:
    from runtime.http.app import ModelServer

log = logging.getLogger("mldeploy.server")
_PROBES = frozenset({"/ready", "/health"})
_JSON = (b"content-type", b"application/json")


def _rid(raw: list[tuple[bytes, bytes]]) -> bytes:
    """The request id as ``ServingMiddleware`` reads it (the last valid ``X-Request-ID``), else a new one."""
    rid = b""
    for k, v in raw:
        if k == b"x-request-id" and RID_RE.match(v):
            rid = v
    return rid or new_request_id()


class LazyApp:
    """Lifespan and probes without FastAPI; everything else to the app ``build`` returns (built once)."""

    def __init__(self, server: ModelServer, serving: Serving, build: Callable[[], ASGIApp]) -> None:
        self.server = server
        self.serving = serving
        self._build = build
        self.app: ASGIApp | None = None
        s = server.settings
        self.max_header_bytes = s.max_header_bytes
        self.limit = s.max_body_bytes
        self.cors = bool(s.cors.allow_origins)
        self._scheduled = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if scope["method"] == "GET" and scope["path"] in _PROBES and await self._probe(scope, send):
                return
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        await (self.app or self.built())(scope, receive, send)

    def built(self) -> ASGIApp:
        """The FastAPI app, built now if it is not yet (synchronously, on the event loop)."""
        if self.app is None:
            t0 = time.perf_counter()
            self.app = self._build()
            if server_process():  # as at ready (runtime.lifecycle.resume_gc): the app lives as long as the process
                gc.freeze()
            log.debug("app built in %.3f s", time.perf_counter() - t0)
        return self.app

    def _build_soon(self) -> None:
        if self._scheduled or self.app is not None:
            return
        self._scheduled = True

        def build() -> None:
            try:
                self.built()
            except Exception:  # the next request that needs it builds it again and gets the error
                log.exception("building the app failed")

        asyncio.get_running_loop().call_soon(build)

    async def _probe(self, scope: Scope, send: Send) -> bool:
        """Answer a probe as the route behind the serving middleware would; False (nothing sent) to leave it."""
        t0 = time.perf_counter()
        raw = scope["headers"]
        if scope.get("root_path") or sum(len(k) + len(v) for k, v in raw) > self.max_header_bytes:
            return False
        for k, v in raw:
            if k == b"content-length" and v.isdigit() and int(v) > self.limit:
                return False
            if k == b"origin" and self.cors:
                return False
        rid_b = _rid(raw)
        rid_s = rid_b.decode()
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["request_id"] = rid_s
        serving = self.serving
        serving.in_flight += 1
        status = 500
        try:
            srv = self.server
            status, doc = probe(srv.repository, srv.drain, scope["path"])
            body = orjson.dumps(doc)
            headers = serving.decorate([(b"content-length", b"%d" % len(body)), _JSON], rid_b)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            serving.in_flight -= 1
            serving.record(scope, scope["path"], status, time.perf_counter() - t0, rid_s)
        if status == 200 and scope["path"] == "/ready":
            self._build_soon()
        return True

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI lifespan protocol around ``ModelServer.lifespan``, as ``starlette.routing.Router.lifespan``."""
        started = False
        await receive()
        try:
            async with self.server.lifespan(scope.get("app")):
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()
        except BaseException:
            text = traceback.format_exc()
            await send({"type": "lifespan.shutdown.failed" if started else "lifespan.startup.failed",
                        "message": text})
            raise
        else:
            await send({"type": "lifespan.shutdown.complete"})
