"""Plan model: ordered steps (create / update / delete / no-op), each with a human message and an apply action."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mldeploy.aws.context import DeployContext


class Action(StrEnum):
    create = "create"
    update = "update"
    replace = "replace"
    delete = "delete"
    noop = "no-op"


SYMBOL = {Action.create: "[green]+[/]", Action.update: "[yellow]~[/]", Action.replace: "[magenta]±[/]",
          Action.delete: "[red]-[/]", Action.noop: "[dim]=[/]"}


class Pending(str):
    """A value only known after an earlier step has been applied (an ARN or id of a resource to be created)."""

    def __new__(cls, what: str) -> Pending:
        return super().__new__(cls, f"(known after apply: {what})")


def is_pending(value: Any) -> bool:
    return isinstance(value, Pending)


@dataclass
class Step:
    """One change to one resource. ``apply`` performs it; it reads references from ``ctx.outputs``."""

    kind: str
    name: str
    action: Action
    changes: list[str] = field(default_factory=list)
    note: str = ""
    apply: Callable[[DeployContext], None] | None = field(default=None, repr=False, compare=False)

    @property
    def message(self) -> str:
        verb = {Action.create: "create", Action.update: "update", Action.replace: "replace",
                Action.delete: "delete", Action.noop: "unchanged"}[self.action]
        text = f"{verb} {self.kind} {self.name}"
        if self.changes:
            text += ": " + "; ".join(self.changes)
        if self.note:
            text += f" ({self.note})"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "action": str(self.action), "changes": self.changes,
                "note": self.note, "message": self.message}


@dataclass
class Plan:
    """Ordered steps; dependencies come first (the resource list in ``resources.ORDER`` is topological)."""

    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    estimate: dict[str, Any] | None = None

    def add(self, steps: Step | list[Step]) -> None:
        self.steps.extend([steps] if isinstance(steps, Step) else steps)

    @property
    def changes(self) -> list[Step]:
        return [s for s in self.steps if s.action is not Action.noop]

    @property
    def empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[str, int]:
        out = {str(a): 0 for a in Action}
        for s in self.steps:
            out[str(s.action)] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"steps": [s.to_json() for s in self.steps], "summary": self.counts(), "notes": self.notes,
                "estimate": self.estimate, "changes": len(self.changes)}

    def render(self, show_noop: bool = False) -> None:
        """Print the plan as a table on stderr (the human console)."""
        from rich.table import Table

        from mldeploy.console import console

        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("", width=1)
        table.add_column("resource")
        table.add_column("name")
        table.add_column("change", overflow="fold")
        hidden = 0
        for s in self.steps:
            if s.action is Action.noop and not show_noop:
                hidden += 1
                continue
            detail = "; ".join(s.changes) if s.changes else ""
            if s.note:
                detail = f"{detail} [dim]({s.note})[/]" if detail else f"[dim]{s.note}[/]"
            table.add_row(SYMBOL[s.action], s.kind, s.name, detail)
        if self.changes or show_noop:
            console.print(table)
        c = self.counts()
        console.print(f"[bold]Plan:[/] {c['create']} to create, {c['update'] + c['replace']} to change, "
                      f"{c['delete']} to delete, {hidden or c['no-op']} unchanged.")
        for note in self.notes:
            console.print(f"[dim]note:[/] {note}")
        if self.estimate:
            console.print(f"[bold]Estimated cost:[/] {self.estimate.get('line') or self.estimate.get('monthly_usd')}",
                          markup=True, highlight=False)
