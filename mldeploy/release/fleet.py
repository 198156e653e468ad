"""The ECS/ELBv2/CloudWatch calls behind canary, promote and rollback.

``read_fleet`` reads what runs now (stable and canary services, target groups, the listeners that forward to
the stable target group and their weights). The other functions each make one change. The stable service,
target group, load balancer and listener are created by ``mldeploy up`` (``mldeploy.aws``); this module only
adds the canary next to them, copying the stable service's settings so the canary differs only in its image.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mldeploy import console

if TYPE_CHECKING:
    from mldeploy.release.context import ReleaseContext

POLL_S = 5.0  # between retries of a canary service that is still draining
CONTAINER_NAME = "model"  # mldeploy.aws.context.CONTAINER_NAME; the stable service's own setting wins

TD_KEYS = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
           "placementConstraints", "requiresCompatibilities", "cpu", "memory", "pidMode", "ipcMode",
           "proxyConfiguration", "inferenceAccelerators", "ephemeralStorage", "runtimePlatform")
SERVICE_KEYS = ("platformVersion", "networkConfiguration", "healthCheckGracePeriodSeconds",
                "deploymentConfiguration", "enableExecuteCommand", "placementConstraints", "placementStrategy")
TG_KEYS = ("Protocol", "ProtocolVersion", "Port", "VpcId", "TargetType", "HealthCheckProtocol", "HealthCheckPort",
           "HealthCheckEnabled", "HealthCheckPath", "HealthCheckIntervalSeconds", "HealthCheckTimeoutSeconds",
           "HealthyThresholdCount", "UnhealthyThresholdCount", "Matcher", "IpAddressType")


@dataclass
class Fleet:
    """What runs now for one app/env."""

    cluster: str
    stable: dict[str, Any] | None = None  # ECS service (ACTIVE)
    canary: dict[str, Any] | None = None  # ECS service (ACTIVE), None without a canary
    load_balancer: dict[str, Any] | None = None
    stable_tg: dict[str, Any] | None = None
    canary_tg: dict[str, Any] | None = None
    listeners: list[dict[str, Any]] = field(default_factory=list)  # forwarding to the stable target group

    @property
    def stable_td(self) -> str | None:
        return self.stable["taskDefinition"] if self.stable else None

    @property
    def canary_td(self) -> str | None:
        return self.canary["taskDefinition"] if self.canary else None

    def weights(self) -> dict[str, int]:
        """Target-group name → weight on the first forwarding listener (missing means 0)."""
        if not self.listeners:
            return {}
        return listener_weights(self.listeners[0])

    @property
    def canary_percent(self) -> int | None:
        if self.canary is None:
            return None
        weights = self.weights()
        total = sum(weights.values())
        if not total or self.canary_tg is None:
            return 0
        return round(100 * weights.get(self.canary_tg["TargetGroupName"], 0) / total)


def tg_name(arn: str) -> str:
    """``arn:…:targetgroup/NAME/id`` → NAME."""
    return arn.split(":targetgroup/", 1)[-1].split("/", 1)[0]


def listener_weights(listener: dict[str, Any]) -> dict[str, int]:
    for action in listener.get("DefaultActions", []):
        if action.get("Type") != "forward":
            continue
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
        if groups:
            return {tg_name(g["TargetGroupArn"]): int(g.get("Weight", 1)) for g in groups}
        if action.get("TargetGroupArn"):
            return {tg_name(action["TargetGroupArn"]): 1}
    return {}


def _forwards_to(listener: dict[str, Any], tg_arn: str) -> bool:
    for action in listener.get("DefaultActions", []):
        if action.get("Type") != "forward":
            continue
        arns = {action.get("TargetGroupArn")}
        arns |= {g["TargetGroupArn"] for g in (action.get("ForwardConfig") or {}).get("TargetGroups", [])}
        if tg_arn in arns:
            return True
    return False


def _one(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    return items[0] if items else None


def _active_service(ctx: ReleaseContext, cluster: str, name: str) -> dict[str, Any] | None:
    resp = ctx.client("ecs").describe_services(cluster=cluster, services=[name])
    return next((s for s in resp.get("services", []) if s.get("status") == "ACTIVE"), None)


def _target_group(ctx: ReleaseContext, name: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    from mldeploy.aws.clients import error_code

    try:
        return _one(ctx.client("elbv2").describe_target_groups(Names=[name])["TargetGroups"])
    except ClientError as e:
        if error_code(e) in ("TargetGroupNotFound", "TargetGroupNotFoundException"):
            return None
        raise


def read_fleet(ctx: ReleaseContext) -> Fleet:
    """Read services, target groups and listeners (read-only calls)."""
    from botocore.exceptions import ClientError

    from mldeploy.aws.clients import aws_errors, error_code

    names = ctx.names
    fleet = Fleet(cluster=names.cluster)
    with aws_errors():
        clusters = ctx.client("ecs").describe_clusters(clusters=[names.cluster]).get("clusters", [])
        if not any(c.get("status") == "ACTIVE" for c in clusters):
            return fleet
        fleet.stable = _active_service(ctx, names.cluster, names.service)
        fleet.canary = _active_service(ctx, names.cluster, names.canary_service)
        fleet.stable_tg = _target_group(ctx, names.target_group)
        fleet.canary_tg = _target_group(ctx, names.canary_target_group)
        elb = ctx.client("elbv2")
        try:
            fleet.load_balancer = _one(elb.describe_load_balancers(Names=[names.load_balancer])["LoadBalancers"])
        except ClientError as e:
            if error_code(e) not in ("LoadBalancerNotFound", "LoadBalancerNotFoundException"):
                raise
        if fleet.load_balancer and fleet.stable_tg:
            listeners = elb.describe_listeners(LoadBalancerArn=fleet.load_balancer["LoadBalancerArn"])["Listeners"]
            fleet.listeners = [li for li in listeners if _forwards_to(li, fleet.stable_tg["TargetGroupArn"])]
    return fleet


# ------------------------------------------------------------------------------------------- task definitions


def describe_task_definition(ctx: ReleaseContext, arn: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(task definition, tags)."""
    from mldeploy.aws.clients import aws_errors

    with aws_errors(f"ecs:DescribeTaskDefinition {arn}"):
        resp = ctx.client("ecs").describe_task_definition(taskDefinition=arn, include=["TAGS"])
    return resp["taskDefinition"], {t["key"]: t["value"] for t in resp.get("tags", [])}


