"""The budget gate: the monthly estimate of what a command would leave running, its delta against what runs now,
and whether it exceeds ``cost.budget_monthly``.

``check`` returns data (``plan`` shows it, the GitHub summary carries it); ``enforce`` raises
:class:`~mldeploy.errors.OverBudgetError` (exit code 9) unless ``--ignore-budget`` was given. What runs now is
given as a :class:`Deployed` (read by the caller from AWS); ``None`` means nothing is deployed ($0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mldeploy.cost.model import estimate
from mldeploy.errors import OverBudgetError

if TYPE_CHECKING:
    from mldeploy.config import Project
    from mldeploy.config.schema import Config
    from mldeploy.cost.prices import PriceTable


@dataclass(frozen=True)
class Deployed:
    """What runs now: the stable service's task count and size, and a canary's percent when one is active."""

    tasks: int
    cpu: int
    memory: int
    canary_percent: int | None = None


@dataclass(frozen=True)
class BudgetCheck:
    """The gate's verdict. ``monthly``/``deployed`` are estimates in USD per month."""

    monthly: float
    deployed: float
    delta: float
    budget: float | None
    over: bool
    message: str
    rps: float | None = None
    basis: str = "before traffic"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("monthly", "deployed", "delta"):
            d[k] = round(d[k], 2)
        return d


def deployed_from(service: Mapping[str, Any] | None, task_definition: Mapping[str, Any] | None) -> Deployed | None:
    """A :class:`Deployed` from ECS ``describe_services``/``describe_task_definition`` answers (None: none)."""
    if not service or not task_definition:
        return None
    return Deployed(tasks=int(service.get("desiredCount", 0)), cpu=int(task_definition.get("cpu", 0) or 0),
                    memory=int(task_definition.get("memory", 0) or 0))


def _signed(x: float) -> str:
    return f"{'+' if x >= 0 else '−'}${abs(x):,.2f}"


def check(config: Config, *, deployed: Deployed | None = None, region: str | None = None,
          prices: PriceTable | None = None, canary_percent: int | None = None, capacity: float | None = None,
          capacity_source: str | None = None) -> BudgetCheck:
    """Price the config (at ``cost.expected_rps`` when set and a capacity is known, else before traffic; during a
    canary at ``canary_percent``) and what runs now the same way, and compare with ``cost.budget_monthly``."""
    rps = config.cost.expected_rps
    cap = capacity if capacity is not None else config.cost.capacity_rps_per_task
    basis = "before traffic"
    if rps and cap is None:
        basis, rps = "before traffic (cost.expected_rps needs a capacity: `mldeploy bench`)", None
    elif rps is not None:
        basis = f"at {rps:g} req/s (cost.expected_rps)"
    kw: dict[str, Any] = {"region": region, "prices": prices, "capacity": cap, "capacity_source": capacity_source}
    new = estimate(config, rps, canary_percent=canary_percent, **kw)
    now = 0.0
    if deployed is not None and deployed.tasks >= 0 and deployed.cpu and deployed.memory:
        aws = config.aws.model_copy(update={"cpu": deployed.cpu, "memory": deployed.memory,
                                            "desired_count": deployed.tasks})
        scaled = cap * deployed.cpu / config.aws.cpu if cap else cap  # capacity ∝ vCPU (a CFS quota)
        running = config.model_copy(update={"aws": aws})
        now = estimate(running, rps, canary_percent=deployed.canary_percent, **{**kw, "capacity": scaled}).total
    budget = config.cost.budget_monthly
    delta = new.total - now
    over = budget is not None and new.total > budget + 1e-9
    text = f"≈ ${new.total:,.2f}/month {basis}, {_signed(delta)} vs deployed (${now:,.2f})"
    if canary_percent is not None:
        text += f" during a {canary_percent} % canary"
    if budget is not None:
        text += (f"; exceeds cost.budget_monthly ${budget:,.2f} by ${new.total - budget:,.2f}" if over
                 else f"; within cost.budget_monthly ${budget:,.2f}")
    return BudgetCheck(monthly=new.total, deployed=now, delta=delta, budget=budget, over=over, message=text,
                       rps=rps, basis=basis)


def check_project(project: Project, *, deployed: Deployed | None = None, region: str | None = None,
                  prices: PriceTable | None = None, canary_percent: int | None = None) -> BudgetCheck:
    """:func:`check` with the project's capacity (``cost.capacity_rps_per_task``, bench, or the package estimate)."""
    from mldeploy.cost.capacity import resolve

    known = resolve(project)
    return check(project.config, deployed=deployed, region=region, prices=prices, canary_percent=canary_percent,
                 capacity=known.rps_per_task, capacity_source=known.source)


def enforce(result: BudgetCheck | Mapping[str, Any] | None, *, ignore: bool = False) -> None:
    """Raise :class:`OverBudgetError` when ``result`` (a check or its ``to_dict()``) is over budget."""
    if result is None or ignore:
        return
    data = result.to_dict() if isinstance(result, BudgetCheck) else dict(result)
    if not data.get("over"):
        return
    raise OverBudgetError(
        f"over budget: {data['message']}",
        hint="lower aws.cpu/memory, aws.autoscaling.max or the canary percent, raise cost.budget_monthly in "
             "mldeploy.yaml, or pass --ignore-budget; `mldeploy cost --explain` shows every line item")
