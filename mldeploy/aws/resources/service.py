"""ECS service: Fargate / Fargate Spot capacity, circuit breaker with rollback, grace period, ALB attachment."""

from __future__ import annotations

from typing import Any

from mldeploy.aws.clients import call
from mldeploy.aws.context import CONTAINER_NAME, DeployContext, tag_dict
from mldeploy.aws.plan import Action, Pending, Step, is_pending


def describe(ctx: DeployContext, name: str | None = None) -> dict | None:
    found = call(ctx.aws.ecs.describe_services, cluster=ctx.names.cluster, services=[name or ctx.names.service],
                 include=["TAGS"], missing=("ClusterNotFoundException",))
    if not found:
        return None
    return next((s for s in found["services"] if s["status"] != "INACTIVE"), None)


def capacity_strategy(ctx: DeployContext) -> list[dict[str, Any]]:
    spot = ctx.config.aws.spot
    if not spot.enabled:
        return [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}]
    return [{"capacityProvider": "FARGATE", "weight": 100 - spot.weight, "base": spot.base},
            {"capacityProvider": "FARGATE_SPOT", "weight": spot.weight, "base": 0}]


def network(ctx: DeployContext) -> dict[str, Any]:
    return {"awsvpcConfiguration": {"subnets": list(ctx.outputs["subnet_ids"]),
                                    "securityGroups": [ctx.outputs["task_sg_id"]],
                                    "assignPublicIp": "ENABLED" if ctx.config.aws.assign_public_ip else "DISABLED"}}


DEPLOYMENT = {"deploymentCircuitBreaker": {"enable": True, "rollback": True},
              "maximumPercent": 200, "minimumHealthyPercent": 100}


def desired(ctx: DeployContext, name: str | None = None, target_group_key: str = "tg_arn",
            desired_count: int | None = None) -> dict[str, Any]:
    """create_service arguments (``name``/``target_group_key`` let the release commands add a canary service)."""
    aws = ctx.config.aws
    count = aws.desired_count if desired_count is None else desired_count
    return {
        "cluster": ctx.names.cluster,
        "serviceName": name or ctx.names.service,
        "taskDefinition": ctx.outputs["task_definition_arn"],
        "desiredCount": max(aws.autoscaling.min, min(aws.autoscaling.max, count)) if desired_count is None else count,
        "capacityProviderStrategy": capacity_strategy(ctx),
        "platformVersion": "LATEST",
        "networkConfiguration": network(ctx),
        "loadBalancers": [{"targetGroupArn": ctx.outputs[target_group_key], "containerName": CONTAINER_NAME,
                           "containerPort": ctx.config.runtime.port}],
        "healthCheckGracePeriodSeconds": aws.health_check.grace_period_s,
        "deploymentConfiguration": DEPLOYMENT,
        "deploymentController": {"type": "ECS"},
        "propagateTags": "SERVICE",
        "enableECSManagedTags": True,
        "tags": ctx.tag_list("key", "value"),
    }


def _norm_net(n: dict | None) -> tuple:
    c = (n or {}).get("awsvpcConfiguration") or {}
    return (tuple(sorted(c.get("subnets", []))), tuple(sorted(c.get("securityGroups", []))), c.get("assignPublicIp"))


