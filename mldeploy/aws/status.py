"""``mldeploy status``: service, deployments, tasks, target health, URL and alarms."""

from __future__ import annotations

from typing import Any

from mldeploy import console
from mldeploy.aws.clients import call
from mldeploy.aws.context import DeployContext
from mldeploy.aws.resources import alb
from mldeploy.aws.resources import service as service_mod
from mldeploy.aws.resources import stack_outputs as outputs
from mldeploy.aws.waiters import target_health


def collect(ctx: DeployContext) -> dict[str, Any]:
    """Everything ``status`` shows, as a JSON-able dict."""
    n = ctx.names
    out: dict[str, Any] = {"app": n.app, "env": n.env, "region": ctx.aws.region, "deployed": False}
    recorded = outputs.read(ctx)
    out["url"] = recorded.get("url")
    out["image"] = recorded.get("image")
    svc = service_mod.describe(ctx)
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
    arns = call(ctx.aws.ecs.list_tasks, cluster=n.cluster, serviceName=n.service)["taskArns"]
    tasks = call(ctx.aws.ecs.describe_tasks, cluster=n.cluster, tasks=arns[:100])["tasks"] if arns else []
    out["tasks"] = [{"id": t["taskArn"].rsplit("/", 1)[-1], "status": t.get("lastStatus"),
                     "health": t.get("healthStatus"), "task_definition": t.get("taskDefinitionArn", "").rsplit("/")[-1],
                     "capacity": t.get("capacityProviderName"), "started": t.get("startedAt"),
                     "stopped_reason": t.get("stoppedReason")} for t in tasks]
    tg = alb.describe_tg(ctx, n.target_group)
    out["targets"] = target_health(ctx, tg["TargetGroupArn"]) if tg else {}
    names = [n.alarm(k) for k in ("5xx-rate", "p99-latency", "unhealthy-hosts")]
    alarms = call(ctx.aws.cloudwatch.describe_alarms, AlarmNames=names)["MetricAlarms"]
    out["alarms"] = {a["AlarmName"]: a["StateValue"] for a in alarms}
    out["events"] = [e.get("message") for e in svc.get("events", [])[:5]]
    return out


def show_status() -> dict[str, Any]:
    from rich.table import Table

    from mldeploy.aws.clients import clients
    from mldeploy.aws.context import DeployContext
    from mldeploy.cli import state

    project = state.project()
    ctx = DeployContext(project=project, aws=clients(project, region=state.options.region,
                                                     profile=state.options.profile))
    info = collect(ctx)
    if state.options.json:
        console.emit_json(info)
        return info
    c = console.console
    if not info["deployed"]:
        c.print(f"[yellow]{ctx.names.base} is not deployed in {ctx.aws.region}[/] (run `mldeploy up`)")
        return info
    s = info["service"]
    c.print(f"[bold]{ctx.names.base}[/] ({ctx.aws.region})  {info['url'] or ''}")
    c.print(f"service {s['name']}: {s['status']}, {s['running']}/{s['desired']} running, {s['pending']} pending")
    c.print(f"image: {info['image']}")
    table = Table("deployment", "status", "rollout", "running/desired", "task definition", box=None)
    for d in info["deployments"]:
        table.add_row(str(d["id"]), str(d["status"]), str(d["rollout"]), f"{d['running']}/{d['desired']}",
                      str(d["task_definition"]).rsplit("/", 1)[-1])
    c.print(table)
    if info["tasks"]:
        tt = Table("task", "status", "health", "revision", "capacity", box=None)
        for t in info["tasks"]:
            tt.add_row(t["id"], str(t["status"]), str(t["health"]), t["task_definition"], str(t["capacity"]))
        c.print(tt)
    else:
        c.print("tasks: none running")
    targets = ", ".join(f"{v} {k}" for k, v in sorted(info["targets"].items())) or "none registered"
    c.print(f"targets: {targets}")
    alarms = ", ".join(f"{k.removeprefix(f'mldeploy-{ctx.names.base}-')}: {v}" for k, v in info["alarms"].items())
    c.print(f"alarms: {alarms or 'none'}")
    return info
