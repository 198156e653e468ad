"""The standard protocols' error format, ``{"error": "<message>"}``, on their paths; native paths keep ``detail``.

``protocol_handlers`` wraps the app's exception handlers: the native handler picks the status, headers and the
(safe) message; on a protocol path the body is rewritten, and 415/422 become the protocols' 400.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[..., Awaitable[Response]]
JSON = "application/json"
_AS_BAD_REQUEST = {415: 400, 422: 400}
_DROP = frozenset({"content-length", "content-type"})


def speaks_protocol(path: str) -> bool:
    """True on Open Inference Protocol (``/v2…``) and KServe V1 (``/v1/models/{name}[:verb]``) paths."""
    if path == "/v2" or path.startswith("/v2/"):
        return True
    return path.startswith("/v1/models/") and ("/" not in path[11:] and path[11:] != "")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A protocol error: ``{"error": message}``."""
    return Response(orjson.dumps({"error": message}), status_code=status, media_type=JSON, headers=headers)


def _message(detail: Any) -> str:
    if isinstance(detail, list):  # InputError: [{"loc": [...], "msg": ...}]
        return "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', '')}" if isinstance(d, dict)
                         else str(d) for d in detail)
    return str(detail)


def as_protocol_error(response: Response) -> Response:
    """A native ``{"detail": …}`` error response → the protocol's ``{"error": …}`` with the same headers."""
    try:
        detail = orjson.loads(response.body).get("detail", "")
    except (orjson.JSONDecodeError, AttributeError):
        detail = response.body.decode("utf-8", "replace")
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _DROP}
    status = _AS_BAD_REQUEST.get(response.status_code, response.status_code)
    return error_response(status, _message(detail), headers)


_OPENAI_PATHS = frozenset({"/v1/embeddings"})
_OPENAI_TYPES = {400: ("invalid_request_error", None), 401: ("invalid_request_error", "invalid_api_key"),
                 404: ("invalid_request_error", "model_not_found"), 413: ("invalid_request_error", "too_large"),
                 429: ("rate_limit_error", "rate_limit_exceeded")}


def openai_error(response: Response) -> Response:
    """A native ``{"detail": …}`` error → OpenAI's ``{"error": {"message", "type", "param", "code"}}``."""
    try:
        detail = orjson.loads(response.body).get("detail", "")
    except (orjson.JSONDecodeError, AttributeError):
        detail = response.body.decode("utf-8", "replace")
    param = None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):  # InputError: the first bad field
        loc = [str(x) for x in detail[0].get("loc", []) if x != "body"]
        param = ".".join(loc) or None
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _DROP}
    status = _AS_BAD_REQUEST.get(response.status_code, response.status_code)
    kind, code = _OPENAI_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    doc = {"error": {"message": _message(detail), "type": kind, "param": param, "code": code}}
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON, headers=headers)


def protocol_aware(handler: Handler) -> Handler:
    """``handler`` whose answers on protocol paths use the protocol's error format."""

    async def handle(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        path = request.scope.get("path", "")
        if path in _OPENAI_PATHS:
            return openai_error(response)
        if speaks_protocol(path):
            return as_protocol_error(response)
        return response

    handle.__name__ = getattr(handler, "__name__", "handle")
    return handle


def protocol_handlers(handlers: dict[type[Exception], Handler]) -> dict[type[Exception], Handler]:
    """The app's handlers (plus Starlette's 404/405) answering in the protocol format on protocol paths."""
    out: dict[type[Exception], Handler] = {HTTPException: protocol_aware(http_exception_handler)}
    out.update({exc_type: protocol_aware(h) for exc_type, h in handlers.items()})
    return out
