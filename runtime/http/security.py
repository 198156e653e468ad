"""Auth + rate limit as one FastAPI dependency; with auth on, its security schemes appear in ``/openapi.json``.

Rate limits are keyed by the authenticated principal (API key id / JWT ``sub``), else by the client IP
(``runtime.http.clientip``: ``X-Forwarded-For`` only from trusted proxies). Failed authentications count per
client IP (``auth.failure_limit``); past it that IP gets 429 without its credentials being checked. The dependency
leaves the ``X-RateLimit-*`` headers in ``request.state.rate_limit_headers`` for the response.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runtime.auth import Authenticator, AuthError
from runtime.http.clientip import ClientIP
from runtime.metrics import Metrics
from runtime.ratelimit import RateLimiter

if TYPE_CHECKING:
    from starlette.requests import Request
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


class AuthFailures:
    """Failed authentications per client IP; an IP over ``limit`` is blocked until its window resets."""

    MAX_BLOCKED = 100_000

    def __init__(self, limit: str) -> None:
        self.limit = limit
        self._limiter = RateLimiter(limit)
        self.blocked: dict[str, float] = {}  # ip -> monotonic time the block ends

    def retry_after(self, ip: str) -> int | None:
        """Seconds left on ``ip``'s block, or None when it may try."""
        until = self.blocked.get(ip)
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            del self.blocked[ip]
            return None
        return max(1, int(left + 0.999))

    def failed(self, ip: str) -> None:
        allowed, headers = self._limiter.check(ip)
        if not allowed or headers["X-RateLimit-Remaining"] == "0":  # the limit-th failure blocks
            if len(self.blocked) >= self.MAX_BLOCKED:
                now = time.monotonic()
                self.blocked = {k: v for k, v in self.blocked.items() if v > now}
            self.blocked[ip] = time.monotonic() + int(headers.get("Retry-After", "1"))


class Guard:
    """Authenticates the caller, then counts one hit against its rate limit."""

    def __init__(self, auth: Authenticator, limiter: RateLimiter | None, limit: str, metrics: Metrics,
                 client_ip: ClientIP | None = None, failure_limit: str = "30/minute") -> None:
        self.auth, self.limiter, self.limit, self.metrics = auth, limiter, limit, metrics
        self.client_ip = client_ip or ClientIP([])
        self.failures = AuthFailures(failure_limit) if auth.enabled else None

    @property
    def active(self) -> bool:
        return self.auth.enabled or self.limiter is not None

    def check(self, request: Request, api_key: str | None, bearer: str | None) -> None:
        """Raise AuthError (401) or RateLimitedError (429); store the X-RateLimit-* headers on ``request.state``."""
        failures = self.failures
        ip = None
        if failures is not None and failures.blocked:  # nothing to look up while no IP is blocked
            ip = self.client_ip(request.scope)
            wait = failures.retry_after(ip)
            if wait is not None:
                self.metrics.rejected.labels("auth_failures").inc()
                raise RateLimitedError(f"too many failed authentication attempts ({failures.limit})",
                                       {"Retry-After": str(wait)})
        try:
            principal = self.auth.verify(api_key, bearer)
        except AuthError:
            self.metrics.rejected.labels("auth").inc()
            if failures is not None:
                failures.failed(ip or self.client_ip(request.scope))
            raise
        if self.limiter is None:
            return
        key = principal or ("ip:" + (ip or self.client_ip(request.scope)))
        allowed, headers = self.limiter.check(key)
        if not allowed:
            self.metrics.rejected.labels("rate_limit").inc()
            raise RateLimitedError(f"rate limit {self.limit} exceeded", headers)
        request.state.rate_limit_headers = headers

    def check_request(self, request: Request) -> None:
        """``check`` with the credentials read as the dependency's security schemes read them (the predict fast
        path, ``runtime.http.fastpath``, which skips FastAPI's dependency resolution)."""
        mode = self.auth.mode
        if mode == "none":
            self.check(request, None, None)
            return
        headers = request.headers
        authorization = headers.get("authorization")
        bearer = None
        if authorization:  # fastapi.security.HTTPBearer(auto_error=False)
            scheme, _, credentials = authorization.partition(" ")
            credentials = credentials.strip()
            if scheme and credentials and scheme.lower() == "bearer":
                bearer = credentials
        key = (headers.get("x-api-key") or None) if mode == "api_key" else None  # APIKeyHeader(auto_error=False)
        self.check(request, key, bearer)

    def dependency(self) -> Callable[..., Any] | None:
        """The FastAPI dependency for protected routes (``None`` when neither auth nor a rate limit is on).

        Its parameters are the security schemes of the auth mode, so OpenAPI documents them.
        """
        if not self.active:
            return None
        from runtime.http.guard_dependency import dependency  # FastAPI: only once the app is built

        return dependency(self)
