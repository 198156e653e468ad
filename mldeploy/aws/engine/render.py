"""The plan as a table for humans (a rich renderable; the caller prints it through its ``Ui``)."""

from __future__ import annotations

from typing import Any

from mldeploy.aws.engine.executor import SYMBOL
from mldeploy.aws.engine.model import Action, Plan


def plan_table(plan: Plan, show_noop: bool = False) -> Any:
    from rich.table import Table

    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("", width=1)
    table.add_column("resource")
    table.add_column("name")
    table.add_column("change", overflow="fold")
    for s in plan.steps:
        if s.action is Action.noop and not show_noop:
            continue
        detail = "; ".join(s.changes) if s.changes else ""
        if s.note:
            detail = f"{detail} [dim]({s.note})[/]" if detail else f"[dim]{s.note}[/]"
        table.add_row(SYMBOL[s.action], s.kind, s.name, detail)
    return table


def plan_lines(plan: Plan, show_noop: bool = False) -> list[Any]:
    """Table (when there is something to show), the counts line, notes and the cost estimate."""
    out: list[Any] = []
    if plan.changes or show_noop:
        out.append(plan_table(plan, show_noop))
    c = plan.counts()
    hidden = 0 if show_noop else c["no-op"]
    out.append(f"[bold]Plan:[/] {c['create']} to create, {c['update'] + c['replace']} to change, "
               f"{c['delete']} to delete, {hidden or c['no-op']} unchanged.")
    out += [f"[dim]note:[/] {note}" for note in plan.notes]
    if plan.estimate:
        out.append(f"[bold]Estimated cost:[/] {plan.estimate.get('line') or plan.estimate.get('monthly_usd')}")
    return out
