"""Describe what exists and build the ordered plan (dependencies first)."""

from __future__ import annotations

from collections.abc import Callable

from mldeploy.aws.context import DeployContext
from mldeploy.aws.plan import Plan, Step
from mldeploy.aws.resources import (
    alb,
    autoscaling,
    cluster,
    ecr,
    iam,
    monitoring,
    network,
    security_groups,
    service,
    task_definition,
)
from mldeploy.aws.resources import (
    log_group as logs,
)
from mldeploy.aws.resources import (
    stack_outputs as outputs,
)

# Topological order: every planner may read outputs recorded by those before it.
ORDER: list[tuple[str, Callable[[DeployContext], list[Step]]]] = [
    ("ecr", ecr.plan),
    ("execution role", iam.plan_execution_role),
    ("task role", iam.plan_task_role),
    ("log group", logs.plan),
    ("cluster", cluster.plan),
    ("security groups", security_groups.plan),
    ("load balancer", alb.plan_load_balancer),
    ("target group", alb.plan_target_group),
    ("listeners", alb.plan_listeners),
    ("private paths", alb.plan_private_paths),
    ("task definition", task_definition.plan),
    ("service", service.plan),
    ("autoscaling", autoscaling.plan),
    ("sns topic", monitoring.plan_topic),
    ("alarms", monitoring.plan_alarms),
    ("dashboard", monitoring.plan_dashboard),
    ("outputs", outputs.plan),
]


def make_plan(ctx: DeployContext) -> Plan:
    """Read the current state of every resource and diff it against the config."""
    plan = Plan()
    plan.notes += network.resolve(ctx)
    for _, planner in ORDER:
        plan.add(planner(ctx))
    plan.estimate = estimate(ctx)
    return plan


def estimate(ctx: DeployContext) -> dict | None:
    """Monthly cost before traffic from ``mldeploy.cost`` (another area; guarded so a plan never fails on it)."""
    try:
        from mldeploy.cost import estimate_for_config, plan_line
    except ImportError:
        return None
    try:
        est = estimate_for_config(ctx.config, None, region=ctx.aws.region)
        return {"monthly_usd": round(float(est.total), 2), "line": plan_line(ctx.config, region=ctx.aws.region)}
    except Exception:  # an estimate must never break a deployment
        return None
