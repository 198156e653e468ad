"""Per-principal (API key / JWT subject) or per-client-IP rate limits with the ``limits`` library.

Counters are in process memory: with N workers the effective limit is up to N× per task (documented).
"""

from __future__ import annotations

import math
import time


class RateLimiter:
    def __init__(self, limit: str) -> None:
        # imported here, not at module level: ``limits`` costs ~25 ms of start-up and most servers run without a
        # rate limit (runtime.http.app imports this module either way)
        from limits import parse
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self.item = parse(limit)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, key: str) -> tuple[bool, dict[str, str]]:
        """Count one hit for ``key``; returns (allowed, X-RateLimit-* headers [+ Retry-After when refused])."""
        allowed = self._limiter.hit(self.item, key)
        stats = self._limiter.get_window_stats(self.item, key)
        reset = max(0.0, stats.reset_time - time.time())
        headers = {
            "X-RateLimit-Limit": str(self.item.amount),
            "X-RateLimit-Remaining": str(max(0, stats.remaining)),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(reset)))
        return allowed, headers
