"""``mldeploy logs`` as data: the containers' CloudWatch Logs events since a moment, optionally followed."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from mldeploy.aws.clients import aws_errors, call
from mldeploy.errors import AwsError, MldeployError

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
FOLLOW_POLL_S = 2.0


def parse_since(text: str) -> int:
    """``30s``/``10m``/``2h``/``1d`` → seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if not m:
        raise MldeployError(f"--since {text!r} is not a duration like 30s, 10m, 2h or 1d", exit_code=2)
    return int(m.group(1)) * UNITS[m.group(2)]


def tail(project: Project, aws: Clients, *, since: str = "10m", follow: bool = False, pattern: str | None = None,
         interval: float = FOLLOW_POLL_S, sleep: Callable[[float], None] = time.sleep) -> Iterator[dict[str, Any]]:
    """Yield ``{timestamp, stream, message}`` for each event from ``since`` ago; with ``follow`` keep polling
    every ``interval`` seconds for new ones (until the caller stops, e.g. on Ctrl-C)."""
    group = project.names.log_group
    logs = aws.logs
    if call(logs.describe_log_groups, logGroupNamePrefix=group)["logGroups"] == []:
        raise AwsError(f"log group {group} does not exist in {aws.region}", hint="deploy first with `mldeploy up`")
    start = int((time.time() - parse_since(since)) * 1000)
    seen: set[str] = set()
    while True:
        kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start, "interleaved": True}
        if pattern:
            kwargs["filterPattern"] = pattern
        newest = start
        with aws_errors():
            for page in logs.get_paginator("filter_log_events").paginate(**kwargs):
                for ev in page["events"]:
                    if ev["eventId"] in seen:
                        continue
                    seen.add(ev["eventId"])
                    newest = max(newest, ev["timestamp"])
                    yield {"timestamp": ev["timestamp"], "stream": ev["logStreamName"], "message": ev["message"]}
        if not follow:
            return
        start = newest  # events at the same millisecond are de-duplicated by eventId
        sleep(interval)
