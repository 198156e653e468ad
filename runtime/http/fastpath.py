"""A pure-ASGI fast path for the native predict routes, without FastAPI's routing and dependency resolution.

``POST /predict``, ``POST /v1/models/{name}/predict`` and ``POST /v1/models/{name}/versions/{version}/predict``
are answered here, by the same ``Endpoints`` methods the FastAPI routes call, after the same guard (auth + rate
limit, credentials read as the routes' security schemes read them) and with the exceptions turned into responses
by the app's own exception handlers. Everything else — other methods and paths (405, 404, trailing-slash
redirects), the protocol routes, ``/docs`` — goes on to the FastAPI router. The routes stay registered on the
router, so ``/openapi.json`` is unchanged.

It is the innermost middleware: the serving middleware (request id, limits, metrics, access log), CORS and
Starlette's ``ServerErrorMiddleware`` (unexpected exceptions → the JSON 500) wrap it as they wrap the router.
Skipped: ``ExceptionMiddleware``, the exit-stack middleware, route matching, ``request_response`` and
``solve_dependencies`` — about half of the Python calls of a request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.http.routes import Endpoints
from runtime.http.security import Guard

Endpoint = Callable[..., Awaitable[Response]]


class PredictFastPath:
    def __init__(self, app: ASGIApp, endpoints: Endpoints, guard: Guard,
                 exception_handlers: Callable[[], dict[Any, Callable[..., Any]]]) -> None:
        self.app = app
        self.endpoints = endpoints
        self.guard = guard if guard.active else None
        self._exception_handlers = exception_handlers  # read at the first error: every handler is registered then
        self._handlers: dict[Any, Callable[..., Any]] | None = None

    def match(self, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        """The endpoint and path parameters for ``path`` (``{name}``/``{version}``: one non-empty segment, as
        Starlette's ``str`` convertor), or None."""
        if path == "/predict":
            return self.endpoints.predict, {}
        if not path.startswith("/v1/models/") or not path.endswith("/predict"):
            return None
        parts = path.split("/")  # "", "v1", "models", name, ["versions", version,] "predict"
        if len(parts) == 5 and parts[3]:
            return self.endpoints.predict_named, {"name": parts[3]}
        if len(parts) == 7 and parts[4] == "versions" and parts[3] and parts[5]:
            return self.endpoints.predict_version, {"name": parts[3], "version": parts[5]}
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            found = self.match(scope["path"])
            if found is not None:
                await self._serve(scope, receive, send, *found)
                return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint,
                     params: dict[str, str]) -> None:
        scope["path_params"] = params
        request = Request(scope, receive, send)
        try:
            if self.guard is not None:
                self.guard.check_request(request)
            response = await endpoint(request, **params)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise  # to ServerErrorMiddleware, as from the router
            response = await handler(request, exc)
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Callable[..., Any] | None:
        """The handler Starlette's ExceptionMiddleware would pick (status code for HTTPException, else the
        nearest class in the MRO); None for the catch-all ``Exception``/500 handler, which is not its."""
        handlers = self._handlers
        if handlers is None:
            handlers = self._handlers = {k: v for k, v in self._exception_handlers().items()
                                         if k not in (Exception, 500)}
        if isinstance(exc, HTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in handlers:
                return handlers[cls]
        return None
