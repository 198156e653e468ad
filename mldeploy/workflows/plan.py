"""``mldeploy plan``: what ``up`` would change on AWS, as data (the same ``Plan`` that ``up`` applies)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mldeploy.aws import preflight
from mldeploy.aws.engine import stack
from mldeploy.aws.engine.model import Plan, Ref
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project


@dataclass
class PlannedStack:
    """A plan with what produced it: the spec, the remote it read and the values it promises."""

    plan: Plan
    spec: StackSpec
    remote: Remote
    known: Known = field(default_factory=dict)
    shadow: Any = None
    """A running shadow phase the plan keeps (``release.shadow_up.ShadowKept``), None without one."""


def plan_aws(project: Project, aws: Clients, image: Any = None, remote: Remote | None = None) -> PlannedStack:
    """Diff the config against the account. ``image``: a URI, ``Ref("image")`` (built later) or None (keep)."""
    remote = remote or Remote(aws)
    spec = StackSpec.of(project, remote, image=image)
    known: Known = {}
    plan = stack.plan_up(spec, remote, known)
    from mldeploy.release.shadow_up import keep_shadow

    shadow = keep_shadow(spec, remote, known, plan)  # `up` keeps a shadow phase running, as it keeps a canary
    plan.notes += preflight.notes(spec, remote)  # the Fargate vCPU quota against a rolling deploy + a canary
    plan.estimate = estimate(project, aws.region, spec=spec, remote=remote)
    return PlannedStack(plan, spec, remote, known, shadow)


def enforce_shadow_memory(planned: PlannedStack, ui: Any = None) -> None:
    """A plan that registers the stable tasks' shadow revision again refuses (exit 3, ``aws.memory``) when they
    cannot hold both models: the rule and refusal of ``canary --shadow`` (``aws_plans.enforce_memory``)."""
    if planned.shadow is not None and planned.shadow.memory is not None:
        from mldeploy.release.targets.aws_plans import enforce_memory

        enforce_memory(planned.shadow.memory, ui)


def deployed(spec: StackSpec, remote: Remote) -> Any:
    """What the stable service runs now (``mldeploy.cost.budget.Deployed``; None when nothing is deployed), from
    the describes the plan already made (cached in ``remote``: no extra API call)."""
    from mldeploy.aws.resources import service, task_definition
    from mldeploy.cost.budget import deployed_from

    svc = service.read(spec, remote)
    revision = task_definition.running(spec, remote) if svc else None
    return deployed_from(svc, revision[0] if revision else None)


def estimate(project: Project, region: str, *, spec: StackSpec | None = None, remote: Remote | None = None,
             canary_percent: int | None = None) -> dict | None:
    """Monthly cost from ``mldeploy.cost`` with the budget check against what is deployed (guarded: a plan never
    fails on an estimate; the gate itself is ``mldeploy.cost.budget.enforce(estimate["budget"])``).

    Keys: ``monthly_usd``, ``deployed_usd``, ``delta_usd``, ``budget_usd``, ``over_budget``, ``line`` (for the plan
    output and the GitHub summary), ``budget`` (the ``BudgetCheck`` as a dict).
    """
    try:
        from mldeploy.cost import plan_line
        from mldeploy.cost.budget import check_project

        now = deployed(spec, remote) if spec is not None and remote is not None else None
        result = check_project(project, deployed=now, region=region, canary_percent=canary_percent)
        return {"monthly_usd": round(result.monthly, 2), "deployed_usd": round(result.deployed, 2),
                "delta_usd": round(result.delta, 2), "budget_usd": result.budget, "over_budget": result.over,
                "line": plan_line(project.config, region=region, budget=result), "budget": result.to_dict()}
    except Exception:  # an estimate must never break a deployment
        return None


IMAGE = Ref("image")
"""The image ``up`` builds and pushes after planning (the executor gets its value before applying)."""
