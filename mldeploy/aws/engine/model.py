"""The plan's data types: ``Ref`` / ``Fn`` values, ``ApiCall`` / ``Wait`` instructions, ``Step``, ``Plan``.

Everything here is data: no clients, no callables. ``plan --json`` prints exactly the instructions ``apply`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    create = "create"
    update = "update"
    replace = "replace"
    delete = "delete"
    noop = "no-op"


VERB = {Action.create: "create", Action.update: "update", Action.replace: "replace", Action.delete: "delete",
        Action.noop: "unchanged"}


@dataclass(frozen=True)
class Ref:
    """A value known only once an earlier instruction ran (an ARN or id it ``outputs``), or supplied to the
    executor from outside the plan (``image``: built and pushed by ``up`` after planning)."""

    name: str

    def __str__(self) -> str:
        return f"(known after apply: {self.name})"

    def to_json(self) -> dict[str, str]:
        return {"ref": self.name}


FUNCTIONS = ("after", "json", "format", "join")
"""What ``Fn`` may compute (pure, evaluated by the executor once its arguments are resolved):
``after(text, marker)`` the part after ``marker``; ``json(value)`` compact sorted JSON; ``format(template, **kw)``;
``join(sep, items)``."""


@dataclass(frozen=True)
class Fn:
    """A value derived from others (typically ``Ref``s) at execute time, e.g. a CloudWatch dimension."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.name not in FUNCTIONS:
            raise ValueError(f"unknown plan function {self.name!r} (one of {', '.join(FUNCTIONS)})")

    def __str__(self) -> str:
        return f"(known after apply: {self.name} of {', '.join(str(a) for a in self.args)})"

    def to_json(self) -> dict[str, Any]:
        return {"fn": self.name, "args": [to_json(a) for a in self.args],
                **({"kwargs": {k: to_json(v) for k, v in self.kwargs}} if self.kwargs else {})}


def after(value: Any, marker: str) -> Any:
    """``value`` after ``marker`` (an ``Fn`` when ``value`` is not known yet)."""
    if is_unknown(value):
        return Fn("after", (value, marker))
    text = str(value)
    return text.split(marker, 1)[1] if marker in text else text


def is_unknown(value: Any) -> bool:
    """True when ``value`` is, or contains, a ``Ref``/``Fn`` (known only while applying)."""
    if isinstance(value, Ref | Fn):
        return True
    if isinstance(value, dict):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(is_unknown(v) for v in value)
    return False


@dataclass(frozen=True)
class RetryOn:
    """Retry an instruction while AWS answers this error code (and, when given, a message containing ``contains``):
    eventual consistency and draining resources. Each use cites the AWS source that documents the wait."""

    code: str
    contains: str = ""


@dataclass(frozen=True)
class ApiCall:
    """One boto3 client call: ``service`` (botocore name) and ``op`` (the client method, snake_case).

    ``outputs`` binds ``Ref`` names to JMESPath expressions into the response; ``missing`` lists error codes that
    mean "already gone" (the call is then a no-op, which keeps deletes idempotent); ``retry`` see ``RetryOn``.
    """

    service: str
    op: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    outputs: tuple[tuple[str, str], ...] = ()
    missing: tuple[str, ...] = ()
    retry: tuple[RetryOn, ...] = ()
    retry_timeout_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"call": f"{self.service}.{self.op}", "params": to_json(self.params)}
        if self.outputs:
            out["outputs"] = dict(self.outputs)
        if self.missing:
            out["missing"] = list(self.missing)
        if self.retry:
            out["retry"] = [{"code": r.code, **({"contains": r.contains} if r.contains else {})} for r in self.retry]
            out["retry_timeout_s"] = self.retry_timeout_s
        return out


@dataclass(frozen=True)
class Wait:
    """Poll until a condition holds (``what`` names a waiter of ``aws.waiters``), e.g. ``services_inactive``."""

    what: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    timeout_s: float = 600.0

    def to_json(self) -> dict[str, Any]:
        return {"wait": self.what, "params": to_json(self.params), "timeout_s": self.timeout_s}


Instruction = ApiCall | Wait


@dataclass(frozen=True)
class Step:
    """One change to one resource: what it is, the human message, and the instructions that make it."""

    kind: str
    name: str
    action: Action
    changes: tuple[str, ...] = ()
    note: str = ""
    calls: tuple[Instruction, ...] = ()

    def __post_init__(self) -> None:  # accept lists for convenience; store tuples (frozen, comparable)
        object.__setattr__(self, "changes", tuple(self.changes))
        object.__setattr__(self, "calls", tuple(self.calls))

    @property
    def message(self) -> str:
        text = f"{VERB[self.action]} {self.kind} {self.name}"
        if self.changes:
            text += ": " + "; ".join(self.changes)
        if self.note:
            text += f" ({self.note})"
        return text

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "action": str(self.action), "changes": list(self.changes),
                "note": self.note, "message": self.message, "calls": [c.to_json() for c in self.calls]}


def noop(kind: str, name: str) -> Step:
    return Step(kind, name, Action.noop)


@dataclass
class Plan:
    """Ordered steps; dependencies come first (``stack.RESOURCES`` is topological; ``down`` reverses it)."""

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

    @property
    def calls(self) -> list[Instruction]:
        """Every instruction, in the order ``apply`` runs them."""
        return [c for s in self.changes for c in s.calls]

    def counts(self) -> dict[str, int]:
        out = {str(a): 0 for a in Action}
        for s in self.steps:
            out[str(s.action)] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"steps": [s.to_json() for s in self.steps], "summary": self.counts(), "notes": self.notes,
                "estimate": self.estimate, "changes": len(self.changes)}


def to_json(value: Any) -> Any:
    """Plan values as JSON (``Ref``/``Fn`` as objects)."""
    if isinstance(value, Ref | Fn):
        return value.to_json()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value