def container_name(fleet: Fleet) -> str:
    for lb in (fleet.stable or {}).get("loadBalancers", []):
        if lb.get("containerName"):
            return lb["containerName"]
    return CONTAINER_NAME


def main_container(td: dict[str, Any], name: str) -> dict[str, Any]:
    containers = td.get("containerDefinitions", [])
    return next((c for c in containers if c.get("name") == name), None) or next(
        (c for c in containers if c.get("essential", True)), containers[0])


def td_image(ctx: ReleaseContext, fleet: Fleet, arn: str) -> str:
    td, _ = describe_task_definition(ctx, arn)
    return str(main_container(td, container_name(fleet)).get("image"))


def td_version(ctx: ReleaseContext, fleet: Fleet, arn: str) -> str | None:
    """The model version of a task definition: its ``mldeploy:version`` tag, else MLDEPLOY_MODEL_VERSION."""
    td, tags = describe_task_definition(ctx, arn)
    if tags.get("mldeploy:version"):
        return tags["mldeploy:version"]
    env = {e["name"]: e["value"] for e in main_container(td, container_name(fleet)).get("environment", [])}
    return env.get("MLDEPLOY_MODEL_VERSION")


def register_variant(ctx: ReleaseContext, fleet: Fleet, image: str, version: str) -> str:
    """Register a new revision of the stable task definition that differs only in the image (and version)."""
    from mldeploy.aws.clients import aws_errors

    assert fleet.stable_td is not None
    td, _ = describe_task_definition(ctx, fleet.stable_td)
    args = {k: td[k] for k in TD_KEYS if td.get(k) not in (None, [], {})}
    container = main_container(args, container_name(fleet))
    container["image"] = image
    env = [e for e in container.get("environment", []) if e["name"] != "MLDEPLOY_MODEL_VERSION"]
    container["environment"] = [*env, {"name": "MLDEPLOY_MODEL_VERSION", "value": version}]
    reuse = _latest_identical(ctx, td["family"], args, exclude=fleet.stable_td)
    if reuse:  # a run that died after registering it: do not leak one more revision per retry
        return reuse
    tags = {**ctx.tags, "mldeploy:version": version}
    with aws_errors(f"ecs:RegisterTaskDefinition {td['family']}"):
        new = ctx.client("ecs").register_task_definition(
            **args, tags=[{"key": k, "value": v} for k, v in sorted(tags.items())])["taskDefinition"]
    return str(new["taskDefinitionArn"])


