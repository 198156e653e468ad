"""ECS service per role: Fargate / Fargate Spot capacity, circuit breaker with rollback, grace period, ALB attachment.

The stable service (``up``) sizes itself from config and autoscaling; the canary service (``canary``) runs
``spec.desired_count`` tasks of the canary's revision on the canary target group, with the same network and
capacity settings. Reads ``known``: ``subnet_ids``, ``task_sg_id``, ``spec.key("tg_arn")``,
``spec.key("task_definition_arn")``; writes ``known[spec.key("service_arn")]``.
"""

from __future__ import annotations

from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Ref, RetryOn, Step, Wait, is_unknown
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import CONTAINER_NAME, Known, StackSpec, tag_dict
from mldeploy.aws.resources import alarms
from mldeploy.aws.waiters import deploy_timeout_s

KIND = "ecs service"

IAM_RETRY = (
    # Terraform's aws_ecs_service (internal/service/ecs/service.go, retryServiceCreate and the update retry) retries
    # these while IAM is eventually consistent right after the roles and the load balancer were created.
    RetryOn("InvalidParameterException", "verify that the ECS service role being passed has the proper permissions"),
    RetryOn("InvalidParameterException", "Unable to assume the service linked role"),
    RetryOn("InvalidParameterException", "does not have an associated load balancer"),
)
CREATE_RETRY = (
    *IAM_RETRY,
    RetryOn("ClusterNotFoundException"),  # retryServiceCreate: the cluster created just before may not show yet
    # ECS DeleteService: "If you attempt to create a new service with the same name as an existing service in either
    # ACTIVE or DRAINING status, you receive an error" — the last canary (or a `down` just before) is still draining
    RetryOn("InvalidParameterException", "draining"),
    RetryOn("InvalidParameterException", "not idempotent"),
)
IAM_PROPAGATION_S = 240.0
"""Terraform: propagationTimeout (2 min) + serviceCreateTimeout (2 min)."""

DEPLOYMENT = {"deploymentCircuitBreaker": {"enable": True, "rollback": True},
              "maximumPercent": 200, "minimumHealthyPercent": 100}
NO_ALARMS = {"alarmNames": [], "enable": False, "rollback": False}


def deployment_alarms(spec: StackSpec) -> list[str]:
    """The alarms ECS watches during the role's deployments and bake time, failing and rolling back the deployment
    when one goes into ALARM (ECS ``DeploymentAlarms``; "How CloudWatch alarms detect Amazon ECS deployment
    failures", ECS developer guide): the 5xx-rate and p99 alarms (the canary's own for the canary). None when the
    stable alarms are disabled. Alarm names are deterministic, and ECS documents no existence check on them, so
    the service may name alarms that the ``alarms`` family creates later in the same plan."""
    if spec.canary:
        return alarms.canary_alarm_names(spec)
    if not spec.config.aws.alarms.enabled:
        return []
    return [spec.names.alarm("5xx-rate"), spec.names.alarm("p99-latency")]


def deployment(spec: StackSpec) -> dict[str, Any]:
    """``deploymentConfiguration``: circuit breaker with rollback, 100–200 %, and the deployment alarms."""
    names = deployment_alarms(spec)
    if not names:
        return dict(DEPLOYMENT)
    return {**DEPLOYMENT, "alarms": {"alarmNames": names, "enable": True, "rollback": True}}


def _norm_alarms(dc: dict[str, Any]) -> tuple:
    a = dc.get("alarms") or NO_ALARMS
    on = bool(a.get("enable"))
    return (on, bool(a.get("rollback")) if on else False, tuple(sorted(a.get("alarmNames") or [])) if on else ())


def _describe(spec: StackSpec, remote: Remote) -> list[dict[str, Any]]:
    found = remote.get("ecs", "describe_services", cluster=spec.names.cluster, services=[spec.service_name],
                       include=["TAGS"], missing=("ClusterNotFoundException",))
    return list((found or {}).get("services", []))


