"""``mldeploy plan``: what ``up`` would change on AWS, as data (the same ``Plan`` that ``up`` applies)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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


def plan_aws(project: Project, aws: Clients, image: Any = None, remote: Remote | None = None) -> PlannedStack:
    """Diff the config against the account. ``image``: a URI, ``Ref("image")`` (built later) or None (keep)."""
    remote = remote or Remote(aws)
    spec = StackSpec.of(project, remote, image=image)
    known: Known = {}
    plan = stack.plan_up(spec, remote, known)
    plan.estimate = estimate(project, aws.region)
    return PlannedStack(plan, spec, remote, known)


def estimate(project: Project, region: str) -> dict | None:
    """Monthly cost before traffic from ``mldeploy.cost`` (guarded: a plan never fails on an estimate)."""
    try:
        from mldeploy.cost import estimate_for_config, plan_line

        est = estimate_for_config(project.config, None, region=region)
        return {"monthly_usd": round(float(est.total), 2), "line": plan_line(project.config, region=region)}
    except Exception:  # an estimate must never break a deployment
        return None


IMAGE = Ref("image")
"""The image ``up`` builds and pushes after planning (the executor gets its value before applying)."""
