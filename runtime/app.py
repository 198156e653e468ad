"""``create_app(settings)``: the FastAPI app serving one or several model versions.

The hot path avoids per-request pydantic models: bodies are parsed with orjson/numpy and answered with orjson
bytes; middleware is pure ASGI. Inference runs in each version's batcher thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from runtime import lifecycle
from runtime.auth import Authenticator, AuthError
from runtime.batching import Batcher, InferenceError, QueueFullError
from runtime.inputs import InputError, InputSpec, decode_image, images_to_inputs, parse_json, parse_npy, parse_raw
from runtime.loaders import load_model
from runtime.logs import EmfAggregator
from runtime.manifest import MANIFEST_FILE, Manifest
from runtime.metrics import DriftTracker, Metrics
from runtime.openapi import request_body, responses
from runtime.outputs import OutputFormatter
from runtime.ratelimit import RateLimiter
from runtime.routing import Router, UnknownVersionError
from runtime.settings import ROUTING_FILE, Settings, inference_threads, load_settings

log = logging.getLogger("mldeploy.server")
access = logging.getLogger("mldeploy.access")
_JSON = "application/json"
_NPY = "application/x-npy"
_BIG_JSON = 64 * 1024


class StartupError(Exception):
    """The server cannot start (missing/invalid model folder); the message names the path."""


class HTTPError(Exception):
    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        self.status, self.detail, self.headers = status, detail, headers or {}


@dataclass
class ModelVersion:
    manifest: Manifest
    folder: Path
    spec: InputSpec
    formatter: OutputFormatter
    batcher: Batcher | None = None
    drift: DriftTracker | None = None
    load_seconds: float = 0.0


def discover(settings: Settings) -> tuple[dict[str, ModelVersion], Path | None]:
    """Artifact folders → versions (manifests only; weights load at startup)."""
    if settings.models_dir:
        root = Path(settings.models_dir)
        if not root.is_dir():
            raise StartupError(f"MLDEPLOY_MODELS_DIR {root} is not a directory")
        folders = sorted(p for p in root.iterdir() if (p / MANIFEST_FILE).is_file())
        if not folders:
            raise StartupError(f"{root}: no sub-folder contains a {MANIFEST_FILE} (one folder per model version)")
        routing = root / ROUTING_FILE
    else:
        folders, routing = [Path(settings.model_dir or "")], None
    versions: dict[str, ModelVersion] = {}
    names = set()
    for folder in folders:
        try:
            m = Manifest.load(folder)
        except FileNotFoundError:
            raise StartupError(f"{folder}: no {MANIFEST_FILE}; point MLDEPLOY_MODEL_DIR at a `mldeploy package` "
                               "output folder") from None
        except ValueError as e:
            raise StartupError(f"{folder / MANIFEST_FILE}: invalid manifest: {e}") from None
        if m.version in versions:
            raise StartupError(f"{folder}: version {m.version} is also in {versions[m.version].folder}")
        names.add(m.name)
        versions[m.version] = ModelVersion(m, folder, InputSpec(m), OutputFormatter(m, settings.top_k))
    if len(names) > 1:
        raise StartupError(f"versions in {settings.models_dir} belong to different models: {sorted(names)}")
    return versions, routing


def _warmup_inputs(mv: ModelVersion) -> dict[str, np.ndarray]:
    m = mv.manifest
    if m.sample_input and all(t.name in m.sample_input for t in m.inputs):
        with contextlib.suppress(InputError, ValueError, TypeError):
            return {t.name: mv.spec.check(t.name, np.asarray(m.sample_input[t.name]), ["sample_input"])[:1]
                    for t in m.inputs}
    return {t.name: np.zeros([1] + [d if d not in (None, -1) else 1 for d in t.shape[1:]], mv.spec.dtypes[t.name])
            for t in m.inputs}


class Server:
    """State shared by the routes: versions, router, auth, limiter, metrics."""

    def __init__(self, settings: Settings, environ: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.versions, routing_file = discover(settings)
        self.name = next(iter(self.versions.values())).manifest.name
        self.router = Router(list(self.versions), routing_file)
        self.auth = Authenticator(settings.auth, environ)  # raises AuthConfigError: refuse to start
        self.limiter = RateLimiter(settings.rate_limit.limit) if settings.rate_limit.enabled else None
        self.metrics = Metrics()
        self.emf = EmfAggregator(settings.emf_namespace, self.name, settings.low_confidence_threshold)
        self.ready = False
        self._emf_task: asyncio.Task | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def _load(self, mv: ModelVersion, threads: int) -> None:
        t0 = time.perf_counter()
        model = load_model(mv.manifest, mv.folder, threads)
        s = self.settings
        m = mv.manifest
        if m.baseline and len(m.inputs) == 1 and len(m.inputs[0].shape) == 2:
            names = m.feature_names or [f"f{i}" for i in range(len(m.baseline.mean))]
            mv.drift = DriftTracker(self.metrics, m.version, names, m.baseline.mean, m.baseline.std)
        elif len(m.inputs) == 1 and len(m.inputs[0].shape) == 2 and m.feature_names:
            mv.drift = DriftTracker(self.metrics, m.version, m.feature_names, None, None)
        mv.batcher = Batcher(
            model,
            max_batch_size=s.batching.max_batch_size if s.batching.enabled else 1,
            max_wait_ms=s.batching.max_wait_ms if s.batching.enabled else 0.0,
            max_queue=s.max_queue,
            after_batch=self._after_batch(mv),
            name=m.version,
        )
        mv.batcher.predict_sync(_warmup_inputs(mv))  # warm-up: one inference before reporting ready
        mv.load_seconds = time.perf_counter() - t0
        self.metrics.load_seconds.labels(m.version).set(mv.load_seconds)
        log.info("loaded %s %s (%s) in %.3fs", m.name, m.version, m.format, mv.load_seconds,
                 extra={"version": m.version, "threads": threads})

    def _after_batch(self, mv: ModelVersion):
        metrics, version, input_name = self.metrics, mv.manifest.version, mv.manifest.inputs[0].name
        batch_hist = metrics.batch_size.labels(version)
        infer_hist = metrics.inference.labels(version)

        def after(inputs, outputs, rows: int, seconds: float) -> None:  # runs in the inference thread
            batch_hist.observe(rows)
            infer_hist.observe(seconds)
            if mv.drift is not None:
                mv.drift.update(inputs[input_name])

        return after

    async def startup(self) -> None:
        threads = inference_threads(self.settings)
        for mv in self.versions.values():
            await asyncio.to_thread(self._load, mv, threads)
            mv.batcher.start()
        self._emf_task = asyncio.get_running_loop().create_task(self._emf_loop())
        lifecycle.install_drain_handler()
        self.ready = True
        self.metrics.ready.set(1)

    async def shutdown(self) -> None:
        self.ready = False
        self.metrics.ready.set(0)
        for mv in self.versions.values():
            if mv.batcher:
                await mv.batcher.stop(timeout=self.settings.drain_timeout_s)
        if self._emf_task:
            self._emf_task.cancel()
        self.emf.flush()
        for mv in self.versions.values():
            if mv.drift:
                mv.drift.publish()
        log.info("stopped")

    async def _emf_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.emf_interval_s)
            await asyncio.to_thread(self.emf.flush)

    @property
    def is_ready(self) -> bool:
        return self.ready and not lifecycle.DRAINING.is_set()

    # -- request path ------------------------------------------------------------------------------------------
    def guard(self, request: Request) -> dict[str, str]:
        """Auth + rate limit; returns headers for the response (X-RateLimit-*)."""
        try:
            principal = self.auth.authenticate(request.headers)
        except AuthError as e:
            self.metrics.rejected.labels("auth").inc()
            raise HTTPError(401, str(e), {"WWW-Authenticate": "Bearer"}) from None
        if self.limiter is None:
            return {}
        key = principal or ("ip:" + (request.client.host if request.client else "?"))
        allowed, headers = self.limiter.check(key)
        if not allowed:
            self.metrics.rejected.labels("rate_limit").inc()
            raise HTTPError(429, f"rate limit {self.settings.rate_limit.limit} exceeded", headers)
        return headers

    async def parse(self, request: Request, mv: ModelVersion) -> dict[str, np.ndarray]:
        ctype = request.headers.get("content-type", _JSON).split(";", 1)[0].strip().lower()
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
        if ctype in (_JSON, "text/json") or ctype.endswith("+json"):
            if len(body) > _BIG_JSON:  # nested-list tensors: parse off the event loop
                return await asyncio.to_thread(parse_json, body, mv.spec)
            return parse_json(body, mv.spec)
        if ctype == _NPY:
            return parse_npy(body, mv.spec)
        if ctype == "application/octet-stream":
            return parse_raw(body, request.headers, mv.spec)
        if ctype in ("image/jpeg", "image/png"):
            image = await asyncio.to_thread(decode_image, body, mv.spec, ["body"])
            return images_to_inputs([image], mv.spec)
        raise HTTPError(415, f"unsupported Content-Type {ctype!r}; use application/json, application/x-npy, "
                             "application/octet-stream, multipart/form-data or image/jpeg|png")

    async def predict(self, request: Request, name: str | None = None, version: str | None = None) -> Response:
        headers = self.guard(request)
        if name is not None and name != self.name:
            raise HTTPError(404, f"model {name!r} is not served here; this server serves {self.name!r}")
        try:
            chosen = self.router.choose(request.headers, pinned=version)
        except UnknownVersionError as e:
            raise HTTPError(404, str(e)) from None
        request.scope["mldeploy_version"] = chosen
        mv = self.versions[chosen]
        batcher = mv.batcher
        if batcher is None or not self.ready:
            raise HTTPError(503, "model is loading", {"Retry-After": "1"})
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                batcher.arriving += 1
                try:
                    inputs = await self.parse(request, mv)
                finally:
                    batcher.arriving -= 1
                self.metrics.queue_depth.labels(chosen).set(batcher.depth)
                outputs = await batcher.submit(inputs)
        except InputError as e:
            raise HTTPError(422, e.detail()) from None
        except QueueFullError:
            self.metrics.rejected.labels("queue_full").inc()
            raise HTTPError(503, f"server busy: {self.settings.max_queue} requests queued", {"Retry-After": "1"}) \
                from None
        except TimeoutError:
            self.metrics.rejected.labels("timeout").inc()
            raise HTTPError(504, f"inference did not finish within {self.settings.request_timeout_s}s") from None
        except InferenceError as e:
            log.error("inference failed: %s", e, extra={"version": chosen})
            raise HTTPError(500, f"the model failed on this input: {e}") from None
        top_k = request.query_params.get("top_k")
        try:
            k = int(top_k) if top_k else None
        except ValueError:
            raise HTTPError(422, [{"loc": ["query", "top_k"], "msg": "must be an integer"}]) from None
        fields, confidence = mv.formatter.format(outputs, k)
        if confidence is not None:
            conf = confidence.tolist()
            hist = self.metrics.confidence.labels(chosen)
            for c in conf:
                hist.observe(c)
            low = sum(c < self.settings.low_confidence_threshold for c in conf)
            if low:
                self.metrics.low_confidence.labels(chosen).inc(low)
            self.emf.confidences(chosen, conf)
        headers["X-Model-Version"] = chosen
        if _NPY in request.headers.get("accept", ""):
            buf = _npy_bytes(mv.formatter.primary(outputs))
            return Response(buf, media_type=_NPY, headers=headers)
        doc = {"request_id": request.scope.get("mldeploy_rid"), "model": self.name, "version": chosen, **fields}
        return Response(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), media_type=_JSON, headers=headers)

    def models_doc(self) -> dict[str, Any]:
        weights = self.router.weights
        out = []
        for v, mv in self.versions.items():
            m = mv.manifest
            doc = m.model_dump(mode="json", exclude={"sample_input"})
            doc.update(weight=weights.get(v, 0), load_seconds=round(mv.load_seconds, 4),
                       drift=mv.drift.stats() if mv.drift else None)
            out.append(doc)
        return {"name": self.name, "models": out, "sticky_header": self.router.sticky_header}


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _json(status: int, doc: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=_JSON, headers=headers)


def create_app(settings: Settings | None = None, environ: dict[str, str] | None = None) -> FastAPI:
    """Build the app; raises StartupError / AuthConfigError when it must not start."""
    from runtime.middleware import ServingMiddleware

    settings = settings or load_settings(environ=environ)
    server = Server(settings, environ)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await server.startup()
        try:
            yield
        finally:
            await server.shutdown()

    latest = server.versions[server.router.versions[-1]].manifest
    app = FastAPI(
        title=f"{server.name} (mldeploy)", version=latest.version, lifespan=lifespan,
        description=f"{latest.task} model served by mldeploy; versions: {', '.join(server.router.versions)}",
        default_response_class=Response,
    )
    app.state.server = server
    extra = {"requestBody": request_body(latest), "responses": responses(latest)}

    @app.exception_handler(HTTPError)
    async def _http_error(request: Request, exc: HTTPError) -> Response:
        return _json(exc.status, {"detail": exc.detail, "request_id": request.scope.get("mldeploy_rid")},
                     exc.headers)

    @app.post("/predict", openapi_extra=extra, tags=["inference"], summary="Predict (weighted version routing)")
    async def predict(request: Request) -> Response:
        return await server.predict(request)

    @app.post("/v1/models/{name}/predict", openapi_extra=extra, tags=["inference"])
    async def predict_named(request: Request, name: str) -> Response:
        return await server.predict(request, name=name)

    @app.post("/v1/models/{name}/versions/{version}/predict", openapi_extra=extra, tags=["inference"])
    async def predict_version(request: Request, name: str, version: str) -> Response:
        return await server.predict(request, name=name, version=version)

    @app.get("/v1/models", tags=["metadata"], summary="Manifest metadata, routing weights and drift")
    async def models(request: Request) -> Response:
        server.guard(request)
        return _json(200, server.models_doc())

    @app.get("/health", tags=["probes"], summary="Liveness")
    async def health() -> Response:
        return _json(200, {"status": "ok"})

    @app.get("/ready", tags=["probes"], summary="Readiness: loaded, warmed and not draining")
    async def ready() -> Response:
        ok = server.is_ready
        doc = {"ready": ok, "draining": lifecycle.DRAINING.is_set(), "versions": server.router.versions}
        return _json(200 if ok else 503, doc)

    @app.get("/metrics", tags=["probes"], summary="Prometheus metrics")
    async def metrics() -> Response:
        for mv in server.versions.values():
            if mv.batcher:
                server.metrics.queue_depth.labels(mv.manifest.version).set(mv.batcher.depth)
        return Response(server.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    if settings.cors.allow_origins:
        from starlette.middleware.cors import CORSMiddleware

        c = settings.cors
        app.add_middleware(CORSMiddleware, allow_origins=c.allow_origins, allow_methods=c.allow_methods,
                           allow_headers=c.allow_headers, allow_credentials=c.allow_credentials,
                           expose_headers=["X-Request-ID", "X-Model-Version", "X-RateLimit-Remaining"])
    app.add_middleware(ServingMiddleware, server=server)
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory (``runtime.app:create_app_from_env``): settings from runtime.json + MLDEPLOY_* env."""
    return create_app(load_settings(environ=dict(os.environ)))