def _td_signature(args: dict[str, Any]) -> str:
    """Comparable form of register_task_definition arguments (environment order does not matter)."""
    import json

    norm = {k: args[k] for k in TD_KEYS if args.get(k) not in (None, [], {})}
    norm["containerDefinitions"] = [{**c, "environment": sorted((e["name"], e["value"]) for e in
                                                                 c.get("environment") or [])}
                                    for c in norm.get("containerDefinitions", [])]
    return json.dumps(norm, sort_keys=True, default=str)


def _latest_identical(ctx: ReleaseContext, family: str, args: dict[str, Any], exclude: str | None) -> str | None:
    """The family's latest ACTIVE revision when it equals ``args`` (and is not ``exclude``), else None."""
    from mldeploy.aws.clients import aws_errors

    with aws_errors(f"ecs:DescribeTaskDefinition {family}"):
        latest = ctx.client("ecs").describe_task_definition(taskDefinition=family)["taskDefinition"]
    if latest["taskDefinitionArn"] == exclude or _td_signature(latest) != _td_signature(args):
        return None
    return str(latest["taskDefinitionArn"])


# -------------------------------------------------------------------------------------- target group, listener


def ensure_canary_target_group(ctx: ReleaseContext, fleet: Fleet) -> dict[str, Any]:
    """The canary target group, created as a copy of the stable one when missing."""
    from mldeploy.aws.clients import aws_errors

    if fleet.canary_tg is not None:
        return fleet.canary_tg
    assert fleet.stable_tg is not None
    src = fleet.stable_tg
    args = {k: src[k] for k in TG_KEYS if src.get(k) is not None}
    elb = ctx.client("elbv2")
    with aws_errors(f"elasticloadbalancing:CreateTargetGroup {ctx.names.canary_target_group}"):
        tg = elb.create_target_group(Name=ctx.names.canary_target_group, **args,
                                     Tags=[{"Key": k, "Value": v} for k, v in sorted(ctx.tags.items())])
        fleet.canary_tg = tg["TargetGroups"][0]
        delay = ctx.config.aws.health_check.deregistration_delay_s
        elb.modify_target_group_attributes(
            TargetGroupArn=fleet.canary_tg["TargetGroupArn"],
            Attributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": str(delay)}])
    return fleet.canary_tg


def set_weights(ctx: ReleaseContext, fleet: Fleet, canary_percent: int | None) -> None:
    """Weighted forward (100−N)/N on every listener forwarding to the stable target group.

    ``None`` detaches the canary target group (a plain forward to the stable one, as ``up`` creates it).
    """
    from mldeploy.aws.clients import aws_errors

    assert fleet.stable_tg is not None
    stable_arn = fleet.stable_tg["TargetGroupArn"]
    if canary_percent is None:
        action: dict[str, Any] = {"Type": "forward", "TargetGroupArn": stable_arn}
    else:
        assert fleet.canary_tg is not None
        action = {"Type": "forward", "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": stable_arn, "Weight": 100 - canary_percent},
            {"TargetGroupArn": fleet.canary_tg["TargetGroupArn"], "Weight": canary_percent}]}}
    elb = ctx.client("elbv2")
    for listener in fleet.listeners:
        others = [a for a in listener.get("DefaultActions", []) if a.get("Type") != "forward"]
        actions = [*others, action] if others else [action]
        with aws_errors(f"elasticloadbalancing:ModifyListener {listener['ListenerArn']}"):
            resp = elb.modify_listener(ListenerArn=listener["ListenerArn"], DefaultActions=actions)
        listener.update(resp["Listeners"][0])


# ------------------------------------------------------------------------------------------------- services


def canary_desired_count(fleet: Fleet, percent: int) -> int:
    """Tasks for the canary: its share of the stable service's tasks, at least one."""
    stable = int((fleet.stable or {}).get("desiredCount", 1))
    return max(1, math.ceil(stable * percent / 100))


