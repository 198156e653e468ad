"""``create_app(settings)``: the FastAPI app serving one or several model versions.

Assembled in three named steps, like KServe's REST server: register the endpoints, add the exception handlers,
add the middlewares. The hot path avoids per-request pydantic models: bodies are parsed with orjson/numpy and
answered with orjson bytes; middleware is pure ASGI. The common predict requests do not enter Starlette at all:
``ServingApp`` hands them to ``runtime.http.fastpath.PredictFront``, a raw ASGI app with the same guard, data
plane, exception handlers and serving bookkeeping, and everything else to the FastAPI stack (where the native
predict routes still skip FastAPI's routing and dependency resolution). Inference runs in each version's batcher
thread — or, for small batches of a model measured to answer within ``runtime.batching.INLINE_MAX_MS``, in the
request's own task.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.auth import Authenticator
from runtime.dataplane import InferenceService
from runtime.http.clientip import ClientIP
from runtime.http.docs import add_docs
from runtime.http.errors import HANDLERS
from runtime.http.fastpath import PredictFastPath, PredictFront
from runtime.http.metrics_endpoint import MetricsEndpoint
from runtime.http.middleware import Serving, ServingMiddleware
from runtime.http.protocols import protocol_handlers, register_protocols
from runtime.http.routes import Endpoints
from runtime.http.security import Guard
from runtime.lifecycle import Drain
from runtime.metrics import Metrics
from runtime.ratelimit import RateLimiter
from runtime.repository import ModelRepository
from runtime.settings import Settings, inference_threads, load_settings
from runtime.shadow import ShadowEvaluator
from runtime.telemetry import EmfAggregator, flush_periodically

log = logging.getLogger("mldeploy.server")
_EXPOSED = ["X-Request-ID", "X-Model-Version", "X-RateLimit-Remaining"]


@dataclass
class ModelServer:
    """Everything one app owns: settings, metrics, EMF, the model repository, the data plane, the guard, drain."""

    settings: Settings
    metrics: Metrics
    emf: EmfAggregator
    repository: ModelRepository
    dataplane: InferenceService
    guard: Guard
    drain: Drain
    client_ip: ClientIP
    shadow: ShadowEvaluator | None = None  # only with a second version loaded (runtime.shadow)

    @classmethod
    def build(cls, settings: Settings, environ: dict[str, str] | None = None) -> ModelServer:
        """Read manifests and auth secrets (nothing loads yet); raises StartupError / AuthConfigError."""
        metrics = Metrics()
        repository = ModelRepository(settings, metrics)
        auth = Authenticator(settings.auth, environ)
        rl = settings.rate_limit
        client_ip = ClientIP(settings.trusted_proxies)
        guard = Guard(auth, RateLimiter(rl.limit) if rl.enabled else None, rl.limit, metrics, client_ip,
                      settings.auth.failure_limit)
        emf = EmfAggregator(settings.emf_namespace, repository.name, settings.low_confidence_threshold)
        dataplane = InferenceService(settings, repository, metrics, emf)
        shadow = None
        if len(repository.versions) > 1:  # a shadow candidate must be loaded: one version, no hook at all
            shadow = ShadowEvaluator(repository, metrics, emf, sensitive=settings.auth.sensitive_data,
                                     emf_interval_s=settings.emf_interval_s)
            dataplane.after_response.append(shadow.on_response)
        return cls(settings, metrics, emf, repository, dataplane, guard, Drain(), client_ip, shadow)

    def render_metrics(self) -> bytes:
        """The Prometheus text (queue depths refreshed first); called from the metrics port's thread."""
        self.repository.sync_queue_depths()
        if self.shadow is not None:
            self.shadow.publish()
        return self.metrics.render()

    def metrics_endpoint(self) -> MetricsEndpoint | None:
        """This process's metrics port; with several workers the supervisor (``__main__``) serves it instead."""
        s = self.settings
        if not s.metrics_port or s.workers > 1:
            return None
        routes = {"/shadow": self.shadow.render} if self.shadow is not None else {}
        return MetricsEndpoint(self.render_metrics, s.host, s.metrics_port, routes)

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Load + warm up every version, flush EMF periodically, drain on SIGTERM; stop gracefully."""
        await self.repository.start(inference_threads(self.settings))
        emf_task = asyncio.get_running_loop().create_task(
            flush_periodically(self.emf, self.settings.emf_interval_s))
        metrics_task = asyncio.get_running_loop().create_task(self.metrics.flush_periodically())
        self.drain.install_signal_handlers()
        endpoint = self.metrics_endpoint()
        if endpoint is not None:
            endpoint.start()
        self.metrics.ready.set(1)
        try:
            yield
        finally:
            self.metrics.ready.set(0)
            if endpoint is not None:
                endpoint.stop()
            await self.repository.stop(self.settings.drain_timeout_s)
            if self.shadow is not None:
                await asyncio.to_thread(self.shadow.stop)
            emf_task.cancel()
            metrics_task.cancel()
            self.metrics.flush()
            self.emf.flush()
            self.repository.publish_drift()
            log.info("stopped")


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

    def __init__(self, server: ModelServer) -> None:
        self.server = server

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
        serving = Serving(srv.metrics, srv.emf, s.access_log, srv.drain,
                          srv.client_ip if s.trusted_proxies else None, srv.dataplane.responded)
        app.add_middleware(ServingMiddleware, metrics=srv.metrics, emf=srv.emf, max_body_bytes=s.max_body_bytes,
                           access_log=s.access_log, drain=srv.drain, max_header_bytes=s.max_header_bytes,
                           serving=serving)
        # in front of it all: the common predict requests without Starlette (falls back to the stack above)
        app.front = PredictFront(app.stack, srv.dataplane, srv.guard, serving, lambda: app.exception_handlers,
                                 s.max_body_bytes, s.max_header_bytes, bool(s.cors.allow_origins), self.v2)


def create_app(settings: Settings | None = None, environ: dict[str, str] | None = None) -> FastAPI:
    """Build the app; raises StartupError / AuthConfigError when it must not start."""
    settings = settings or load_settings(environ=environ)
    return RestServer(ModelServer.build(settings, environ)).create_application()


def create_app_from_env() -> FastAPI:
    """uvicorn factory (``runtime.http.app:create_app_from_env``): settings from runtime.json + MLDEPLOY_* env.

    With ``workers > 1`` uvicorn *spawns* each worker: ``runtime.__main__`` (which sets logging up) does not run
    there, so a process whose root logger has no handler yet sets it up here (else its JSON logs, access lines
    included, are dropped)."""
    import logging

    settings = load_settings(environ=dict(os.environ))
    if not logging.getLogger().handlers:
        from runtime.telemetry import setup_logging

        setup_logging(settings.log_level)
    return create_app(settings)