def read(spec: StackSpec, remote: Remote) -> dict[str, Any] | None:
    """The role's ACTIVE service. A DRAINING one is on its way out: a new one is created (with retries) instead."""
    return next((s for s in _describe(spec, remote) if s.get("status") == "ACTIVE"), None)


def read_any(spec: StackSpec, remote: Remote) -> dict[str, Any] | None:
    """The role's service unless INACTIVE (ACTIVE or DRAINING)."""
    return next((s for s in _describe(spec, remote) if s.get("status") != "INACTIVE"), None)


def timeout_s(spec: StackSpec) -> float:
    """How long deleted services may drain (``release.stability_timeout_s``); rollouts: ``deploy_timeout_s``."""
    return float(spec.config.release.stability_timeout_s)


def ec2(spec: StackSpec) -> bool:
    return spec.config.aws.compute == "ec2"


def capacity_strategy(spec: StackSpec) -> list[dict[str, Any]]:
    """Fargate (and Fargate Spot), or the app's EC2 capacity provider (``aws.compute: ec2``; its Auto Scaling
    group carries the Spot mix). UpdateService moves a service between Fargate and Auto Scaling group capacity
    providers (botocore ecs UpdateServiceRequest.capacityProviderStrategy, "valid transitions")."""
    if ec2(spec):
        return [{"capacityProvider": f"mldeploy-{spec.names.base}", "weight": 1, "base": 0}]
    spot = spec.config.aws.spot
    if not spot.enabled:
        return [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}]
    return [{"capacityProvider": "FARGATE", "weight": 100 - spot.weight, "base": spot.base},
            {"capacityProvider": "FARGATE_SPOT", "weight": spot.weight, "base": 0}]


def network(spec: StackSpec, known: Known) -> dict[str, Any]:
    # tasks on EC2 get no public IP (botocore ecs AwsVpcConfiguration.assignPublicIp: "the value must be
    # DISABLED" unless on Fargate): the instance, which has one, pulls the image and ships the logs
    public = spec.config.aws.assign_public_ip and not ec2(spec)
    return {"awsvpcConfiguration": {"subnets": list(known["subnet_ids"]), "securityGroups": [known["task_sg_id"]],
                                    "assignPublicIp": "ENABLED" if public else "DISABLED"}}


def desired_count(spec: StackSpec) -> int:
    """Canary: ``spec.desired_count`` (1 when unset). Stable: the config's count within the autoscaling range."""
    if spec.canary:
        return 1 if spec.desired_count is None else spec.desired_count
    aws = spec.config.aws
    return max(aws.autoscaling.min, min(aws.autoscaling.max, aws.desired_count))


def desired(spec: StackSpec, known: Known) -> dict[str, Any]:
    """create_service arguments for the role."""
    aws = spec.config.aws
    fargate = {} if ec2(spec) else {"platformVersion": "LATEST"}  # "only specified for tasks on Fargate"
    return {
        "cluster": spec.names.cluster,
        "serviceName": spec.service_name,
        "taskDefinition": known[spec.key("task_definition_arn")],
        "desiredCount": desired_count(spec),
        "capacityProviderStrategy": capacity_strategy(spec),
        **fargate,
        "networkConfiguration": network(spec, known),
        "loadBalancers": [{"targetGroupArn": known[spec.key("tg_arn")], "containerName": CONTAINER_NAME,
                           "containerPort": spec.config.runtime.port}],
        "healthCheckGracePeriodSeconds": aws.health_check.grace_period_s,
        "deploymentConfiguration": deployment(spec),
        "deploymentController": {"type": "ECS"},
        "propagateTags": "SERVICE",
        "enableECSManagedTags": True,
        "tags": spec.tag_list("key", "value"),
    }


def _norm_net(n: dict | None) -> tuple:
    c = (n or {}).get("awsvpcConfiguration") or {}
    return (tuple(sorted(c.get("subnets", []))), tuple(sorted(c.get("securityGroups", []))), c.get("assignPublicIp"))


