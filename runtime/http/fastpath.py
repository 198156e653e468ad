"""The predict fast paths: native predict routes served without FastAPI's routing and dependency resolution.

Two layers, both answering ``POST /predict``, ``POST /v1/models/{name}/predict`` and
``POST /v1/models/{name}/versions/{version}/predict`` with the same data plane, guard, exception handlers and
serving bookkeeping (``runtime.http.middleware.Serving``) as the FastAPI routes:

* ``PredictFront`` — a raw ASGI app in front of the whole Starlette stack (``ServingApp.__call__``). It takes the
  common case: a JSON or raw-tensor body with a ``Content-Length`` within ``max_body_bytes``, headers within
  ``max_header_bytes``, no root path, and no ``Origin`` header while CORS is on. One pass over the headers reads
  everything the request needs; the answer goes out with precomputed header lists — in one socket write under
  ``python -m runtime`` (``runtime.http.onewrite``); no Starlette ``Request``, ``Response`` or middleware is built
  unless an error is answered (by the app's own exception handlers, with the same headers the serving middleware
  adds). An unexpected exception gets the JSON 500 and is re-raised, as Starlette's ``ServerErrorMiddleware``
  does. It also answers the Open Inference Protocol v2 inference routes (``POST /v2/models/{name}[/versions/
  {version}]/infer``: a JSON body up to 64 KiB, or a JSON header + binary tensors) as ``V2Endpoints`` does —
  same decoder, answer, ``{"error": …}`` errors and metrics label.
* ``PredictFastPath`` — the innermost middleware, for every other predict request (multipart and image uploads,
  streamed ``.npy``, chunked bodies, 413/431 refusals, CORS): after the serving middleware and CORS, it skips
  ``ExceptionMiddleware``, the exit-stack middleware, route matching, ``request_response`` and
  ``solve_dependencies``.

Everything else — other methods and paths (405, 404, trailing-slash redirects), the protocol routes, ``/docs`` —
goes on to the FastAPI router. The routes stay registered on the router, so ``/openapi.json`` is unchanged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from itertools import chain
from typing import Any

import orjson
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.batching import Batcher
from runtime.dataplane import BIG_ROWS, JSON, NPY, InferenceService, Prediction, is_json
from runtime.http.middleware import RID_RE, Serving, new_request_id, route_label
from runtime.http.protocols.v2 import BIG_JSON, HEADER_LENGTH, STATE_KEY, V2Endpoints, encode_response
from runtime.http.routes import Endpoints, npy_bytes
from runtime.http.security import Guard
from runtime.inputs import PayloadTooLargeError

Endpoint = Callable[..., Awaitable[Response]]
Handlers = Callable[[], dict[Any, Callable[..., Any]]]
_OCTET = "application/octet-stream"
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_STORE = (b"cache-control", b"no-store")
_CLOSE = (b"connection", b"close")
_NPY = NPY.encode()
_ONE_WRITE = "mldeploy.one_write"  # runtime.http.onewrite.EXTENSION (not imported: uvicorn stays out of the app)
_HEADER_LENGTH = HEADER_LENGTH.encode()
_ROUTES = {"predict": "/predict", "predict_named": "/v1/models/{name}/predict",
           "predict_version": "/v1/models/{name}/versions/{version}/predict",
           # the serving middleware's label for the v2 paths (runtime.http.middleware.route_label)
           "infer": route_label("/v2/models/{name}/infer"),
           "infer_version": route_label("/v2/models/{name}/versions/{version}/infer")}
_V2 = frozenset({"infer", "infer_version"})


def match(path: str) -> tuple[str, str | None, str | None] | None:
    """(endpoint name, ``{name}``, ``{version}``) for a native predict path, or None. ``{name}``/``{version}``: one
    non-empty segment, as Starlette's ``str`` convertor."""
    if path == "/predict":
        return "predict", None, None
    if not path.startswith("/v1/models/") or not path.endswith("/predict"):
        return None
    parts = path.split("/")  # "", "v1", "models", name, ["versions", version,] "predict"
    if len(parts) == 5 and parts[3]:
        return "predict_named", parts[3], None
    if len(parts) == 7 and parts[4] == "versions" and parts[3] and parts[5]:
        return "predict_version", parts[3], parts[5]
    return None


def match_v2(path: str) -> tuple[str, str, str | None] | None:
    """(endpoint name, ``{name}``, ``{version}``) for an Open Inference Protocol v2 inference path
    (``/v2/models/{name}[/versions/{version}]/infer``), or None."""
    if not path.startswith("/v2/models/") or not path.endswith("/infer"):
        return None
    parts = path.split("/")  # "", "v2", "models", name, ["versions", version,] "infer"
    if len(parts) == 5 and parts[3]:
        return "infer", parts[3], None
    if len(parts) == 7 and parts[4] == "versions" and parts[3] and parts[5]:
        return "infer_version", parts[3], parts[5]
    return None


