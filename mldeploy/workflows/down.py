"""``mldeploy down``: the reversed ``up`` order as a plan of deletes (``stack.plan_down``), applied; ECR kept
unless ``purge``. Anything ``up`` or ``canary`` creates is in the plan, so nothing is left behind."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mldeploy.aws.clients import call
from mldeploy.aws.engine import stack
from mldeploy.aws.engine.executor import Executor
from mldeploy.aws.engine.model import Action
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import StackSpec

if TYPE_CHECKING:
    from mldeploy.aws.clients import Clients
    from mldeploy.aws.engine.model import Plan
    from mldeploy.config import Project
    from mldeploy.ui import Ui


def question(project: Project, aws: Clients, purge: bool) -> str:
    """What ``down`` asks before deleting (the CLI prompts; ``--yes`` answers)."""
    n = project.names
    return (f"Delete every AWS resource of {n.app!r} env {n.env!r} in {aws.region}"
            f"{' including the ECR repository and its images' if purge else ''}?")


def plan_down(project: Project, aws: Clients, *, purge: bool = False) -> Plan:
    remote = Remote(aws)
    return stack.plan_down(StackSpec.of(project, remote), remote, purge=purge)


def leftovers(project: Project, aws: Clients) -> list[str]:
    """ARNs still tagged for this app/env (Resource Groups Tagging API), minus deleted (INACTIVE) ECS resources
    the tagging API may still list for a while."""
    n = project.names
    filters = [{"Key": "mldeploy:app", "Values": [n.app]}, {"Key": "mldeploy:env", "Values": [n.env]}]
    arns = [r["ResourceARN"] for r in Remote(aws).pages("resourcegroupstaggingapi", "get_resources",
                                                        "ResourceTagMappingList", TagFilters=filters)]
    return [a for a in arns if not _inactive(aws, a)]


def _inactive(aws: Clients, arn: str) -> bool:
    if ":ecs:" in arn and ":cluster/" in arn:
        found = call(aws.ecs.describe_clusters, clusters=[arn])["clusters"]
        return all(c["status"] == "INACTIVE" for c in found)
    if ":ecs:" in arn and ":service/" in arn:
        cluster_name = arn.split(":service/", 1)[1].split("/")[0]
        found = call(aws.ecs.describe_services, cluster=cluster_name, services=[arn],
                     missing=("ClusterNotFoundException",))
        return found is None or all(s["status"] == "INACTIVE" for s in found["services"])
    return False


def down_aws(project: Project, aws: Clients, ui: Ui, *, purge: bool = False) -> dict[str, Any]:
    """Delete the app/env's resources (the caller has confirmed); returns what was deleted and what remains."""
    t0 = time.monotonic()
    n = project.names
    plan = plan_down(project, aws, purge=purge)
    with ui.group(f"down {n.base}"):
        applied = Executor(aws, ui).apply(plan)
        for step in plan.steps:  # what down keeps on purpose (e.g. an ECR repository another env still uses)
            if step.action is Action.noop and step.note:
                ui.info(f"  = kept {step.kind} {step.name}: {step.note.removeprefix('kept: ')}")
        left = leftovers(project, aws)
    deleted = [f"{a['kind']} {a['name']}" for a in applied]
    spec_uses_ecr = not project.config.registry.url
    repository = project.config.registry.repository or project.config.name
    kept = [a for a in left if not (":ecr:" in a and not purge)]
    if kept:
        ui.warn("still tagged for this app/env (deleted by hand or still shutting down):\n  " + "\n  ".join(kept))
    if not deleted:
        ui.info(f"nothing to delete for {n.base} in {aws.region}")
    else:
        ui.success(f"deleted {len(deleted)} resources of {n.base}"
                   + ("" if purge or not spec_uses_ecr else f" (kept ECR repository {repository}; --purge deletes it)"))
    return {"deleted": deleted, "remaining": kept, "seconds": round(time.monotonic() - t0, 2),
            "api_calls": aws.counter.total, "mutating_api_calls": aws.counter.mutating}
