"""One exception handler per error type: ``{"detail": …, "request_id": …}`` with the status and headers it needs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from runtime.auth import AuthError
from runtime.batching import InferenceError
from runtime.dataplane import JSON, InferenceTimeoutError, ModelNotServedError, NotReadyError, ServerBusyError
from runtime.http.security import RateLimitedError
from runtime.inputs import InputError, PayloadTooLargeError, UnsupportedMediaTypeError
from runtime.routing import UnknownVersionError

Handler = Callable[..., Awaitable[Response]]  # (request, exc) -> response
_RETRY = {"Retry-After": "1"}
_UNEXPECTED = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def error_response(request: Request, status: int, detail: Any, headers: dict[str, str] | None = None) -> Response:
    state = request.scope.get("state") or {}
    doc = {"detail": detail, "request_id": state.get("request_id")}
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON, headers=headers)


async def auth_error(request: Request, exc: AuthError) -> Response:
    return error_response(request, 401, str(exc), {"WWW-Authenticate": "Bearer"})


async def rate_limited(request: Request, exc: RateLimitedError) -> Response:
    return error_response(request, 429, str(exc), exc.headers)


async def model_not_served(request: Request, exc: ModelNotServedError) -> Response:
    return error_response(request, 404, str(exc))


async def unknown_version(request: Request, exc: UnknownVersionError) -> Response:
    return error_response(request, 404, str(exc))


async def unsupported_media_type(request: Request, exc: UnsupportedMediaTypeError) -> Response:
    return error_response(request, 415, str(exc))


async def payload_too_large(request: Request, exc: PayloadTooLargeError) -> Response:
    return error_response(request, 413, str(exc))


async def invalid_input(request: Request, exc: InputError) -> Response:
    return error_response(request, 422, exc.detail())


async def inference_failed(request: Request, exc: InferenceError) -> Response:
    # the model's own message can hold file paths and internals: it is logged (by the data plane), not returned
    return error_response(request, 500, "the model failed on this input; the server log has the details "
                                        "under this request_id")


async def unexpected(request: Request, exc: Exception) -> Response:
    """Any other exception: a JSON 500 with the request id, nothing about the cause (Starlette logs it).

    Sent by Starlette's outermost ServerErrorMiddleware, past the serving middleware: it sets its own headers.
    """
    return error_response(request, 500, "internal server error", _UNEXPECTED)


async def not_ready(request: Request, exc: NotReadyError) -> Response:
    return error_response(request, 503, str(exc), _RETRY)


async def server_busy(request: Request, exc: ServerBusyError) -> Response:
    return error_response(request, 503, str(exc), _RETRY)


async def inference_timeout(request: Request, exc: InferenceTimeoutError) -> Response:
    return error_response(request, 504, str(exc))


HANDLERS: dict[type[Exception], Handler] = {
    AuthError: auth_error,
    RateLimitedError: rate_limited,
    ModelNotServedError: model_not_served,
    UnknownVersionError: unknown_version,
    UnsupportedMediaTypeError: unsupported_media_type,
    PayloadTooLargeError: payload_too_large,
    InputError: invalid_input,
    InferenceError: inference_failed,
    NotReadyError: not_ready,
    ServerBusyError: server_busy,
    InferenceTimeoutError: inference_timeout,
    Exception: unexpected,
}
