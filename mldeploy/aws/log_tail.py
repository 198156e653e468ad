"""``mldeploy logs``: read the containers' CloudWatch Logs (``--since``, ``--follow``)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from rich.markup import escape

from mldeploy import console
from mldeploy.aws.clients import aws_errors, call
from mldeploy.errors import AwsError, MldeployError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str) -> int:
    """``30s``/``10m``/``2h``/``1d`` → seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text)
    if not m:
        raise MldeployError(f"--since {text!r} is not a duration like 30s, 10m, 2h or 1d", exit_code=2)
    return int(m.group(1)) * UNITS[m.group(2)]


def show_logs(since: str = "10m", follow: bool = False, pattern: str | None = None) -> int:
    """Print events from ``since`` ago; with ``follow`` poll for new ones until Ctrl-C. Returns events printed."""
    from mldeploy.aws.clients import clients
    from mldeploy.aws.context import DeployContext
    from mldeploy.aws.waiters import poll_interval
    from mldeploy.cli import state

    project = state.project()
    ctx = DeployContext(project=project, aws=clients(project, region=state.options.region,
                                                     profile=state.options.profile))
    group = ctx.names.log_group
    logs = ctx.aws.logs
    if call(logs.describe_log_groups, logGroupNamePrefix=group)["logGroups"] == []:
        raise AwsError(f"log group {group} does not exist in {ctx.aws.region}", hint="deploy first with `mldeploy up`")
    start = int((time.time() - parse_since(since)) * 1000)
    seen: set[str] = set()
    printed = 0
    as_json = state.options.json
    try:
        while True:
            kwargs = {"logGroupName": group, "startTime": start, "interleaved": True}
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
                        printed += 1
                        if as_json:
                            console.emit_json({"timestamp": ev["timestamp"], "stream": ev["logStreamName"],
                                               "message": ev["message"]})
                        else:
                            ts = datetime.fromtimestamp(ev["timestamp"] / 1000, UTC).strftime("%H:%M:%S")
                            stream = ev["logStreamName"].rsplit("/", 1)[-1][:8]
                            message = escape(ev["message"].rstrip())
                            console.out.print(f"[dim]{ts} {stream}[/] {message}", markup=True,
                                              highlight=False, soft_wrap=True)
            if not follow:
                return printed
            start = newest  # events at the same millisecond are de-duplicated by eventId
            time.sleep(min(poll_interval(), 2.0))
    except KeyboardInterrupt:
        return printed
