"""The plan table (stderr) from a plan's JSON form (``Plan.to_json()``: steps, summary, notes, estimate)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mldeploy import console
from mldeploy.cli.render import print_table

SYMBOL = {"create": "[green]+[/]", "update": "[yellow]~[/]", "replace": "[magenta]±[/]", "delete": "[red]-[/]",
          "no-op": "[dim]=[/]"}


def print_plan(plan: Mapping[str, Any], show_noop: bool = False) -> None:
    """Changed resources (all with ``show_noop``), the counts, notes and the cost line."""
    from rich.table import Table

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("", width=1)
    table.add_column("resource")
    table.add_column("name")
    table.add_column("change", overflow="fold")
    steps = list(plan.get("steps") or [])
    hidden = 0
    for s in steps:
        action = str(s.get("action"))
        if action == "no-op" and not show_noop:
            hidden += 1
            continue
        changes = s.get("changes") or []
        note = s.get("note") or ""
        detail = "; ".join(changes) if changes else ""
        if note:
            detail = f"{detail} [dim]({note})[/]" if detail else f"[dim]{note}[/]"
        table.add_row(SYMBOL.get(action, action), str(s.get("kind")), str(s.get("name")), detail)
    changed = sum(1 for s in steps if str(s.get("action")) != "no-op")
    if changed or show_noop:
        print_table(console.console, table)
    c = {"create": 0, "update": 0, "replace": 0, "delete": 0, "no-op": 0, **(plan.get("summary") or {})}
    console.console.print(f"[bold]Plan:[/] {c['create']} to create, {c['update'] + c['replace']} to change, "
                          f"{c['delete']} to delete, {hidden or c['no-op']} unchanged.")
    for note in plan.get("notes") or []:
        console.console.print(f"[dim]note:[/] {note}")
    estimate = plan.get("estimate")
    if estimate:
        console.console.print(f"[bold]Estimated cost:[/] {estimate.get('line') or estimate.get('monthly_usd')}",
                              markup=True, highlight=False)
