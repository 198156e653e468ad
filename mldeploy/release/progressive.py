"""``mldeploy canary --auto``: progressive delivery gated by the canary's CloudWatch alarms.

For each step of ``release.steps`` (e.g. 10 → 25 → 50 → 100) the canary's weight is set, then the 5xx-rate
and p99-latency alarms scoped to the canary target group are watched for ``release.bake_time_s``. An alarm in
ALARM state rolls the canary back and ends the command with RolledBackError (exit code 6). After the last
step the canary is promoted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mldeploy.errors import RolledBackError
from mldeploy.polling import PollTimeout, poll_until
from mldeploy.release import ops

if TYPE_CHECKING:
    from mldeploy.release.history import HistoryStore
    from mldeploy.release.lock import DeployLock
    from mldeploy.release.targets.aws import AwsTarget
    from mldeploy.ui import Ui


def steps_from(configured: list[int], first: int | None) -> list[int]:
    """The configured steps, starting at ``first`` when given (``--percent 5 --auto`` → 5, 10, 25, 50, 100)."""
    if first is None:
        return list(configured)
    return [first, *(s for s in configured if s > first)]


def poll_interval(bake_s: float) -> float:
    """Check alarms every 10 s on real bakes, faster on short ones (tests, quick pipelines)."""
    return max(0.5, min(10.0, bake_s / 10))


def bake(firing: Callable[[], list[tuple[str, str]]], seconds: float, lock: DeployLock | None,
         sleep: Callable[[float], None] = time.sleep) -> tuple[str, str] | None:
    """Watch ``firing()`` for ``seconds``; return (alarm, reason) of the first one in ALARM, else None.

    The deployment lock is refreshed every third of its TTL, so a long bake never lets it expire.
    """
    last_refresh = [time.monotonic()]

    def refresh(_elapsed: float) -> None:
        if lock is not None and time.monotonic() - last_refresh[0] > lock.ttl_s / 3:
            lock.refresh()
            last_refresh[0] = time.monotonic()

    def check() -> tuple[str, str] | None:
        found = firing()
        return found[0] if found else None

    try:
        return poll_until(check, timeout=seconds, interval=poll_interval(seconds), what="bake", on_tick=refresh,
                          sleep=sleep)
    except PollTimeout:
        return None


def progressive(target: AwsTarget, history: HistoryStore, ui: Ui, *, steps: list[int], bake_s: float,
                version: str, image: str | None = None, build: Callable[[], tuple[str, str | None]] | None = None,
                lock: DeployLock | None = None, shadow: Callable[[], dict[str, Any]] | None = None,
                before_start: ops.BeforeStart | None = None) -> dict[str, Any]:
    """Canary through ``steps`` with a bake each; roll back on an alarm, promote after the last step.

    ``shadow``: the shadow phase (``release.gates.shadow_phase``) runs first and starts the candidate at 0 %;
    it raises RolledBackError when a ``release.gates`` gate fails, so no traffic moves."""
    alarms = target.alarm_names()
    ui.info(f"progressive delivery: {' → '.join(f'{s}%' for s in steps)}, {bake_s}s bake per step, "
            + (f"watching {', '.join(alarms)}" if alarms else "no alarms to watch"))
    measures = shadow() if shadow is not None else None
    done: list[dict[str, Any]] = []
    for i, percent in enumerate(steps):
        ops.canary(target, history, ui, percent=percent, image=image if i == 0 and shadow is None else None,
                   version=version, build=build, before_start=before_start)
        ui.info(f"step {i + 1}/{len(steps)}: {percent}% — baking {bake_s}s")
        fired = bake(lambda: target.firing(alarms), bake_s, lock)
        if fired is not None:
            name, reason = fired
            ops.rollback_canary(ops.load(target, history), ui, f"alarm {name} fired at {percent}%: {reason}")
            raise RolledBackError(f"alarm {name} fired at {percent}% of traffic: the canary was rolled back "
                                  f"({reason})" if reason else f"alarm {name} fired at {percent}%: rolled back",
                                  hint="see `mldeploy logs` and the alarm in CloudWatch; `mldeploy history` "
                                       "records the outcome")
        done.append({"percent": percent, "baked_s": bake_s})
    result = ops.promote(target, history, ui)
    result["steps"] = done
    if measures is not None:
        result["shadow"] = measures
    return result
