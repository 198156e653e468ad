"""``mldeploy canary --auto``: progressive delivery gated by the canary's CloudWatch alarms.

For each step of ``release.steps`` (e.g. 10 → 25 → 50 → 100) the canary's weight is set, then the 5xx-rate
and p99-latency alarms scoped to the canary target group are watched for ``release.bake_time_s``. An alarm in
ALARM state rolls the canary back and ends the command with RolledBackError (exit code 6). After the last
step the canary is promoted.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mldeploy import console
from mldeploy.errors import RolledBackError
from mldeploy.release import fleet as fl
from mldeploy.release.canary import canary
from mldeploy.release.current import load
from mldeploy.release.promote import promote
from mldeploy.release.rollback import rollback_canary

if TYPE_CHECKING:
    from mldeploy.release.context import ReleaseContext
    from mldeploy.release.lock import DeployLock


def steps_from(configured: list[int], first: int | None) -> list[int]:
    """The configured steps, starting at ``first`` when given (``--percent 5 --auto`` → 5, 10, 25, 50, 100)."""
    if first is None:
        return list(configured)
    return [first, *(s for s in configured if s > first)]


def poll_interval(bake_s: float) -> float:
    """Check alarms every 10 s on real bakes, faster on short ones (tests, quick pipelines)."""
    return max(0.5, min(10.0, bake_s / 10))


def bake(ctx: ReleaseContext, alarms: list[str], seconds: float, lock: DeployLock | None) -> tuple[str, str] | None:
    """Watch ``alarms`` for ``seconds``; return (alarm, reason) of the first one in ALARM, else None."""
    deadline = time.monotonic() + seconds
    interval = poll_interval(seconds)
    last_refresh = time.monotonic()
    while True:
        firing = fl.firing_alarms(ctx, alarms)
        if firing:
            return firing[0]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        if lock is not None and time.monotonic() - last_refresh > lock.ttl_s / 3:
            lock.refresh()
            last_refresh = time.monotonic()
        time.sleep(min(interval, remaining))


def progressive(ctx: ReleaseContext, image: str | None = None, first: int | None = None,
                lock: DeployLock | None = None) -> dict[str, Any]:
    steps = steps_from(ctx.config.release.steps, first)
    bake_s = ctx.config.release.bake_time_s
    alarms = fl.canary_alarm_names(ctx)
    console.info(f"progressive delivery: {' → '.join(f'{s}%' for s in steps)}, {bake_s}s bake per step, "
                 f"watching {', '.join(alarms)}")
    done: list[dict[str, Any]] = []
    for i, percent in enumerate(steps):
        canary(ctx, percent, image=image if i == 0 else None)
        console.info(f"step {i + 1}/{len(steps)}: {percent}% — baking {bake_s}s")
        fired = bake(ctx, alarms, bake_s, lock)
        if fired is not None:
            name, reason = fired
            cur = load(ctx)
            rollback_canary(ctx, cur, f"alarm {name} fired at {percent}%: {reason}")
            raise RolledBackError(f"alarm {name} fired at {percent}% of traffic: the canary was rolled back "
                                  f"({reason})" if reason else f"alarm {name} fired at {percent}%: rolled back",
                                  hint="see `mldeploy logs` and the alarm in CloudWatch; `mldeploy history` "
                                       "records the outcome")
        done.append({"percent": percent, "baked_s": bake_s})
    result = promote(ctx)
    result["steps"] = done
    return result
