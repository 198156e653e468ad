"""The resource families in dependency order, and the ``up`` / ``down`` plans built from them.

Every family module in ``aws/resources/`` offers ``plan(spec, remote, known) -> [Step]`` (desired state from the
config, diffed against what ``remote`` describes) and ``delete(spec, remote, known) -> [Step]``. ``up`` plans the
families in ``RESOURCES`` order (each may read the values earlier ones put in ``known``); ``down`` deletes them in
the reverse order, for every role a family has (the canary's service, target group and alarms included), so
whatever ``up`` or ``canary`` creates, ``down`` deletes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mldeploy.aws.engine.model import Plan, Step
from mldeploy.aws.engine.spec import Known, Role, StackSpec
from mldeploy.aws.resources import (
    alarms,
    autoscaling,
    cluster,
    dashboard,
    ecr,
    iam,
    listener,
    load_balancer,
    log_group,
    network,
    security_groups,
    service,
    stack_outputs,
    target_group,
    task_definition,
)

if TYPE_CHECKING:
    from mldeploy.aws.engine.remote import Remote

Planner = Callable[[StackSpec, "Remote", Known], list[Step]]


@dataclass(frozen=True)
class Family:
    """One resource family: how to plan it, how to delete it, and the roles it exists in."""

    name: str
    plan: Planner
    delete: Planner
    roles: tuple[Role, ...] = ("stable",)
    purge_only: bool = False
    """Deleted by ``down --purge`` only (the ECR repository and its images)."""


BOTH: tuple[Role, ...] = ("stable", "canary")

RESOURCES: tuple[Family, ...] = (
    Family("ecr", ecr.plan, ecr.delete, purge_only=True),
    Family("execution role", iam.plan_execution_role, iam.delete_execution_role),
    Family("task role", iam.plan_task_role, iam.delete_task_role),
    Family("log group", log_group.plan, log_group.delete),
    Family("cluster", cluster.plan, cluster.delete),
    Family("security groups", security_groups.plan, security_groups.delete),
    Family("load balancer", load_balancer.plan, load_balancer.delete),
    Family("target group", target_group.plan, target_group.delete, roles=BOTH),
    Family("listeners", listener.plan, listener.delete),
    Family("private paths", listener.plan_private_paths, listener.delete_private_paths),
    Family("task definition", task_definition.plan, task_definition.delete),
    Family("service", service.plan, service.delete, roles=BOTH),
    Family("autoscaling", autoscaling.plan, autoscaling.delete),
    Family("sns topic", alarms.plan_topic, alarms.delete_topic),
    Family("alarms", alarms.plan, alarms.delete, roles=BOTH),
    Family("dashboard", dashboard.plan, dashboard.delete),
    Family("outputs", stack_outputs.plan, stack_outputs.delete),
)


def plan_up(spec: StackSpec, remote: Remote, known: Known | None = None) -> Plan:
    """Read the current state of every stable-role resource and diff it against the config."""
    known = {} if known is None else known
    plan = Plan()
    plan.notes += network.resolve(spec, remote, known)
    for family in RESOURCES:
        plan.add(family.plan(spec, remote, known))
    return plan


def plan_down(spec: StackSpec, remote: Remote, *, purge: bool = False, known: Known | None = None) -> Plan:
    """Delete steps for every family and role, in reverse dependency order (ECR only with ``purge``)."""
    known = {} if known is None else known
    plan = Plan()
    if not network.try_resolve(spec, remote, known):
        plan.notes.append("the VPC is gone: no security groups to delete")
    for family in reversed(RESOURCES):
        if family.purge_only and not purge:
            continue
        for role in reversed(family.roles):
            plan.add(family.delete(spec.as_role(role), remote, known))
    return plan
