"""ECS cluster with Container Insights per config and the Fargate capacity providers."""

from __future__ import annotations

from mldeploy.aws.engine.model import Action, ApiCall, Step, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec, tag_dict

KIND = "ecs cluster"
PROVIDERS = ["FARGATE", "FARGATE_SPOT"]
DEFAULT_STRATEGY = [{"capacityProvider": "FARGATE", "weight": 1}]


def read(spec: StackSpec, remote: Remote) -> dict | None:
    found = remote.get("ecs", "describe_clusters", clusters=[spec.names.cluster], include=["TAGS", "SETTINGS"])
    return next((c for c in found["clusters"] if c["status"] == "ACTIVE"), None)


def plan(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    name = spec.names.cluster
    insights = "enabled" if spec.config.aws.container_insights else "disabled"
    cluster = read(spec, remote)
    setting = [{"name": "containerInsights", "value": insights}]
    if cluster is None:
        return [Step(KIND, name, Action.create, [f"container insights {insights}"], calls=[
            ApiCall("ecs", "create_cluster", {"clusterName": name, "tags": spec.tag_list("key", "value"),
                                              "settings": setting, "capacityProviders": PROVIDERS,
                                              "defaultCapacityProviderStrategy": DEFAULT_STRATEGY})])]
    spec.check_owned("ECS cluster", name, tag_dict(cluster.get("tags")))
    current = {s["name"]: s["value"] for s in cluster.get("settings", [])}.get("containerInsights", "disabled")
    changes, calls = [], []
    if current != insights:
        changes.append(f"container insights {current} → {insights}")
        calls.append(ApiCall("ecs", "update_cluster_settings", {"cluster": name, "settings": setting}))
    if sorted(cluster.get("capacityProviders") or []) != PROVIDERS:
        changes.append("capacity providers FARGATE, FARGATE_SPOT")
        calls.append(ApiCall("ecs", "put_cluster_capacity_providers", {
            "cluster": name, "capacityProviders": PROVIDERS, "defaultCapacityProviderStrategy": DEFAULT_STRATEGY}))
    if not changes:
        return [noop(KIND, name)]
    return [Step(KIND, name, Action.update, changes, calls=calls)]


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    if read(spec, remote) is None:
        return []
    return [Step(KIND, spec.names.cluster, Action.delete, calls=[
        ApiCall("ecs", "delete_cluster", {"cluster": spec.names.cluster}, missing=("ClusterNotFoundException",))])]
