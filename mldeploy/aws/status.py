"""``mldeploy status`` as data: service, deployments, tasks, target health, URL and alarms.

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
ALARM_KINDS = ("5xx-rate", "p99-latency", "unhealthy-hosts")


def outputs(project: Project, aws: Clients) -> dict[str, str]:
    """The deployment outputs ``up`` stored in SSM under ``names.ssm_prefix`` (key → value)."""
    prefix = project.names.ssm_prefix.rstrip("/") + "/"
    found = call(aws.ssm.get_parameters, Names=[prefix + k for k in OUTPUT_KEYS])["Parameters"]
    return {p["Name"].removeprefix(prefix): p["Value"] for p in found}


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
    out["service"] = {"name": svc["serviceName"], "status": svc["status"], "desired": svc.get("desiredCount"),
                      "running": svc.get("runningCount"), "pending": svc.get("pendingCount"),
                      "task_definition": svc.get("taskDefinition")}
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
