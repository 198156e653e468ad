"""``aws.autoscaling.schedule`` over one week: which min–max task range holds for what share of the time.

Each entry is an Application Auto Scaling scheduled action: from each time its cron fires (UTC) the scalable
target keeps its min–max until the next action fires. The week is walked minute by minute, cyclically (the last
action of the week still holds on Monday morning). Entries whose day-of-month, month or year is restricted (or
that use ``L``/``W``/``#``) do not repeat weekly: they are left out of the weighting, with a note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mldeploy.config.schema import Autoscaling

MINUTES_PER_WEEK = 7 * 24 * 60
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # AWS cron day-of-week 1–7 = SUN–SAT


@dataclass(frozen=True)
class Segment:
    share: float  # of the week
    min: int
    max: int
    source: str  # the cron expression, or "autoscaling" (no action fires in the week)


def _values(field: str, low: int, high: int, names: tuple[str, ...] = ()) -> set[int] | None:
    """The numbers a cron field matches (None: not a plain weekly field)."""
    for i, name in enumerate(names):
        field = re.sub(rf"\b{name}\b", str(i + low), field)
    if field in ("*", "?"):
        return set(range(low, high + 1))
    out: set[int] = set()
    for part in field.split(","):
        m = re.fullmatch(r"(\*|\d+)(?:-(\d+))?(?:/(\d+))?", part)
        if m is None:
            return None
        start = low if m.group(1) == "*" else int(m.group(1))
        end = int(m.group(2)) if m.group(2) else (high if m.group(1) == "*" or m.group(3) else start)
        out.update(range(start, end + 1, int(m.group(3) or 1)))
    return out


def weekly(cron: str) -> list[int] | None:
    """Minutes of the week (0 = Sunday 00:00 UTC) at which ``cron`` fires, or None when it does not repeat
    weekly (restricted day-of-month, month or year; L, W, #)."""
    minute, hour, dom, month, dow, year = cron.split()
    if dom not in ("*", "?") or month != "*" or year != "*":
        return None
    mins, hours, days = _values(minute, 0, 59), _values(hour, 0, 23), _values(dow, 1, 7, DAYS)
    if mins is None or hours is None or days is None:
        return None
    return sorted((d - 1) * 1440 + h * 60 + m for d in days for h in hours for m in mins)


def segments(auto: Autoscaling) -> tuple[list[Segment], list[str]]:
    """The week's min–max ranges with their shares, and notes on entries left out."""
    fires: list[tuple[int, int, int, str]] = []
    notes: list[str] = []
    for entry in auto.schedule:
        times = weekly(entry.cron)
        if times is None:
            notes.append(f"schedule {entry.cron!r} does not repeat weekly: not in the weekly average")
            continue
        fires += [(t, entry.min, entry.max, entry.cron) for t in times]
    if not fires:
        return [Segment(1.0, auto.min, auto.max, "autoscaling")], notes
    fires.sort()
    shares: dict[tuple[int, int, str], int] = {}
    for i, (t, lo, hi, cron) in enumerate(fires):
        nxt = fires[i + 1][0] if i + 1 < len(fires) else fires[0][0] + MINUTES_PER_WEEK
        shares[(lo, hi, cron)] = shares.get((lo, hi, cron), 0) + (nxt - t)
    return [Segment(m / MINUTES_PER_WEEK, lo, hi, cron) for (lo, hi, cron), m in shares.items()], notes


def weighted(segs: list[Segment], tasks_wanted: float) -> float:
    """Time-weighted tasks when the service wants ``tasks_wanted``: each range pulls it into its min–max."""
    return sum(s.share * min(max(tasks_wanted, s.min), s.max) for s in segs)
