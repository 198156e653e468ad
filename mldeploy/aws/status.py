"""``mldeploy status`` as data: service, deployments, tasks, target health, URL, alarms and the running canary.

Everything is read live (the stable service's image and version come from the task definition it runs, not from
the outputs ``up`` stored), so ``status`` is current after ``canary``, ``promote`` and ``rollback``.

Read-only calls only (no plan, no STS lookup); returns a JSON-able dict that the CLI renders
(``mldeploy.cli.render.status``) or prints as ``--json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mldeploy.aws.clients import call
from mldeploy.aws.waiters import describe_service, target_health

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project

OUTPUT_KEYS = ("url", "image")
VERSION_ENV = "MLDEPLOY_MODEL_VERSION"
ALARM_KINDS = ("5xx-rate", "p99-latency", "unhealthy-hosts")


def outputs(project: Project, aws: Clients) -> dict[str, str]:
    """The deployment outputs ``up`` stored in SSM under ``names.ssm_prefix`` (key → value)."""
    prefix = project.names.ssm_prefix.rstrip("/") + "/"
    found = call(aws.ssm.get_parameters, Names=[prefix + k for k in OUTPUT_KEYS])["Parameters"]
    return {p["Name"].removeprefix(prefix): p["Value"] for p in found}


def _revision(aws: Clients, arn: str | None) -> dict[str, Any]:
    """Image, model version (``mldeploy:version`` tag, else MLDEPLOY_MODEL_VERSION) and revision of a task
    definition."""
    if not arn:
        return {}
    found = call(aws.ecs.describe_task_definition, taskDefinition=arn, include=["TAGS"], missing=("ClientException",))
    if not found:
        return {}
    td = found["taskDefinition"]
    container = (td.get("containerDefinitions") or [{}])[0]
    env = {e["name"]: e["value"] for e in container.get("environment") or []}
    tags = {t["key"]: t["value"] for t in found.get("tags") or []}
    return {"image": container.get("image"), "version": tags.get("mldeploy:version") or env.get(VERSION_ENV),
            "revision": td.get("revision")}


def weights(project: Project, aws: Clients) -> dict[str, int]:
    """Target-group name → percent of the traffic listener's forward ({} without a load balancer)."""
    n = project.names
    found = call(aws.elbv2.describe_load_balancers, Names=[n.load_balancer], missing=("LoadBalancerNotFound",))
    lbs = (found or {}).get("LoadBalancers") or []
    if not lbs:
        return {}
    for li in call(aws.elbv2.describe_listeners, LoadBalancerArn=lbs[0]["LoadBalancerArn"])["Listeners"]:
        for action in li.get("DefaultActions", []):
            if action.get("Type") != "forward":
                continue
            groups = (action.get("ForwardConfig") or {}).get("TargetGroups") or (
                [{"TargetGroupArn": action["TargetGroupArn"], "Weight": 1}] if action.get("TargetGroupArn") else [])
            total = sum(int(g.get("Weight", 1)) for g in groups) or 1
            return {g["TargetGroupArn"].split(":targetgroup/", 1)[-1].split("/", 1)[0]:
                    round(100 * int(g.get("Weight", 1)) / total) for g in groups}
    return {}


def canary(project: Project, aws: Clients, split: dict[str, int]) -> dict[str, Any] | None:
    """The running canary service (ACTIVE only: a removed one drains for a while) with its share of traffic."""
    n = project.names
    svc = describe_service(aws, n.cluster, n.canary_service)
    if svc is None or svc.get("status") != "ACTIVE":
        return None
    return {"name": svc["serviceName"], "percent": split.get(n.canary_target_group, 0),
            "desired": svc.get("desiredCount"), "running": svc.get("runningCount"),
            "pending": svc.get("pendingCount"), "task_definition": svc.get("taskDefinition"),
            **_revision(aws, svc.get("taskDefinition"))}


def collect(project: Project, aws: Clients) -> dict[str, Any]:
    """Everything ``status`` shows (``deployed`` False: only app/env/region/url/image)."""
    n = project.names
    out: dict[str, Any] = {"app": n.app, "env": n.env, "region": aws.region, "deployed": False}
    recorded = outputs(project, aws)
    out["url"] = recorded.get("url")
    out["image"] = recorded.get("image")
    svc = describe_service(aws, n.cluster, n.service)
    if svc is None:
        return out
    out["deployed"] = True
    live = _revision(aws, svc.get("taskDefinition"))
    out["image"] = live.get("image") or out["image"]
    out["version"] = live.get("version")
    out["service"] = {"name": svc["serviceName"], "status": svc["status"], "desired": svc.get("desiredCount"),
                      "running": svc.get("runningCount"), "pending": svc.get("pendingCount"),
                      "task_definition": svc.get("taskDefinition"), "revision": live.get("revision")}
    out["weights"] = weights(project, aws)
    out["canary"] = canary(project, aws, out["weights"])
    out["deployments"] = [{"id": d.get("id"), "status": d.get("status"), "rollout": d.get("rolloutState"),
                           "reason": d.get("rolloutStateReason"), "task_definition": d.get("taskDefinition"),
                           "desired": d.get("desiredCount"), "running": d.get("runningCount"),
                           "failed": d.get("failedTasks"), "updated": d.get("updatedAt")}
                          for d in svc.get("deployments", [])]
    arns = call(aws.ecs.list_tasks, cluster=n.cluster, serviceName=n.service)["taskArns"]
    tasks = call(aws.ecs.describe_tasks, cluster=n.cluster, tasks=arns[:100])["tasks"] if arns else []
    out["tasks"] = [{"id": t["taskArn"].rsplit("/", 1)[-1], "status": t.get("lastStatus"),
                     "health": t.get("healthStatus"), "task_definition": t.get("taskDefinitionArn", "").rsplit("/")[-1],
                     "capacity": t.get("capacityProviderName"), "started": t.get("startedAt"),
                     "stopped_reason": t.get("stoppedReason")} for t in tasks]
    found = call(aws.elbv2.describe_target_groups, Names=[n.target_group], missing=("TargetGroupNotFound",))
    groups = (found or {}).get("TargetGroups") or []
    out["targets"] = target_health(aws, groups[0]["TargetGroupArn"]) if groups else {}
    alarms = call(aws.cloudwatch.describe_alarms, AlarmNames=[n.alarm(k) for k in ALARM_KINDS])["MetricAlarms"]
    out["alarms"] = {a["AlarmName"]: a["StateValue"] for a in alarms}
    out["events"] = [e.get("message") for e in svc.get("events", [])[:5]]
    return out
