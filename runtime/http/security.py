"""Auth + rate limit as one FastAPI dependency; with auth on, its security schemes appear in ``/openapi.json``.

The dependency leaves the ``X-RateLimit-*`` headers in ``request.state.rate_limit_headers`` for the response.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from runtime.auth import Authenticator, AuthError
from runtime.metrics import Metrics
from runtime.ratelimit import RateLimiter

API_KEY = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", auto_error=False,
                       description="One of the keys in auth.api_keys_env / auth.api_keys_file")
API_KEY_BEARER = HTTPBearer(scheme_name="ApiKeyBearer", auto_error=False,
                            description="An API key sent as 'Authorization: Bearer <key>'")
JWT_BEARER = HTTPBearer(scheme_name="JWT", bearerFormat="JWT", auto_error=False,
                        description="A JWT signed with the configured HS256 secret or RS256 key (exp required)")
_NO_HEADERS: dict[str, str] = {}


class RateLimitedError(Exception):
    """429: the principal's (or client IP's) rate limit is exhausted; ``headers`` carry Retry-After."""

    def __init__(self, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.headers = headers


def rate_limit_headers(request: Request) -> dict[str, str]:
    """The headers the guard left for this request's response (none when rate limiting is off)."""
    state = request.scope.get("state")
    return state.get("rate_limit_headers", _NO_HEADERS) if state else _NO_HEADERS


class Guard:
    """Authenticates the caller, then counts one hit against its rate limit."""

    def __init__(self, auth: Authenticator, limiter: RateLimiter | None, limit: str, metrics: Metrics) -> None:
        self.auth, self.limiter, self.limit, self.metrics = auth, limiter, limit, metrics

    @property
    def active(self) -> bool:
        return self.auth.enabled or self.limiter is not None

    def check(self, request: Request, api_key: str | None, bearer: str | None) -> None:
        """Raise AuthError (401) or RateLimitedError (429); store the X-RateLimit-* headers on ``request.state``."""
        try:
            principal = self.auth.verify(api_key, bearer)
        except AuthError:
            self.metrics.rejected.labels("auth").inc()
            raise
        if self.limiter is None:
            return
        key = principal or ("ip:" + (request.client.host if request.client else "?"))
        allowed, headers = self.limiter.check(key)
        if not allowed:
            self.metrics.rejected.labels("rate_limit").inc()
            raise RateLimitedError(f"rate limit {self.limit} exceeded", headers)
        request.state.rate_limit_headers = headers

    def dependency(self) -> Callable[..., Any] | None:
        """The FastAPI dependency for protected routes (``None`` when neither auth nor a rate limit is on).

        Its parameters are the security schemes of the auth mode, so OpenAPI documents them.
        """
        if not self.active:
            return None
        mode = self.auth.mode
        if mode == "api_key":
            async def api_key_guard(request: Request, key: Annotated[str | None, Security(API_KEY)],
                                    bearer: Annotated[HTTPAuthorizationCredentials | None,
                                                      Security(API_KEY_BEARER)]) -> None:
                self.check(request, key, bearer.credentials if bearer else None)

            return api_key_guard
        if mode == "jwt":
            async def jwt_guard(request: Request,
                                bearer: Annotated[HTTPAuthorizationCredentials | None, Security(JWT_BEARER)]) -> None:
                self.check(request, None, bearer.credentials if bearer else None)

            return jwt_guard

        async def rate_limit_guard(request: Request) -> None:
            self.check(request, None, None)

        return rate_limit_guard
