"""``mldeploy down``: delete every resource of the app/env in dependency order (ECR kept unless ``--purge``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mldeploy.aws.clients import COUNTER, aws_errors, call, error_code
from mldeploy.aws.context import DeployContext
from mldeploy.aws.resources import alb, autoscaling, cluster, ecr, iam, monitoring, security_groups
from mldeploy.aws.resources import log_group as logs
from mldeploy.aws.resources import service as service_mod
from mldeploy.aws.resources import stack_outputs as outputs
from mldeploy.aws.resources import task_definition as td
from mldeploy.aws.waiters import poll_interval
from mldeploy.errors import AwsError

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.config import Project
    from mldeploy.ui import Ui

SG_TIMEOUT_S = 600  # ENIs of stopped tasks and a deleted ALB take minutes to disappear


def leftovers(ctx: DeployContext) -> list[str]:
    """ARNs still tagged for this app/env (Resource Groups Tagging API)."""
    tagging = ctx.aws.get("resourcegroupstaggingapi")
    filters = [{"Key": "mldeploy:app", "Values": [ctx.names.app]}, {"Key": "mldeploy:env", "Values": [ctx.names.env]}]
    arns: list[str] = []
    with aws_errors():
        for page in tagging.get_paginator("get_resources").paginate(TagFilters=filters):
            arns += [r["ResourceARN"] for r in page["ResourceTagMappingList"]]
    return [a for a in arns if not _inactive(ctx, a)]


def _inactive(ctx: DeployContext, arn: str) -> bool:
    """The tagging API may still list ECS clusters/services that are deleted (INACTIVE) for a while."""
    ecs = ctx.aws.ecs
    if ":ecs:" in arn and ":cluster/" in arn:
        found = call(ecs.describe_clusters, clusters=[arn])["clusters"]
        return all(c["status"] == "INACTIVE" for c in found)
    if ":ecs:" in arn and ":service/" in arn:
        cluster_name = arn.split(":service/", 1)[1].split("/")[0]
        found = call(ecs.describe_services, cluster=cluster_name, services=[arn], missing=("ClusterNotFoundException",))
        return found is None or all(s["status"] == "INACTIVE" for s in found["services"])
    return False


def _delete_sg(ctx: DeployContext, name: str) -> bool:
    deadline = time.monotonic() + SG_TIMEOUT_S
    while True:
        try:
            return security_groups.delete(ctx, name)
        except AwsError as e:
            if error_code(e.__cause__) != "DependencyViolation" or time.monotonic() > deadline:
                raise
            time.sleep(poll_interval())


def _wait_services_gone(ctx: DeployContext, names: list[str]) -> None:
    deadline = time.monotonic() + ctx.config.release.stability_timeout_s
    while any(service_mod.describe(ctx, n) and service_mod.describe(ctx, n)["status"] != "INACTIVE" for n in names):
        if time.monotonic() > deadline:
            raise AwsError(f"services {', '.join(names)} still draining after "
                           f"{ctx.config.release.stability_timeout_s}s", hint="run `mldeploy down` again later")
        time.sleep(poll_interval())


def question(project: Project, aws: Clients, purge: bool) -> str:
    """What ``down`` asks before deleting (the CLI prompts; ``--yes`` answers)."""
    n = project.names
    return (f"Delete every AWS resource of {n.app!r} env {n.env!r} in {aws.region}"
            f"{' including the ECR repository and its images' if purge else ''}?")


def down_aws(project: Project, aws: Clients, ui: Ui, *, purge: bool = False) -> dict[str, Any]:
    """Delete the app/env's resources (the caller has confirmed); returns what was deleted and what remains."""
    ctx = DeployContext(project=project, aws=aws)
    n = ctx.names
    t0 = time.monotonic()
    deleted: list[str] = []

    def step(label: str, ok: bool | list[str] | int) -> None:
        items = ok if isinstance(ok, list) else ([label] if ok else [])
        for item in items:
            ui.print(f"  [red]-[/] deleted {item}")
        deleted.extend(items)

    with ui.group(f"down {n.base}"):
        step(f"scalable target {autoscaling.resource_id(ctx)}", autoscaling.delete(ctx))
        step("", monitoring.delete(ctx))
        services = [s for s in (n.service, n.canary_service) if service_mod.describe(ctx, s)]
        for s in services:
            step(f"ecs service {s}", service_mod.delete(ctx, s))
        if services:
            _wait_services_gone(ctx, services)
        step(f"load balancer {n.load_balancer}", alb.delete_load_balancer(ctx))
        for tg in (n.target_group, n.canary_target_group):
            step(f"target group {tg}", alb.delete_target_group(ctx, tg))
        count = td.deregister_all(ctx)
        step(f"task definition {n.task_family} ({count} revisions)", count > 0)
        from mldeploy.aws.resources import network

        try:
            network.resolve(ctx)
        except AwsError:
            ctx.outputs["vpc_id"] = None
        if ctx.outputs.get("vpc_id"):
            for sg in (n.task_security_group, n.alb_security_group):
                step(f"security group {sg}", _delete_sg(ctx, sg))
        step(f"ecs cluster {n.cluster}", cluster.delete(ctx))
        step(f"log group {n.log_group}", logs.delete(ctx))
        for role in (n.task_role, n.execution_role):
            step(f"iam role {role}", iam.delete_role(ctx, role))
        step("", [f"ssm parameter {p}" for p in outputs.delete(ctx)])
        if purge and ctx.uses_ecr:
            step(f"ecr repository {ctx.ecr_repository}", ecr.delete(ctx))
        left = leftovers(ctx)
    kept = [a for a in left if not (":ecr:" in a and not purge)]
    if kept:
        ui.warn("still tagged for this app/env (deleted by hand or still shutting down):\n  " + "\n  ".join(kept))
    if not deleted:
        ui.info(f"nothing to delete for {n.base} in {ctx.aws.region}")
    else:
        ui.success(f"deleted {len(deleted)} resources of {n.base}"
                        + ("" if purge or not ctx.uses_ecr else f" (kept ECR repository {ctx.ecr_repository}; "
                                                                 "--purge deletes it)"))
    result = {"deleted": deleted, "remaining": kept, "seconds": round(time.monotonic() - t0, 2),
              "api_calls": COUNTER.total, "mutating_api_calls": COUNTER.mutating}
    return result