def _short(arn: Any) -> str:
    return str(arn) if is_unknown(arn) else str(arn).rsplit("/", 1)[-1]


def diff(cur: dict[str, Any], want: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Changes and the update_service arguments that make them.

    Fields missing from the describe answer are not compared: real ECS always returns them, the moto emulator
    omits ``deploymentConfiguration``, ``capacityProviderStrategy`` and ``healthCheckGracePeriodSeconds``.
    """
    changes: list[str] = []
    update: dict[str, Any] = {}
    if is_unknown(want["taskDefinition"]) or cur.get("taskDefinition") != want["taskDefinition"]:
        changes.append(f"task definition {_short(cur.get('taskDefinition', ''))} → {_short(want['taskDefinition'])}")
        update["taskDefinition"] = want["taskDefinition"]
    net = want["networkConfiguration"]
    if is_unknown(net) or _norm_net(cur.get("networkConfiguration")) != _norm_net(net):
        changes.append("network (subnets / security group / public IP)")
        update["networkConfiguration"] = net
    grace = want["healthCheckGracePeriodSeconds"]
    if "healthCheckGracePeriodSeconds" in cur and cur["healthCheckGracePeriodSeconds"] != grace:
        changes.append(f"grace period {cur['healthCheckGracePeriodSeconds']}s → {grace}s")
        update["healthCheckGracePeriodSeconds"] = grace
    if "deploymentConfiguration" in cur:
        dc, want_dc = cur["deploymentConfiguration"], want["deploymentConfiguration"]
        breaker = (dc.get("deploymentCircuitBreaker") or {})
        if ((breaker.get("enable"), breaker.get("rollback")), dc.get("maximumPercent"),
                dc.get("minimumHealthyPercent")) != ((True, True), DEPLOYMENT["maximumPercent"],
                                                     DEPLOYMENT["minimumHealthyPercent"]):
            changes.append("deployment circuit breaker / min-max percent")
            update["deploymentConfiguration"] = want_dc
        if _norm_alarms(dc) != _norm_alarms(want_dc):
            names = (want_dc.get("alarms") or {}).get("alarmNames") or []
            changes.append("deployment alarms → " + (", ".join(names) if names else "off"))
            # switching them off needs an explicit "enable: false" (an absent field keeps the current alarms)
            update["deploymentConfiguration"] = want_dc if names else {**want_dc, "alarms": NO_ALARMS}
    if "capacityProviderStrategy" in cur:
        norm = sorted((s["capacityProvider"], s.get("weight", 0), s.get("base", 0))
                      for s in cur["capacityProviderStrategy"])
        if norm != sorted((s["capacityProvider"], s["weight"], s["base"]) for s in want["capacityProviderStrategy"]):
            changes.append("capacity providers → " + ", ".join(
                f"{s['capacityProvider']} w{s['weight']}" for s in want["capacityProviderStrategy"]))
            update["capacityProviderStrategy"] = want["capacityProviderStrategy"]
            update["forceNewDeployment"] = True  # ECS applies a new strategy with a new deployment
    lbs = {(lb.get("targetGroupArn"), lb.get("containerPort")) for lb in cur.get("loadBalancers", [])}
    want_lb = want["loadBalancers"][0]
    if is_unknown(want_lb) or (want_lb["targetGroupArn"], want_lb["containerPort"]) not in lbs:
        changes.append("load balancer target group")
        update["loadBalancers"] = want["loadBalancers"]
    return changes, update


def _count_change(spec: StackSpec, current: int) -> int | None:
    """The desiredCount to set, or None. Stable: autoscaling owns the count between min and max, so only pull it
    back into range. Canary: exactly ``spec.desired_count`` when given."""
    if spec.canary:
        return spec.desired_count if spec.desired_count is not None and spec.desired_count != current else None
    auto = spec.config.aws.autoscaling
    return None if auto.min <= current <= auto.max else max(auto.min, min(auto.max, current))


def _summary(spec: StackSpec, want: dict[str, Any]) -> list[str]:
    spot = spec.config.aws.spot
    capacity = f"Fargate Spot {spot.weight}% (base {spot.base} on-demand)" if spot.enabled else "Fargate on-demand"
    if ec2(spec):
        capacity = f"EC2 capacity provider mldeploy-{spec.names.base} ({spec.config.aws.instance_type}" + (
            f", {spec.config.aws.gpus} GPU per task)" if spec.config.aws.gpus else ")")
    alarm_names = deployment_alarms(spec)
    return [f"{want['desiredCount']} tasks", capacity,
            "circuit breaker + rollback" + (f" (and on alarms {', '.join(alarm_names)})" if alarm_names else "")]


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    name, key = spec.service_name, spec.key("service_arn")
    want = desired(spec, known)
    cur = read(spec, remote)
    if cur is None:
        known[key] = Ref(key)
        return [Step(KIND, name, Action.create, _summary(spec, want), calls=[
            ApiCall("ecs", "create_service", want, outputs=((key, "service.serviceArn"),), retry=CREATE_RETRY,
                    retry_timeout_s=max(IAM_PROPAGATION_S, timeout_s(spec)))])]
    spec.check_owned("ECS service", name, tag_dict(cur.get("tags")))
    known[key] = cur["serviceArn"]
    changes, update = diff(cur, want)
    count = _count_change(spec, int(cur.get("desiredCount", 0)))
    if count is not None:
        changes.append(f"desired count {cur.get('desiredCount')} → {count}")
        update["desiredCount"] = count
    if not changes:
        return [Step(KIND, name, Action.noop)]
    return [Step(KIND, name, Action.update, changes, calls=[
        ApiCall("ecs", "update_service", {"cluster": spec.names.cluster, "service": name, **update},
                retry=IAM_RETRY, retry_timeout_s=IAM_PROPAGATION_S)])]


def wait_inactive(spec: StackSpec) -> Wait:
    return Wait("services_inactive", {"cluster": spec.names.cluster, "services": [spec.service_name]},
                timeout_s=timeout_s(spec))


def wait_stable(spec: StackSpec, known: Known) -> Wait:
    """Until the role's rollout of ``known[spec.key("task_definition_arn")]`` completed with every task healthy
    (for ``up`` and the release commands; not part of ``plan``: ``up --no-wait`` skips it)."""
    return Wait("service_stable", {"cluster": spec.names.cluster, "service": spec.service_name,
                                   "task_definition": known.get(spec.key("task_definition_arn")),
                                   "tg_arn": known.get(spec.key("tg_arn"))}, timeout_s=deploy_timeout_s(spec.config))


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    """Scale to 0, delete (force), then wait until INACTIVE: ECS DeleteService moves a service with tasks to
    DRAINING until they stopped, and the target group and load balancer deletes that follow fail while its tasks
    are still registered. A DRAINING service (an interrupted ``down``) only gets the wait."""
    name = spec.service_name
    svc = read_any(spec, remote)
    if svc is None or not spec.owns(tag_dict(svc.get("tags"))):
        return []
    if svc.get("status") != "ACTIVE":
        return [Step(KIND, name, Action.delete, note="draining", calls=[wait_inactive(spec)])]
    gone = ("ServiceNotFoundException", "ServiceNotActiveException")
    calls: list[ApiCall | Wait] = []
    if svc.get("desiredCount", 0):
        calls.append(ApiCall("ecs", "update_service", {"cluster": spec.names.cluster, "service": name,
                                                       "desiredCount": 0}, missing=gone))
    calls += [ApiCall("ecs", "delete_service", {"cluster": spec.names.cluster, "service": name, "force": True},
                      missing=gone), wait_inactive(spec)]
    return [Step(KIND, name, Action.delete, calls=calls)]