def diff(cur: dict[str, Any], want: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Changes and the update_service arguments that make them.

    Fields missing from the describe answer are not compared: real ECS always returns them, the moto emulator
    omits ``deploymentConfiguration``, ``capacityProviderStrategy`` and ``healthCheckGracePeriodSeconds``.
    """
    changes: list[str] = []
    update: dict[str, Any] = {}
    if cur.get("taskDefinition") != want["taskDefinition"]:
        old = str(cur.get("taskDefinition", "")).rsplit("/", 1)[-1]
        new = want["taskDefinition"]
        changes.append(f"task definition {old} → {new if is_pending(new) else new.rsplit('/', 1)[-1]}")
        update["taskDefinition"] = want["taskDefinition"]
    if _norm_net(cur.get("networkConfiguration")) != _norm_net(want["networkConfiguration"]):
        changes.append("network (subnets / security group / public IP)")
        update["networkConfiguration"] = want["networkConfiguration"]
    if "healthCheckGracePeriodSeconds" in cur and \
            cur["healthCheckGracePeriodSeconds"] != want["healthCheckGracePeriodSeconds"]:
        changes.append(f"grace period {cur['healthCheckGracePeriodSeconds']}s → "
                       f"{want['healthCheckGracePeriodSeconds']}s")
        update["healthCheckGracePeriodSeconds"] = want["healthCheckGracePeriodSeconds"]
    if "deploymentConfiguration" in cur:
        dc = cur["deploymentConfiguration"]
        if (dc.get("deploymentCircuitBreaker"), dc.get("maximumPercent"), dc.get("minimumHealthyPercent")) != \
                (DEPLOYMENT["deploymentCircuitBreaker"], DEPLOYMENT["maximumPercent"],
                 DEPLOYMENT["minimumHealthyPercent"]):
            changes.append("deployment circuit breaker / min-max percent")
            update["deploymentConfiguration"] = DEPLOYMENT
    if "capacityProviderStrategy" in cur:
        norm = sorted((s["capacityProvider"], s.get("weight", 0), s.get("base", 0))
                      for s in cur["capacityProviderStrategy"])
        if norm != sorted((s["capacityProvider"], s["weight"], s["base"]) for s in want["capacityProviderStrategy"]):
            changes.append("capacity providers → " + ", ".join(
                f"{s['capacityProvider']} w{s['weight']}" for s in want["capacityProviderStrategy"]))
            update["capacityProviderStrategy"] = want["capacityProviderStrategy"]
            update["forceNewDeployment"] = True
    lbs = {(lb.get("targetGroupArn"), lb.get("containerPort")) for lb in cur.get("loadBalancers", [])}
    want_lb = want["loadBalancers"][0]
    if (want_lb["targetGroupArn"], want_lb["containerPort"]) not in lbs:
        changes.append("load balancer target group")
        update["loadBalancers"] = want["loadBalancers"]
    return changes, update


def plan(ctx: DeployContext) -> list[Step]:
    name = ctx.names.service
    cur = describe(ctx)
    ecs = ctx.aws.ecs
    want = desired(ctx)
    spot = ctx.config.aws.spot
    capacity = (f"Fargate Spot {spot.weight}% (base {spot.base} on-demand)" if spot.enabled else "Fargate on-demand")
    if cur is None:
        ctx.outputs["service_arn"] = Pending("service")

        def create(c: DeployContext) -> None:
            svc = call(ecs.create_service, **desired(c))["service"]
            c.outputs["service_arn"] = svc["serviceArn"]

        return [Step("ecs service", name, Action.create,
                     [f"{want['desiredCount']} tasks", capacity, "circuit breaker + rollback"], apply=create)]
    ctx.check_owned("ECS service", name, tag_dict(cur.get("tags")))
    ctx.outputs["service_arn"] = cur["serviceArn"]
    changes, update = diff(cur, want)
    auto = ctx.config.aws.autoscaling
    # autoscaling owns desiredCount between min and max; only pull it back into range
    if not auto.min <= cur.get("desiredCount", 0) <= auto.max:
        target = max(auto.min, min(auto.max, cur.get("desiredCount", 0)))
        changes.append(f"desired count {cur.get('desiredCount')} → {target}")
        update["desiredCount"] = target
    if not changes:
        return [Step("ecs service", name, Action.noop)]

    def apply(c: DeployContext) -> None:
        fresh = desired(c)  # references (task definition ARN, target group) resolved now that earlier steps ran
        args = dict(update)
        for key in args.keys() & fresh.keys() - {"desiredCount"}:
            args[key] = fresh[key]
        call(ecs.update_service, cluster=c.names.cluster, service=name, **args)

    return [Step("ecs service", name, Action.update, changes, apply=apply)]


def delete(ctx: DeployContext, name: str | None = None) -> bool:
    name = name or ctx.names.service
    cur = describe(ctx, name)
    if cur is None:
        return False
    call(ctx.aws.ecs.delete_service, cluster=ctx.names.cluster, service=name, force=True,
         missing=("ServiceNotFoundException",))
    return True