def create_canary_service(ctx: ReleaseContext, fleet: Fleet, td_arn: str, desired: int) -> None:
    """A copy of the stable service (network, capacity, deployment settings) on the canary target group."""
    from botocore.exceptions import ClientError

    from mldeploy.aws.clients import aws_errors, error_code

    assert fleet.stable is not None and fleet.canary_tg is not None
    src = fleet.stable
    args: dict[str, Any] = {k: src[k] for k in SERVICE_KEYS if src.get(k) not in (None, [], {})}
    if src.get("capacityProviderStrategy"):
        args["capacityProviderStrategy"] = src["capacityProviderStrategy"]
    elif src.get("launchType"):
        args["launchType"] = src["launchType"]
    port = next((lb.get("containerPort") for lb in src.get("loadBalancers", []) if lb.get("containerPort")),
                ctx.config.runtime.port)
    request = dict(
        cluster=fleet.cluster, serviceName=ctx.names.canary_service, taskDefinition=td_arn,
        desiredCount=desired, propagateTags="SERVICE",
        loadBalancers=[{"targetGroupArn": fleet.canary_tg["TargetGroupArn"],
                        "containerName": container_name(fleet), "containerPort": int(port)}],
        tags=[{"key": k, "value": v} for k, v in sorted({**ctx.tags, "mldeploy:role": "canary"}.items())],
        **args)
    deadline = time.monotonic() + ctx.config.release.stability_timeout_s
    with aws_errors(f"ecs:CreateService {ctx.names.canary_service}"):
        while True:
            try:
                resp = ctx.client("ecs").create_service(**request)
                break
            except ClientError as e:
                # the previous canary (same name) is still DRAINING after its deletion: wait for INACTIVE
                text = str(e).lower()
                if error_code(e) != "InvalidParameterException" or not ("draining" in text or "idempotent" in text) \
                        or time.monotonic() > deadline:
                    raise
                console.info(f"[dim]{ctx.names.canary_service} from the last canary is still draining; "
                             "waiting…[/dim]")
                time.sleep(POLL_S)
    fleet.canary = resp["service"]


def scale_canary(ctx: ReleaseContext, fleet: Fleet, desired: int) -> None:
    from mldeploy.aws.clients import aws_errors

    if fleet.canary is None or fleet.canary.get("desiredCount") == desired:
        return
    with aws_errors(f"ecs:UpdateService {ctx.names.canary_service}"):
        fleet.canary = ctx.client("ecs").update_service(cluster=fleet.cluster, service=ctx.names.canary_service,
                                                        desiredCount=desired)["service"]


def delete_canary_service(ctx: ReleaseContext, fleet: Fleet) -> None:
    """Scale the canary to zero and delete it (after its target group stopped getting traffic)."""
    from mldeploy.aws.clients import aws_errors

    if fleet.canary is None:
        return
    with aws_errors(f"ecs:DeleteService {ctx.names.canary_service}"):
        ecs = ctx.client("ecs")
        ecs.update_service(cluster=fleet.cluster, service=ctx.names.canary_service, desiredCount=0)
        ecs.delete_service(cluster=fleet.cluster, service=ctx.names.canary_service, force=True)
    fleet.canary = None


def update_stable(ctx: ReleaseContext, fleet: Fleet, td_arn: str) -> None:
    from mldeploy.aws.clients import aws_errors

    with aws_errors(f"ecs:UpdateService {ctx.names.service}"):
        fleet.stable = ctx.client("ecs").update_service(cluster=fleet.cluster, service=ctx.names.service,
                                                        taskDefinition=td_arn)["service"]


# --------------------------------------------------------------------------------------------------- waiting


def _wait_service(ctx: ReleaseContext, service: str, td_arn: str | None, tg: dict[str, Any] | None) -> None:
    """``mldeploy.aws.waiters.wait_stable``: rollout COMPLETED with every task running (live progress, ECS
    circuit-breaker rollbacks → RolledBackError, release.stability_timeout_s → NotReadyError)."""
    from mldeploy.aws.context import DeployContext
    from mldeploy.aws.waiters import wait_stable as aws_wait_stable

    dctx = DeployContext(project=ctx.project, aws=ctx.aws)
    aws_wait_stable(dctx, service_name=service, task_definition=td_arn,
                    tg_arn=tg["TargetGroupArn"] if tg else None)


def wait_canary_ready(ctx: ReleaseContext, fleet: Fleet) -> None:
    """Until the canary service is stable: its tasks run and pass the target group's health checks (ECS only
    completes a load-balanced rollout once its targets are healthy)."""
    from mldeploy.release.context import SKIP_WAIT_ENV, skip_health_wait

    if skip_health_wait():
        console.info(f"[dim]{SKIP_WAIT_ENV}=1: not waiting for healthy canary targets (emulator)[/dim]")
        return
    _wait_service(ctx, ctx.names.canary_service, fleet.canary_td, fleet.canary_tg)


def wait_stable(ctx: ReleaseContext, fleet: Fleet, td_arn: str) -> None:
    """Until the stable service runs only ``td_arn`` with all tasks (ECS circuit breaker → RolledBackError)."""
    from mldeploy.release.context import SKIP_WAIT_ENV, skip_health_wait

    if skip_health_wait():
        console.info(f"[dim]{SKIP_WAIT_ENV}=1: not waiting for service stability (emulator)[/dim]")
        return
    _wait_service(ctx, ctx.names.service, td_arn, fleet.stable_tg)


