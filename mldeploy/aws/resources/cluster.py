"""ECS cluster with Container Insights per config and the Fargate capacity providers."""

from __future__ import annotations

from mldeploy.aws.clients import call
from mldeploy.aws.context import DeployContext, tag_dict
from mldeploy.aws.plan import Action, Step

PROVIDERS = ["FARGATE", "FARGATE_SPOT"]


def describe(ctx: DeployContext) -> dict | None:
    found = call(ctx.aws.ecs.describe_clusters, clusters=[ctx.names.cluster], include=["TAGS", "SETTINGS"])
    return next((c for c in found["clusters"] if c["status"] == "ACTIVE"), None)


def plan(ctx: DeployContext) -> list[Step]:
    name = ctx.names.cluster
    insights = "enabled" if ctx.config.aws.container_insights else "disabled"
    cluster = describe(ctx)
    ecs = ctx.aws.ecs
    if cluster is None:
        def create(c: DeployContext) -> None:
            call(ecs.create_cluster, clusterName=name, tags=c.tag_list("key", "value"),
                 settings=[{"name": "containerInsights", "value": insights}], capacityProviders=PROVIDERS,
                 defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}])

        return [Step("ecs cluster", name, Action.create, [f"container insights {insights}"], apply=create)]
    ctx.check_owned("ECS cluster", name, tag_dict(cluster.get("tags")))
    current = {s["name"]: s["value"] for s in cluster.get("settings", [])}.get("containerInsights", "disabled")
    changes, actions = [], []
    if current != insights:
        changes.append(f"container insights {current} → {insights}")
        actions.append(lambda c: call(ecs.update_cluster_settings, cluster=name,
                                      settings=[{"name": "containerInsights", "value": insights}]))
    if sorted(cluster.get("capacityProviders") or []) != PROVIDERS:
        changes.append("capacity providers FARGATE, FARGATE_SPOT")
        actions.append(lambda c: call(ecs.put_cluster_capacity_providers, cluster=name, capacityProviders=PROVIDERS,
                                      defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}]))
    if not changes:
        return [Step("ecs cluster", name, Action.noop)]
    return [Step("ecs cluster", name, Action.update, changes, apply=lambda c: [a(c) for a in actions] and None)]


def delete(ctx: DeployContext) -> bool:
    if describe(ctx) is None:
        return False
    call(ctx.aws.ecs.delete_cluster, cluster=ctx.names.cluster, missing=("ClusterNotFoundException",))
    return True
