"""Application Auto Scaling: min/max tasks, target tracking on CPU and (optionally) ALB requests per target."""

from __future__ import annotations

from typing import Any

from mldeploy.aws.clients import call
from mldeploy.aws.context import DeployContext
from mldeploy.aws.plan import Action, Step, is_pending

NS, DIM = "ecs", "ecs:service:DesiredCount"


def resource_id(ctx: DeployContext) -> str:
    return f"service/{ctx.names.cluster}/{ctx.names.service}"


def policies(ctx: DeployContext) -> dict[str, dict[str, Any]]:
    """Policy name → TargetTrackingScalingPolicyConfiguration."""
    a = ctx.config.aws.autoscaling
    out = {f"{ctx.names.base}-cpu": {
        "TargetValue": float(a.cpu_target),
        "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
        "ScaleInCooldown": a.scale_in_cooldown_s, "ScaleOutCooldown": a.scale_out_cooldown_s}}
    if a.requests_per_target:
        label = f"{ctx.outputs['alb_full_name']}/{ctx.outputs['tg_arn'].split(':', 5)[5]}"
        out[f"{ctx.names.base}-requests"] = {
            "TargetValue": float(a.requests_per_target),
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ALBRequestCountPerTarget",
                                              "ResourceLabel": label},
            "ScaleInCooldown": a.scale_in_cooldown_s, "ScaleOutCooldown": a.scale_out_cooldown_s}
    return out


def _label_pending(ctx: DeployContext) -> bool:
    return is_pending(ctx.outputs.get("alb_full_name")) or is_pending(ctx.outputs.get("tg_arn"))


def plan(ctx: DeployContext) -> list[Step]:
    aas = ctx.aws.get("application-autoscaling")
    a = ctx.config.aws.autoscaling
    rid = resource_id(ctx)
    targets = call(aas.describe_scalable_targets, ServiceNamespace=NS, ResourceIds=[rid],
                   ScalableDimension=DIM)["ScalableTargets"]
    steps: list[Step] = []
    name = f"{ctx.names.service} ({a.min}–{a.max} tasks)"

    def register(c: DeployContext) -> None:
        call(aas.register_scalable_target, ServiceNamespace=NS, ResourceId=rid, ScalableDimension=DIM,
             MinCapacity=a.min, MaxCapacity=a.max, Tags=c.tags)

    if not targets:
        steps.append(Step("scalable target", name, Action.create, [f"min {a.min}, max {a.max}"], apply=register))
        current_policies: dict[str, dict] = {}
    else:
        t = targets[0]
        if (t["MinCapacity"], t["MaxCapacity"]) != (a.min, a.max):
            steps.append(Step("scalable target", name, Action.update,
                              [f"min/max {t['MinCapacity']}/{t['MaxCapacity']} → {a.min}/{a.max}"],
                              apply=lambda c: call(aas.register_scalable_target, ServiceNamespace=NS,
                                                   ResourceId=rid, ScalableDimension=DIM,
                                                   MinCapacity=a.min, MaxCapacity=a.max)))
        else:
            steps.append(Step("scalable target", name, Action.noop))
        found = call(aas.describe_scaling_policies, ServiceNamespace=NS, ResourceId=rid, ScalableDimension=DIM)
        current_policies = {p["PolicyName"]: p.get("TargetTrackingScalingPolicyConfiguration", {})
                            for p in found["ScalingPolicies"]}
    want_names = set(policies(ctx)) if not _label_pending(ctx) else {
        f"{ctx.names.base}-cpu", *([f"{ctx.names.base}-requests"] if a.requests_per_target else [])}
    want = policies(ctx) if not _label_pending(ctx) else {}
    for pname in sorted(want_names):

        def put(c: DeployContext, pname: str = pname) -> None:
            call(aas.put_scaling_policy, PolicyName=pname, ServiceNamespace=NS, ResourceId=rid,
                 ScalableDimension=DIM, PolicyType="TargetTrackingScaling",
                 TargetTrackingScalingPolicyConfiguration=policies(c)[pname])

        kind = "requests per target" if pname.endswith("-requests") else "CPU"
        if pname not in current_policies:
            target = a.requests_per_target if kind != "CPU" else a.cpu_target
            steps.append(Step("scaling policy", pname, Action.create, [f"target tracking {kind} = {target}"],
                              apply=put))
            continue
        cur = current_policies[pname]
        keys = ("TargetValue", "PredefinedMetricSpecification", "ScaleInCooldown", "ScaleOutCooldown")
        if pname in want and {k: cur.get(k) for k in keys} == {k: want[pname].get(k) for k in keys}:
            steps.append(Step("scaling policy", pname, Action.noop))
        else:
            steps.append(Step("scaling policy", pname, Action.update, ["target / cooldowns"], apply=put))
    for pname in sorted(set(current_policies) - want_names):
        steps.append(Step("scaling policy", pname, Action.delete, ["not configured"],
                          apply=lambda c, p=pname: call(aas.delete_scaling_policy, PolicyName=p, ServiceNamespace=NS,
                                                        ResourceId=rid, ScalableDimension=DIM)))
    return steps


def delete(ctx: DeployContext) -> bool:
    aas = ctx.aws.get("application-autoscaling")
    rid = resource_id(ctx)
    targets = call(aas.describe_scalable_targets, ServiceNamespace=NS, ResourceIds=[rid],
                   ScalableDimension=DIM)["ScalableTargets"]
    if not targets:
        return False
    call(aas.deregister_scalable_target, ServiceNamespace=NS, ResourceId=rid, ScalableDimension=DIM,
         missing=("ObjectNotFoundException",))
    return True