# ---------------------------------------------------------------------------------------------------- alarms


def canary_alarm_names(ctx: ReleaseContext) -> list[str]:
    return [ctx.names.alarm("canary-5xx"), ctx.names.alarm("canary-p99")]


def _suffix(arn: str, marker: str) -> str:
    """CloudWatch dimension values: ``app/NAME/ID`` (load balancer), ``targetgroup/NAME/ID`` (target group)."""
    return arn.split(marker, 1)[1] if marker in arn else arn


def put_canary_alarms(ctx: ReleaseContext, fleet: Fleet) -> list[str]:
    """5xx rate and p99 latency alarms scoped to the canary target group (recreated: a fresh state)."""
    from mldeploy.aws.clients import aws_errors

    assert fleet.canary_tg is not None and fleet.load_balancer is not None
    alarms = ctx.config.aws.alarms
    tg_dim = "targetgroup/" + _suffix(fleet.canary_tg["TargetGroupArn"], ":targetgroup/")
    dims = [{"Name": "TargetGroup", "Value": tg_dim},
            {"Name": "LoadBalancer", "Value": _suffix(fleet.load_balancer["LoadBalancerArn"], ":loadbalancer/")}]
    tags = [{"Key": k, "Value": v} for k, v in sorted(ctx.tags.items())]
    err, p99 = canary_alarm_names(ctx)

    def metric(mid: str, name: str) -> dict[str, Any]:
        return {"Id": mid, "ReturnData": False, "MetricStat": {"Metric": {
            "Namespace": "AWS/ApplicationELB", "MetricName": name, "Dimensions": dims}, "Period": 60, "Stat": "Sum"}}

    cw = ctx.client("cloudwatch")
    with aws_errors("cloudwatch:PutMetricAlarm"):
        cw.delete_alarms(AlarmNames=[err, p99])
        cw.put_metric_alarm(
            AlarmName=err, AlarmDescription=f"canary {ctx.names.canary_service}: 5xx rate above "
            f"{alarms.error_rate_percent}%", EvaluationPeriods=1, DatapointsToAlarm=1,
            Threshold=alarms.error_rate_percent, ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching", Tags=tags,
            Metrics=[{"Id": "rate", "Expression": "IF(requests > 0, 100 * errors / requests, 0)",
                      "Label": "5xx %", "ReturnData": True},
                     metric("errors", "HTTPCode_Target_5XX_Count"), metric("requests", "RequestCount")])
        cw.put_metric_alarm(
            AlarmName=p99, AlarmDescription=f"canary {ctx.names.canary_service}: p99 latency above "
            f"{alarms.p99_latency_ms:g} ms", Namespace="AWS/ApplicationELB", MetricName="TargetResponseTime",
            Dimensions=dims, ExtendedStatistic="p99", Period=60, EvaluationPeriods=1, DatapointsToAlarm=1,
            Threshold=alarms.p99_latency_ms / 1000.0, ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching", Tags=tags)
    return [err, p99]


def ensure_canary_alarms(ctx: ReleaseContext, fleet: Fleet) -> None:
    """Create the canary alarms when missing (a ``canary`` run that died between the service and its alarms)."""
    from mldeploy.aws.clients import aws_errors

    names = canary_alarm_names(ctx)
    with aws_errors("cloudwatch:DescribeAlarms"):
        found = ctx.client("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]
    if len(found) < len(names):
        put_canary_alarms(ctx, fleet)


def delete_canary_alarms(ctx: ReleaseContext) -> None:
    from mldeploy.aws.clients import aws_errors

    with aws_errors("cloudwatch:DeleteAlarms"):
        ctx.client("cloudwatch").delete_alarms(AlarmNames=canary_alarm_names(ctx))


def firing_alarms(ctx: ReleaseContext, names: list[str]) -> list[tuple[str, str]]:
    """(name, reason) of the alarms among ``names`` that are in ALARM."""
    from mldeploy.aws.clients import aws_errors

    with aws_errors("cloudwatch:DescribeAlarms"):
        resp = ctx.client("cloudwatch").describe_alarms(AlarmNames=names)
    return [(a["AlarmName"], a.get("StateReason", "")) for a in resp.get("MetricAlarms", [])
            if a.get("StateValue") == "ALARM"]
