"""The FastAPI application of one ``ModelServer`` (``runtime.http.app``): ``ServingApp`` and ``RestServer``.

Its own module because it imports FastAPI: ``python -m runtime`` gets ready without it (``runtime.http.lazy``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.http.docs import add_docs
from runtime.http.errors import HANDLERS
from runtime.http.fastpath import PredictFastPath, PredictFront
from runtime.http.middleware import Serving, ServingMiddleware
from runtime.http.protocols import protocol_handlers, register_protocols
from runtime.http.routes import Endpoints

if TYPE_CHECKING:
    from runtime.http.app import ModelServer

_EXPOSED = ["X-Request-ID", "X-Model-Version", "X-RateLimit-Remaining"]


class ServingApp(FastAPI):
    """FastAPI with a raw ASGI front (``runtime.http.fastpath.PredictFront``) before its middleware stack."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.front
        if front is not None and scope["type"] == "http":
            scope["app"] = self
            await front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def stack(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The FastAPI app itself: its middleware stack and router."""
        await super().__call__(scope, receive, send)


class RestServer:
    """Builds the FastAPI application of one ``ModelServer``."""

    def __init__(self, server: ModelServer, serving: Serving | None = None) -> None:
        self.server = server
        self.serving = serving  # shared with runtime.http.lazy.LazyApp (its probes); else made here

    def create_application(self) -> FastAPI:
        srv = self.server
        latest, versions = srv.repository.latest, srv.repository.router.versions
        app = ServingApp(
            title=f"{srv.repository.name} (mldeploy)", version=latest.version, lifespan=srv.lifespan,
            description=f"{latest.task} model served by mldeploy; versions: {', '.join(versions)}",
            default_response_class=Response, docs_url=None, redoc_url=None,  # no CDN-loaded pages
            openapi_url="/openapi.json" if srv.settings.docs else None,
        )
        app.state.server = srv
        self._register_endpoints(app)
        if srv.settings.docs:
            add_docs(app)
        self._add_exception_handlers(app)
        self._add_middlewares(app)
        return app

    def _register_endpoints(self, app: FastAPI) -> None:
        # on the app's own APIRouter: FastAPI's include_router adds a routing hop (~100 calls) to every request
        srv = self.server
        self.endpoints = Endpoints(srv.dataplane, srv.guard, srv.drain)
        self.endpoints.register(app.router)
        # Open Inference Protocol v2, KServe V1, OpenAI
        self.v2 = register_protocols(app.router, srv.dataplane, srv.guard, srv.drain)

    def _add_exception_handlers(self, app: FastAPI) -> None:
        for exc_type, handler in protocol_handlers(HANDLERS).items():  # {"error": …} on protocol paths
            app.add_exception_handler(exc_type, handler)

    def _add_middlewares(self, app: FastAPI) -> None:
        s = self.server.settings
        # added first, so innermost (just above the router): the native predict routes without FastAPI's routing
        app.add_middleware(PredictFastPath, endpoints=self.endpoints, guard=self.server.guard,
                           exception_handlers=lambda: app.exception_handlers)
        if s.cors.allow_origins:
            from starlette.middleware.cors import CORSMiddleware

            c = s.cors
            app.add_middleware(CORSMiddleware, allow_origins=c.allow_origins, allow_methods=c.allow_methods,
                               allow_headers=c.allow_headers, allow_credentials=c.allow_credentials,
                               expose_headers=_EXPOSED)
        # added last, so outermost: it also times and counts CORS preflights and 413s
        srv = self.server
        serving = self.serving or srv.serving()
        app.add_middleware(ServingMiddleware, metrics=srv.metrics, emf=srv.emf, max_body_bytes=s.max_body_bytes,
                           access_log=s.access_log, drain=srv.drain, max_header_bytes=s.max_header_bytes,
                           serving=serving)
        # in front of it all: the common predict requests without Starlette (falls back to the stack above)
        app.front = PredictFront(app.stack, srv.dataplane, srv.guard, serving, lambda: app.exception_handlers,
                                 s.max_body_bytes, s.max_header_bytes, bool(s.cors.allow_origins), self.v2)