def pick_handler(handlers: dict[Any, Callable[..., Any]], exc: Exception) -> Callable[..., Any] | None:
    """The handler Starlette's ExceptionMiddleware would pick (status code for HTTPException, else the nearest
    class in the MRO); ``handlers`` holds no catch-all ``Exception``/500 entry (ServerErrorMiddleware's)."""
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


class _RouteErrors:
    """The app's exception handlers as the router would apply them, read at the first error (every handler is
    registered by then): :func:`pick_handler` over them without the catch-all ``Exception``/500 entry."""

    def __init__(self, exception_handlers: Handlers) -> None:
        self._exception_handlers = exception_handlers
        self._handlers: dict[Any, Callable[..., Any]] | None = None

    def handler(self, exc: Exception) -> Callable[..., Any] | None:
        handlers = self._handlers
        if handlers is None:
            handlers = self._handlers = {k: v for k, v in self._exception_handlers().items()
                                         if k not in (Exception, 500)}
        return pick_handler(handlers, exc)


class _Headers:
    """Read-only ``get`` over a request's headers (lower-case names, each sent once), as Starlette's ``Headers``."""

    __slots__ = ("h",)

    def __init__(self, h: dict[bytes, bytes]) -> None:
        self.h = h

    def get(self, key: str, default: str | None = None) -> str | None:
        value = self.h.get(key.lower().encode("latin-1"))
        return default if value is None else value.decode("latin-1")


async def _coroutine() -> None:
    pass


_c = _coroutine()
_Coroutine = type(_c)
_c.close()


class _Resumed:
    """Awaits the rest of a coroutine already stepped once by hand (``coro.send(None)`` gave ``blocked``): what
    ``await coro`` would have done from there — the task waits on ``blocked``, then the coroutine goes on; anything
    thrown in (a cancellation, the timeout) is thrown into it."""

    __slots__ = ("blocked", "coro")

    def __init__(self, coro: Any, blocked: Any) -> None:
        self.coro, self.blocked = coro, blocked

    def __await__(self) -> Any:
        coro, step = self.coro, self.blocked
        while True:
            try:
                yield step
            except BaseException as e:  # noqa: BLE001 - forwarded, as ``await`` forwards it
                try:
                    step = coro.throw(e)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    step = coro.send(None)
                except StopIteration as done:
                    return done.value


class _GuardRequest:
    """What ``Guard.check`` reads of a request (its scope, and its state for the X-RateLimit-* headers), without
    building a Starlette ``Request``."""

    __slots__ = ("scope",)

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    @property
    def state(self) -> State:
        return State(self.scope["state"])


