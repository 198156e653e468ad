"""Application Auto Scaling of the stable service: min/max tasks, target tracking on CPU and (optionally) ALB
requests per target. Reads ``known``: ``alb_full_name``, ``tg_arn`` (for the requests policy's ResourceLabel)."""

from __future__ import annotations

from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, RetryOn, Step, is_unknown, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec
from mldeploy.aws.resources.alarms import fmt, tg_dimension

NS, DIM = "ecs", "ecs:service:DesiredCount"
SERVICE = "application-autoscaling"
TARGET_KIND, POLICY_KIND = "scalable target", "scaling policy"
POLICY_KEYS = ("TargetValue", "PredefinedMetricSpecification", "ScaleInCooldown", "ScaleOutCooldown")

# Eventual consistency on fresh accounts, retried for IAM's propagation time like Terraform (terraform-provider-aws,
# internal/service/appautoscaling/target.go registerScalableTarget: ValidationException "Unable to assume IAM role"
# while the AWSServiceRoleForApplicationAutoScaling_ECSService service-linked role is being created, and "ECS
# service doesn't exist" right after CreateService; policy.go resourcePolicyUpdate: PutScalingPolicy on
# FailedResourceAccessException and ObjectNotFoundException while the new scalable target is not visible yet).
REGISTER_RETRY = (RetryOn("ValidationException", "Unable to assume IAM role"),
                  RetryOn("ValidationException", "ECS service doesn't exist"))
POLICY_RETRY = (RetryOn("FailedResourceAccessException"), RetryOn("ObjectNotFoundException"))
PROPAGATION_S = 120.0
"""Terraform's propagationTimeout (2 minutes)."""


def resource_id(spec: StackSpec) -> str:
    return f"service/{spec.names.cluster}/{spec.names.service}"


def _target(spec: StackSpec) -> dict[str, str]:
    return {"ServiceNamespace": NS, "ResourceId": resource_id(spec), "ScalableDimension": DIM}


def resource_label(known: Known) -> Any:
    """``app/LB/ID/targetgroup/TG/ID``: Application Auto Scaling's ResourceLabel is "the final portion of the load
    balancer ARN and the final portion of the target group ARN … separated by a forward slash" (service-2.json)."""
    return fmt("{lb}/{tg}", lb=known["alb_full_name"], tg=tg_dimension(known["tg_arn"]))


