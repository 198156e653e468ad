"""The deployment history table (stdout), newest first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mldeploy import console
from mldeploy.cli.render import print_table

COLOURS = {"succeeded": "green", "promoted": "green", "active": "cyan", "rolled_back": "yellow", "failed": "red",
           "in_progress": "blue"}


def short_image(record: Mapping[str, Any]) -> str:
    """The digest's first 12 hex digits, else the image's last path segment."""
    image = record.get("digest") or record.get("image") or ""
    return image.split("sha256:", 1)[1][:12] if "sha256:" in image else image.rsplit("/", 1)[-1]


def print_history(title: str, records: Sequence[Mapping[str, Any]]) -> None:
    if not records:
        console.info("no deployments recorded yet")
        return
    from rich.table import Table

    table = Table(title=title)
    for col in ("#", "started (UTC)", "action", "version", "rev", "image", "%", "outcome", "by", "commit"):
        table.add_column(col, justify="right" if col in ("#", "rev", "%") else "left")
    for r in records:
        outcome = r.get("outcome") or ""
        table.add_row(str(r.get("id", "")), (r.get("started_at") or "").replace("T", " ").rstrip("Z"),
                      r.get("action") or "", r.get("version") or "?", str(r.get("revision") or ""), short_image(r),
                      "" if r.get("percent") is None else str(r["percent"]),
                      f"[{COLOURS.get(outcome, 'white')}]{outcome}[/]", (r.get("actor") or "")[-40:],
                      (r.get("git_commit") or "")[:8])
    print_table(console.out, table)
