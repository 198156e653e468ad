"""The resource families in dependency order, and the ``up`` / ``down`` plans built from them.

Every family module in ``aws/resources/`` offers ``plan(spec, remote, known) -> [Step]`` (desired state from the
config, diffed against what ``remote`` describes) and ``delete(spec, remote, known) -> [Step]``. ``up`` plans the
families in ``RESOURCES`` order (each may read the values earlier ones put in ``known``); ``down`` deletes them in
the reverse order, for every role a family has (the canary's service, target group and alarms included), so
whatever ``up`` or ``canary`` creates, ``down`` deletes.

HTTPS (``aws.domain``): the alias record follows the load balancer (``dns``), the ACM certificate comes before the
listeners that use it (``certificate``: request, validation record, wait until issued — while the new load balancer
provisions). ``down`` thus deletes the listeners before the certificate (ACM refuses to delete a certificate in
use) and the alias record before the load balancer.

A running canary is sized from the stable service on every ``up`` (``canary size``) as on every ``canary
--percent``: ``canary_count`` of the stable service's desired count and the canary's listener weight.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mldeploy.aws.engine.model import Action, ApiCall, Plan, Step
from mldeploy.aws.engine.spec import Known, Role, StackSpec
from mldeploy.aws.resources import (
    alarms,
    autoscaling,
    capacity,
    certificate,
    cluster,
    dashboard,
    dns,
    ecr,
    iam,
    instance_role,
    launch_template,
    listener,
    load_balancer,
    log_group,
    model_store,
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


def canary_count(stable: int, percent: int) -> int:
    """Tasks for a canary taking ``percent`` % of the traffic: its share of the stable service's tasks, at least
    one — the same load per task as the stable tasks, so its latency alarm measures the model, not capacity."""
    return max(1, math.ceil(stable * percent / 100))


def stable_count(spec: StackSpec, remote: Remote) -> int:
    """The stable service's desired count once ``up`` applied (autoscaling's, pulled into the configured range)."""
    stable = service.read(spec.as_role("stable"), remote)
    auto = spec.config.aws.autoscaling
    if stable is None:
        return service.desired_count(spec.as_role("stable"))
    return max(auto.min, min(auto.max, int(stable.get("desiredCount", 0))))


def canary_percent(spec: StackSpec, remote: Remote, known: Known) -> int:
    """The canary's share of the traffic listener's forward (0 without one)."""
    weights = listener.read_weights(spec, remote, known)
    total = sum(weights.values())
    return round(100 * weights.get(spec.names.canary_target_group, 0) / total) if total else 0


def plan_canary_size(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """A running canary's desired count recomputed from the stable service's (``up`` may have changed it, and
    autoscaling moves it between commands); nothing without a canary."""
    canary = spec.as_role("canary")
    cur = service.read(canary, remote)
    if cur is None:
        return []
    base, percent = stable_count(spec, remote), canary_percent(spec, remote, known)
    want, have = canary_count(base, percent), int(cur.get("desiredCount", 0))
    if want == have:
        return [Step(service.KIND, canary.service_name, Action.noop)]
    return [Step(service.KIND, canary.service_name, Action.update,
                 [f"desired count {have} → {want} ({percent}% of {base} stable tasks)"], calls=[
        ApiCall("ecs", "update_service", {"cluster": spec.names.cluster, "service": canary.service_name,
                                          "desiredCount": want})])]


def _nothing(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """No delete of its own (``service.delete`` removes the canary service)."""
    return []

RESOURCES: tuple[Family, ...] = (
    Family("ecr", ecr.plan, ecr.delete, purge_only=True),
    Family("model store", model_store.plan, model_store.delete),
    Family("execution role", iam.plan_execution_role, iam.delete_execution_role),
    Family("task role", iam.plan_task_role, iam.delete_task_role),
    Family("instance role", instance_role.plan, instance_role.delete),  # aws.compute: ec2 (the next three too)
    Family("log group", log_group.plan, log_group.delete),
    Family("cluster", cluster.plan, cluster.delete),
    Family("security groups", security_groups.plan, security_groups.delete),
    Family("launch template", launch_template.plan, launch_template.delete),
    Family("auto scaling group", capacity.plan_asg, capacity.delete_asg),
    Family("capacity provider", capacity.plan_provider, capacity.delete_provider),
    Family("load balancer", load_balancer.plan, load_balancer.delete),
    Family("dns", dns.plan, dns.delete),
    Family("target group", target_group.plan, target_group.delete, roles=BOTH),
    Family("certificate", certificate.plan, certificate.delete),
    Family("listeners", listener.plan, listener.delete),
    Family("private paths", listener.plan_private_paths, listener.delete_private_paths),
    Family("task definition", task_definition.plan, task_definition.delete),
    Family("service", service.plan, service.delete, roles=BOTH),
    Family("canary size", plan_canary_size, _nothing),
    Family("ec2 cleanup", capacity.plan_cleanup, _nothing),  # compute ec2 → fargate: once the service moved
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
    plan.notes += dns.notes(spec, remote, known)
    note = certificate.endpoint_note(spec)
    if note:
        plan.notes.append(note)
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
