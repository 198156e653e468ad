"""One CloudWatch Logs event as a terminal line (stdout)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from mldeploy import console


def print_event(ev: Mapping[str, Any]) -> None:
    from rich.markup import escape

    ts = datetime.fromtimestamp(ev["timestamp"] / 1000, UTC).strftime("%H:%M:%S")
    stream = ev["stream"].rsplit("/", 1)[-1][:8]
    console.out.print(f"[dim]{ts} {stream}[/] {escape(ev['message'].rstrip())}", markup=True, highlight=False,
                      soft_wrap=True)
