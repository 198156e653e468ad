"""One polling loop for every wait (service stability, draining services, security groups, readiness).

Hand-rolled instead of tenacity: the waits need a deadline, a progress callback per tick and an interval that
tests shrink through ``MLDEPLOY_POLL_S``; that is these twenty lines, not a retry policy.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_ENV = "MLDEPLOY_POLL_S"


def poll_interval(default: float = 10.0) -> float:
    """Seconds between AWS polls (``$MLDEPLOY_POLL_S`` overrides; tests against emulators use small values)."""
    return float(os.environ.get(POLL_ENV) or default)


class PollTimeout(TimeoutError):
    """``poll_until`` ran past its deadline; ``last`` is the last value ``check`` returned."""

    def __init__(self, what: str, timeout: float, last: object = None) -> None:
        super().__init__(f"{what} not done after {timeout:.0f}s")
        self.what, self.timeout, self.last = what, timeout, last


def poll_until(check: Callable[[], T | None], *, timeout: float, interval: float | None = None,
               what: str = "condition", on_tick: Callable[[float], None] | None = None,
               sleep: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None) -> T:
    """Call ``check`` until it returns something other than None/False; return that value.

    ``check`` may raise to stop early. ``on_tick(elapsed_s)`` runs before each sleep. Raises ``PollTimeout``.
    ``sleep`` and ``clock`` are the seams unit tests replace with a fake clock.
    """
    step = poll_interval() if interval is None else interval
    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    t0 = clock()
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        elapsed = clock() - t0
        if elapsed > timeout:
            raise PollTimeout(what, timeout, value)
        if on_tick is not None:
            on_tick(elapsed)
        sleep(max(0.0, min(step, timeout - elapsed + 0.001)))
