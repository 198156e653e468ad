"""The ip target groups: the stable one (``up``) and the canary's (``canary``), both with the config's health check.

Role-aware: ``spec.target_group_name`` names it and ``known[spec.key("tg_arn")]`` carries its ARN (``tg_arn`` or
``canary.tg_arn``; a ``Ref`` to ``create_target_group``'s output when this plan creates it). Reads
``known["vpc_id"]``. For the canary role ``plan`` is called by the release commands only; ``down`` deletes both.
"""

from __future__ import annotations

from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Ref, RetryOn, Step, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec
from mldeploy.aws.resources.load_balancer import tags
from mldeploy.errors import AwsError

KIND = "target group"
DELAY = "deregistration_delay.timeout_seconds"

# DeleteTargetGroup answers ResourceInUse while a listener or rule still references the group ("You can delete a
# target group if it is not referenced by any actions", ELBv2 API reference); right after the listener is deleted
# that can still be the case for a moment, so retry like Terraform's aws_lb_target_group (terraform-provider-aws
# internal/service/elbv2/target_group.go, resourceTargetGroupDelete: 2 minutes on "in use by a listener or a rule").
IN_USE = RetryOn("ResourceInUse", "in use by a listener or a rule")
DELETE_TIMEOUT_S = 120.0


def read(spec: StackSpec, remote: Remote) -> dict | None:
    """The role's target group (``spec.target_group_name``), or None."""
    found = remote.get("elbv2", "describe_target_groups", Names=[spec.target_group_name],
                       missing=("TargetGroupNotFound",))
    return found["TargetGroups"][0] if found and found["TargetGroups"] else None


def settings(spec: StackSpec) -> dict[str, Any]:
    """The health check both roles' target groups get (``aws.health_check``)."""
    hc = spec.config.aws.health_check
    return {"HealthCheckPath": hc.path, "HealthCheckIntervalSeconds": hc.interval_s,
            "HealthCheckTimeoutSeconds": hc.timeout_s, "HealthyThresholdCount": hc.healthy_threshold,
            "UnhealthyThresholdCount": hc.unhealthy_threshold, "Matcher": {"HttpCode": "200"}}


def _set_delay(arn: Any, delay: str) -> ApiCall:
    return ApiCall("elbv2", "modify_target_group_attributes", {
        "TargetGroupArn": arn, "Attributes": [{"Key": DELAY, "Value": delay}]})


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    name, key = spec.target_group_name, spec.key("tg_arn")
    port = spec.config.runtime.port
    delay = str(spec.config.aws.health_check.deregistration_delay_s)
    wanted = settings(spec)
    vpc = known["vpc_id"]
    tg = read(spec, remote)
    if tg is None:
        known[key] = Ref(key)
        return [Step(KIND, name, Action.create,
                     [f"ip:{port}, health {wanted['HealthCheckPath']}, deregistration {delay}s"], calls=[
            ApiCall("elbv2", "create_target_group", {
                "Name": name, "Protocol": "HTTP", "Port": port, "VpcId": vpc, "TargetType": "ip",
                "HealthCheckProtocol": "HTTP", "HealthCheckEnabled": True, "Tags": spec.tag_list(), **wanted},
                outputs=((key, "TargetGroups[0].TargetGroupArn"),)),
            _set_delay(Ref(key), delay)])]
    arn = tg["TargetGroupArn"]
    spec.check_owned("target group", name, tags(remote, arn))
    if tg["Port"] != port or tg.get("VpcId") != vpc:
        raise AwsError(f"target group {name!r} serves port {tg['Port']} in {tg.get('VpcId')}; the config asks for "
                       f"port {port} in {vpc}, which AWS cannot change in place",
                       hint="run `mldeploy down` then `mldeploy up` to recreate the load balancer resources")
    known[key] = arn
    changes, calls = [], []
    diff = {k: v for k, v in wanted.items() if tg.get(k) != v}
    if diff:
        changes.append("health check " + ", ".join(f"{k.removeprefix('HealthCheck')}={v}" for k, v in diff.items()))
        calls.append(ApiCall("elbv2", "modify_target_group", {"TargetGroupArn": arn, **wanted}))
    attrs = {a["Key"]: a["Value"] for a in
             remote.get("elbv2", "describe_target_group_attributes", TargetGroupArn=arn)["Attributes"]}
    if attrs.get(DELAY) != delay:
        changes.append(f"deregistration delay {attrs.get(DELAY)}s → {delay}s")
        calls.append(_set_delay(arn, delay))
    if not changes:
        return [noop(KIND, name)]
    return [Step(KIND, name, Action.update, changes, calls=calls)]


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """The role's target group when tagged ours (after the listeners that forward to it)."""
    tg = read(spec, remote)
    if tg is None or not spec.owns(tags(remote, tg["TargetGroupArn"])):
        return []
    return [Step(KIND, spec.target_group_name, Action.delete, calls=[
        ApiCall("elbv2", "delete_target_group", {"TargetGroupArn": tg["TargetGroupArn"]},
                missing=("TargetGroupNotFound",), retry=(IN_USE,), retry_timeout_s=DELETE_TIMEOUT_S)])]
