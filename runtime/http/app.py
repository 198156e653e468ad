"""``create_app(settings)``: the FastAPI app serving one or several model versions.

Assembled in three named steps, like KServe's REST server: register the endpoints, add the exception handlers,
add the middlewares. The hot path avoids per-request pydantic models: bodies are parsed with orjson/numpy and
answered with orjson bytes; middleware is pure ASGI. The common predict requests do not enter Starlette at all:
``ServingApp`` hands them to ``runtime.http.fastpath.PredictFront``, a raw ASGI app with the same guard, data
plane, exception handlers and serving bookkeeping, and everything else to the FastAPI stack (where the native
predict routes still skip FastAPI's routing and dependency resolution). Inference runs in each version's batcher
thread — or, for small batches of a model measured to answer within ``runtime.batching.INLINE_MAX_MS``, in the
request's own task. The FastAPI app itself (``ServingApp``, ``RestServer``) lives in ``runtime.http.rest``;
``python -m runtime`` serves ``create_lazy_app``'s ``runtime.http.lazy.LazyApp``, which gets ready without it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime.auth import Authenticator
from runtime.dataplane import InferenceService
from runtime.http.clientip import ClientIP
from runtime.http.lazy import LazyApp
from runtime.http.metrics_endpoint import MetricsEndpoint
from runtime.http.middleware import Serving
from runtime.http.security import Guard
from runtime.lifecycle import Drain
from runtime.metrics import Metrics
from runtime.ratelimit import RateLimiter
from runtime.repository import ModelRepository
from runtime.settings import Settings, inference_threads, load_settings
from runtime.shadow import ShadowEvaluator
from runtime.telemetry import EmfAggregator, flush_periodically

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger("mldeploy.server")


def __getattr__(name: str) -> Any:
    """``RestServer`` / ``ServingApp`` from ``runtime.http.rest``, imported on first use (it imports FastAPI)."""
    if name in ("RestServer", "ServingApp"):
        from runtime.http import rest

        return getattr(rest, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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

    def serving(self) -> Serving:
        """The per-request bookkeeping of this server's app (one per app: it registers the in-flight gauge)."""
        s = self.settings
        return Serving(self.metrics, self.emf, s.access_log, self.drain,
                       self.client_ip if s.trusted_proxies else None, self.dataplane.responded)

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
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
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


def create_app(settings: Settings | None = None, environ: dict[str, str] | None = None) -> FastAPI:
    """Build the app; raises StartupError / AuthConfigError when it must not start."""
    from runtime.http.rest import RestServer

    settings = settings or load_settings(environ=environ)
    return RestServer(ModelServer.build(settings, environ)).create_application()


def create_lazy_app(settings: Settings | None = None, environ: dict[str, str] | None = None) -> LazyApp:
    """``create_app`` for a server process: lifespan and probes at once, the FastAPI app built after ready
    (``runtime.http.lazy``); raises StartupError / AuthConfigError when it must not start."""
    settings = settings or load_settings(environ=environ)
    server = ModelServer.build(settings, environ)
    serving = server.serving()

    def build() -> FastAPI:
        from runtime.http.rest import RestServer

        return RestServer(server, serving).create_application()

    return LazyApp(server, serving, build)


def create_app_from_env() -> LazyApp:
    """uvicorn factory (``runtime.http.app:create_app_from_env``): settings from runtime.json + MLDEPLOY_* env.

    With ``workers > 1`` uvicorn *spawns* each worker: ``runtime.__main__`` (which sets logging up) does not run
    there, so a process whose root logger has no handler yet sets it up here (else its JSON logs, access lines
    included, are dropped)."""
    import logging

    settings = load_settings(environ=dict(os.environ))
    if not logging.getLogger().handlers:
        from runtime.telemetry import setup_logging

        setup_logging(settings.log_level)
    return create_lazy_app(settings)
