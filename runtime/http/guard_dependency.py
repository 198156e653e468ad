"""``Guard.dependency``'s FastAPI dependencies and security schemes (so ``/openapi.json`` documents them).

Its own module, imported only when the FastAPI app is built (``runtime.http.app.RestServer``): the server
reaches ready without importing FastAPI (``runtime.http.app.LazyApp``).
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

if TYPE_CHECKING:
    from runtime.http.security import Guard

API_KEY = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", auto_error=False,
                       description="One of the keys in auth.api_keys_env / auth.api_keys_file")
API_KEY_BEARER = HTTPBearer(scheme_name="ApiKeyBearer", auto_error=False,
                            description="An API key sent as 'Authorization: Bearer <key>'")
JWT_BEARER = HTTPBearer(scheme_name="JWT", bearerFormat="JWT", auto_error=False,
                        description="A JWT signed with the configured HS256 secret or RS256 key (exp required)")


def dependency(guard: "Guard") -> Callable[..., Any]:
    """The dependency of ``guard`` (active): its parameters are the security schemes of the auth mode."""
    mode = guard.auth.mode
    if mode == "api_key":
        async def api_key_guard(request: Request, key: Annotated[str | None, Security(API_KEY)],
                                bearer: Annotated[HTTPAuthorizationCredentials | None,
                                                  Security(API_KEY_BEARER)]) -> None:
            guard.check(request, key, bearer.credentials if bearer else None)

        return api_key_guard
    if mode == "jwt":
        async def jwt_guard(request: Request,
                            bearer: Annotated[HTTPAuthorizationCredentials | None, Security(JWT_BEARER)]) -> None:
            guard.check(request, None, bearer.credentials if bearer else None)

        return jwt_guard

    async def rate_limit_guard(request: Request) -> None:
        guard.check(request, None, None)

    return rate_limit_guard