def policies(spec: StackSpec, known: Known) -> dict[str, dict[str, Any]]:
    """Policy name → TargetTrackingScalingPolicyConfiguration."""
    a = spec.config.aws.autoscaling
    cooldowns = {"ScaleInCooldown": a.scale_in_cooldown_s, "ScaleOutCooldown": a.scale_out_cooldown_s}
    out = {f"{spec.names.base}-cpu": {
        "TargetValue": float(a.cpu_target),
        "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}, **cooldowns}}
    if a.requests_per_target:
        out[f"{spec.names.base}-requests"] = {
            "TargetValue": float(a.requests_per_target),
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ALBRequestCountPerTarget",
                                              "ResourceLabel": resource_label(known)}, **cooldowns}
    return out


def _register(spec: StackSpec, tags: bool) -> ApiCall:
    a = spec.config.aws.autoscaling
    params: dict[str, Any] = {**_target(spec), "MinCapacity": a.min, "MaxCapacity": a.max}
    if tags:
        params["Tags"] = spec.tags
    return ApiCall(SERVICE, "register_scalable_target", params, retry=REGISTER_RETRY, retry_timeout_s=PROPAGATION_S)


def _read_target(spec: StackSpec, remote: Remote) -> dict[str, Any] | None:
    found = remote.get(SERVICE, "describe_scalable_targets", ServiceNamespace=NS, ResourceIds=[resource_id(spec)],
                       ScalableDimension=DIM)["ScalableTargets"]
    return found[0] if found else None


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    a = spec.config.aws.autoscaling
    name = f"{spec.names.service} ({a.min}–{a.max} tasks)"
    steps: list[Step] = []
    target = _read_target(spec, remote)
    current: dict[str, dict[str, Any]] = {}
    if target is None:
        steps.append(Step(TARGET_KIND, name, Action.create, [f"min {a.min}, max {a.max}"],
                          calls=[_register(spec, tags=True)]))
    else:
        # a scheduled action moved min/max to one of its ranges: that is the schedule working, not drift
        ranges = {(a.min, a.max), *((s.min, s.max) for s in a.schedule)}
        if (target["MinCapacity"], target["MaxCapacity"]) not in ranges:
            steps.append(Step(TARGET_KIND, name, Action.update,
                              [f"min/max {target['MinCapacity']}/{target['MaxCapacity']} → {a.min}/{a.max}"],
                              calls=[_register(spec, tags=False)]))
        else:
            steps.append(noop(TARGET_KIND, name))
        found = remote.get(SERVICE, "describe_scaling_policies", **_target(spec))["ScalingPolicies"]
        current = {p["PolicyName"]: p.get("TargetTrackingScalingPolicyConfiguration", {}) for p in found}
    want = policies(spec, known)
    for pname, config in sorted(want.items()):
        put = ApiCall(SERVICE, "put_scaling_policy", {"PolicyName": pname, **_target(spec),
                                                      "PolicyType": "TargetTrackingScaling",
                                                      "TargetTrackingScalingPolicyConfiguration": config},
                      retry=POLICY_RETRY, retry_timeout_s=PROPAGATION_S)
        requests = pname.endswith("-requests")
        if pname not in current:
            value = a.requests_per_target if requests else a.cpu_target
            steps.append(Step(POLICY_KIND, pname, Action.create,
                              [f"target tracking {'requests per target' if requests else 'CPU'} = {value}"],
                              calls=[put]))
        elif not is_unknown(config) and {k: current[pname].get(k) for k in POLICY_KEYS} == \
                {k: config.get(k) for k in POLICY_KEYS}:
            steps.append(noop(POLICY_KIND, pname))
        else:
            steps.append(Step(POLICY_KIND, pname, Action.update, ["target / cooldowns"], calls=[put]))
    for pname in sorted(set(current) - set(want)):
        steps.append(Step(POLICY_KIND, pname, Action.delete, ["not configured"], calls=[
            ApiCall(SERVICE, "delete_scaling_policy", {"PolicyName": pname, **_target(spec)},
                    missing=("ObjectNotFoundException",))]))
    return steps + plan_schedule(spec, remote, target is not None)


SCHEDULE_KIND = "scheduled action"


def scheduled_actions(spec: StackSpec) -> dict[str, dict[str, Any]]:
    """Action name → put_scheduled_action arguments, one per ``aws.autoscaling.schedule`` entry. Names: "unique
    among all other scheduled actions on the specified scalable target", no ``:/|`` (botocore
    application-autoscaling ScheduledActionName)."""
    out = {}
    for i, entry in enumerate(spec.config.aws.autoscaling.schedule, start=1):
        n = f"{spec.names.base}-schedule-{i}"
        out[n] = {"ScheduledActionName": n, **_target(spec), "Schedule": f"cron({entry.cron})",
                  "ScalableTargetAction": {"MinCapacity": entry.min, "MaxCapacity": entry.max}}
    return out


def plan_schedule(spec: StackSpec, remote: Remote, exists: bool) -> list[Step]:
    """Scheduled actions (PutScheduledAction creates or updates one by name; cron in UTC)."""
    current: dict[str, dict[str, Any]] = {}
    if exists:
        found = remote.get(SERVICE, "describe_scheduled_actions", ServiceNamespace=NS,
                           ResourceId=resource_id(spec), ScalableDimension=DIM)["ScheduledActions"]
        current = {x["ScheduledActionName"]: x for x in found}
    steps: list[Step] = []
    for n, args in scheduled_actions(spec).items():
        act = args["ScalableTargetAction"]
        what = [f"{args['Schedule']} UTC → min {act['MinCapacity']}, max {act['MaxCapacity']}"]
        put = ApiCall(SERVICE, "put_scheduled_action", args, retry=POLICY_RETRY, retry_timeout_s=PROPAGATION_S)
        cur = current.get(n)
        if cur is None:
            steps.append(Step(SCHEDULE_KIND, n, Action.create, what, calls=[put]))
        elif (cur.get("Schedule"), {k: (cur.get("ScalableTargetAction") or {}).get(k) for k in act}) == \
                (args["Schedule"], act):
            steps.append(noop(SCHEDULE_KIND, n))
        else:
            steps.append(Step(SCHEDULE_KIND, n, Action.update, what, calls=[put]))
    for n in sorted(set(current) - set(scheduled_actions(spec))):
        steps.append(Step(SCHEDULE_KIND, n, Action.delete, ["not configured"], calls=[
            ApiCall(SERVICE, "delete_scheduled_action", {"ScheduledActionName": n, **_target(spec)},
                    missing=("ObjectNotFoundException",))]))
    return steps


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """Deregister the scalable target: "Deregistering a scalable target deletes the scaling policies and the
    scheduled actions that are associated with it" (DeregisterScalableTarget, service-2.json)."""
    if _read_target(spec, remote) is None:
        return []
    a = spec.config.aws.autoscaling
    return [Step(TARGET_KIND, f"{spec.names.service} ({a.min}–{a.max} tasks)", Action.delete, ["with its policies"],
                 calls=[ApiCall(SERVICE, "deregister_scalable_target", _target(spec),
                                missing=("ObjectNotFoundException",))])]