class PredictFront:
    """The raw ASGI front of the app (see the module docstring); ``app`` is the whole Starlette stack."""

    def __init__(self, app: ASGIApp, dataplane: InferenceService, guard: Guard, serving: Serving,
                 exception_handlers: Handlers, max_body_bytes: int, max_header_bytes: int, cors: bool,
                 v2: V2Endpoints | None = None) -> None:
        self.app = app
        self.dataplane = dataplane
        self.v2 = v2  # the v2 endpoints: their inference routes are answered here as well
        self.name = dataplane.name
        self.max_response_bytes = dataplane.settings.max_response_bytes
        self.guard = guard if guard.active else None
        self.api_key_mode = guard.auth.mode == "api_key"
        self.auth_on = guard.auth.enabled
        self.keys_only = self.api_key_mode and guard.limiter is None  # API keys and no rate limit
        self.serving = serving
        self._exception_handlers = exception_handlers
        self._errors = _RouteErrors(exception_handlers)
        self.limit = max_body_bytes
        self.timeout = dataplane.settings.request_timeout_s
        self.max_header_bytes = max_header_bytes
        self.cors = cors
        self._static: dict[tuple[str, str], list[tuple[bytes, bytes]]] = {}  # (version, ctype) -> headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path = scope["path"]
            found = match(path) or (match_v2(path) if self.v2 is not None else None)
            if found is not None and await self._serve(scope, receive, send, *found):
                return
        await self.app(scope, receive, send)

    def _answer_headers(self, version: str, ctype: str) -> list[tuple[bytes, bytes]]:
        static = self._static.get((version, ctype))
        if static is None:
            static = self._static[(version, ctype)] = [
                (b"content-type", ctype.encode()), (b"x-model-version", version.encode("latin-1")), _NO_STORE,
                _NOSNIFF]
        return static

    async def _serve(self, scope: Scope, receive: Receive, send: Send, endpoint: str, name: str | None,
                     version: str | None) -> bool:
        """Answer the request and return True, or return False (nothing read or sent) to leave it to the stack."""
        t0 = time.perf_counter()
        raw = scope["headers"]
        h = dict(raw)
        if len(h) != len(raw):
            return False  # a header name sent twice: the stack's own first/last-wins reading of each
        length = h.get(b"content-length")
        if (length is None or not length.isdigit() or int(length) > self.limit or (self.cors and b"origin" in h)
                or sum(map(len, chain.from_iterable(raw))) > self.max_header_bytes):
            return False  # chunked body, 413, 431, CORS: the serving middleware and CORS handle those
        v2 = endpoint in _V2
        if v2:  # the v2 decoder reads any Content-Type (JSON, or a JSON header + tensors after it)
            media = JSON
            if int(length) > BIG_JSON and _HEADER_LENGTH not in h:
                return False  # a large JSON body: the route decodes it off the event loop
        else:
            ctype = h.get(b"content-type")
            media = JSON if ctype is None else ctype.decode("latin-1").split(";", 1)[0].strip().lower()
            if media != _OCTET and not is_json(media):
                return False  # multipart, images, streamed .npy, 415: the data plane's request decoder
        rid = h.get(b"x-request-id")
        if rid is not None and not RID_RE.match(rid):
            rid = None
        rid_b = rid or new_request_id()
        rid_s = rid_b.decode()
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state["request_id"] = rid_s
        serving = self.serving
        serving.in_flight += 1
        status = 500
        started = False
        try:
            try:
                rl_headers = self._guard(scope, h) if self.guard is not None else None
                headers = _Headers(h)
                if v2:
                    out, payload = await self._infer(scope, receive, state, headers, name, version, t0)
                    out += [(b"x-request-id", rid_b), _NOSNIFF]
                else:
                    dp = self.dataplane
                    chosen, mv = dp.select(headers, state, name, version)
                    body = await self._body(receive, mv.batcher, t0, chosen)
                    p = await dp.predict_body(body, media, headers, chosen, mv, scope["query_string"], t0)
                    state["prediction"] = p
                    accept = h.get(b"accept")
                    npy = accept is not None and _NPY in accept
                    if p.rows > BIG_ROWS:
                        payload = await asyncio.to_thread(self._encode, p, rid_s, npy)
                    else:
                        payload = self._encode(p, rid_s, npy)
                    out = self._answer_headers(p.version, NPY if npy else JSON) + [
                        (b"content-length", b"%d" % len(payload)), (b"x-request-id", rid_b)]
                if rl_headers:
                    out += [(k.lower().encode(), v.encode()) for k, v in rl_headers.items()]
                if serving.drain.active:
                    out.append(_CLOSE)
                status = 200
                started = True
                start = {"type": "http.response.start", "status": 200, "headers": out}
                answer = {"type": "http.response.body", "body": payload}
                extensions = scope.get("extensions")
                one_write = extensions.get(_ONE_WRITE) if extensions else None
                if one_write is not None:  # runtime.http.onewrite: head and body in one socket write
                    await one_write(send, start, answer)
                else:
                    await send(start)
                    await send(answer)
            except Exception as exc:
                if started:
                    raise
                request = Request(scope, receive, send)
                handler = self._errors.handler(exc)
                if handler is None:  # as ServerErrorMiddleware: the JSON 500 (its own headers), then re-raise
                    started = True
                    await (await self._exception_handlers()[Exception](request, exc))(scope, receive, send)
                    raise
                response = await handler(request, exc)
                status = response.status_code
                started = True
                await response(scope, receive, self._decorating(send, rid_b))
        finally:
            serving.in_flight -= 1
            serving.record(scope, _ROUTES[endpoint], status, time.perf_counter() - t0, rid_s)
        return True

    async def _infer(self, scope: Scope, receive: Receive, state: dict[str, Any], headers: _Headers, name: str,
                     version: str | None, t0: float) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """A v2 inference (as ``V2Endpoints._infer``): the answer's headers (without the request id) and body."""
        dp = self.v2.dataplane  # type: ignore[union-attr]
        chosen, mv = dp.select(headers, state, name, version)
        body = await self._body(receive, mv.batcher, t0, chosen)
        p, req = await dp.infer_body(body, headers, chosen, mv, scope["query_string"], t0)
        state[STATE_KEY] = req
        state["prediction"] = p
        if p.rows > BIG_ROWS:
            payload, content = await asyncio.to_thread(encode_response, p, req, name, self.max_response_bytes)
        else:
            payload, content = encode_response(p, req, name, self.max_response_bytes)
        out = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in content.items()]
        out += [(b"x-model-version", p.version.encode("latin-1")), _NO_STORE,
                (b"content-length", b"%d" % len(payload))]
        return out, payload

    def _guard(self, scope: Scope, h: dict[bytes, bytes]) -> dict[str, str] | None:
        """``Guard.check`` with the credentials read as its security schemes read them; the X-RateLimit-*
        headers for the answer (None without a rate limit)."""
        bearer = None
        authorization = h.get(b"authorization")
        if authorization and self.auth_on:  # fastapi.security.HTTPBearer(auto_error=False)
            scheme, _, credentials = authorization.decode("latin-1").partition(" ")
            credentials = credentials.strip()
            if scheme and credentials and scheme.lower() == "bearer":
                bearer = credentials
        api_key = h.get(b"x-api-key") if self.api_key_mode else None
        key = (api_key.decode("latin-1") or None) if api_key is not None else None
        guard = self.guard
        if key is not None and self.keys_only:  # the common request: a configured key, no rate limit
            failures = guard.failures  # type: ignore[union-attr]
            if (failures is None or not failures.blocked) and guard.auth.known_key(key) is not None:  # type: ignore[union-attr]
                return None
        guard.check(_GuardRequest(scope), key, bearer)  # type: ignore[arg-type,union-attr]
        return scope["state"].get("rate_limit_headers")

    async def _body(self, receive: Receive, batcher: Batcher, t0: float, chosen: str) -> bytes:
        """The whole body. Usually it is there already (uvicorn starts the app once the headers are parsed, and a
        small body comes in the same read): ``receive()`` then completes without suspending and costs no timer.
        Otherwise the rest is read within ``request_timeout_s`` of ``t0`` (504 past it, as the data plane's request
        decoder), counted as arriving at the version's batcher meanwhile (it waits for requests being read)."""
        pending = receive()
        if type(pending) is _Coroutine:
            try:
                blocked = pending.send(None)  # one step, as ``await`` would take it
            except StopIteration as done:
                message = done.value
                if message["type"] == "http.request" and not message.get("more_body", False):
                    return message.get("body", b"")
                return await self._body_rest(receive, batcher, t0, chosen, message)
            return await self._body_rest(receive, batcher, t0, chosen, _Resumed(pending, blocked))
        return await self._body_rest(receive, batcher, t0, chosen, pending)

    async def _body_rest(self, receive: Receive, batcher: Batcher, t0: float, chosen: str, first: Any) -> bytes:
        """The body from ``first`` (a message, or an awaitable of one) and the following messages, timed."""
        batcher.arriving += 1
        try:
            async with asyncio.timeout(self.timeout - (time.perf_counter() - t0)):
                message = first if isinstance(first, dict) else await first
                chunks = []
                while True:
                    if message["type"] != "http.request":
                        raise ClientDisconnect
                    chunks.append(message.get("body", b""))
                    if not message.get("more_body", False):
                        return b"".join(chunks)
                    message = await receive()
        except TimeoutError as e:
            raise self.dataplane.failed(e, chosen) from None
        finally:
            batcher.arriving -= 1

    def _encode(self, p: Prediction, rid: str, npy: bool) -> bytes:
        """The answer's body (as ``Endpoints._body``): JSON with the request id, model and version, or .npy."""
        if npy:
            body = npy_bytes(p.primary())
        else:
            doc = {"request_id": rid, "model": self.name, "version": p.version, **p.fields}
            body = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
        if len(body) > self.max_response_bytes:  # backstop: the row limit already accounts for the answer size
            raise PayloadTooLargeError(f"the answer would be {len(body)} bytes, above max_response_bytes "
                                       f"({self.max_response_bytes}): send fewer rows")
        return body

    def _decorating(self, send: Send, rid: bytes) -> Send:
        serving = self.serving

        async def wrapped(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": serving.decorate(message.get("headers", ()), rid)}
            await send(message)

        return wrapped


class PredictFastPath:
    """The innermost middleware (see the module docstring)."""

    def __init__(self, app: ASGIApp, endpoints: Endpoints, guard: Guard, exception_handlers: Handlers) -> None:
        self.app = app
        self.endpoints = endpoints
        self.guard = guard if guard.active else None
        self._errors = _RouteErrors(exception_handlers)

    def match(self, path: str) -> tuple[Endpoint, dict[str, str]] | None:
        """The endpoint and path parameters for ``path``, or None."""
        found = match(path)
        if found is None:
            return None
        endpoint, name, version = found
        params = {"name": name, "version": version} if version else {"name": name} if name else {}
        return getattr(self.endpoints, endpoint), params

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
            handler = self._errors.handler(exc)
            if handler is None:
                raise  # to ServerErrorMiddleware, as from the router
            response = await handler(request, exc)
        await response(scope, receive, send)
