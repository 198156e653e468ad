"""ECS cluster with Container Insights per config and the Fargate capacity providers."""

from __future__ import annotations

from mldeploy.aws.engine.model import Action, ApiCall, RetryOn, Step, noop
from mldeploy.aws.engine.remote import Remote
from mldeploy.aws.engine.spec import Known, StackSpec, tag_dict

KIND = "ecs cluster"
PROVIDERS = ["FARGATE", "FARGATE_SPOT"]
DEFAULT_STRATEGY = [{"capacityProvider": "FARGATE", "weight": 1}]
DELETE_RETRY = (
    # aws.compute ec2: the force-deleted Auto Scaling group's instances deregister from the cluster as they
    # terminate; Terraform's aws_ecs_cluster delete retries these codes (terraform-provider-aws
    # internal/service/ecs/cluster.go resourceClusterDelete: ClusterContainsContainerInstancesException,
    # ClusterContainsServicesException, ClusterContainsTasksException)
    RetryOn("ClusterContainsContainerInstancesException"), RetryOn("ClusterContainsTasksException"))
DELETE_TIMEOUT_S = 600.0


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
    # the EC2 capacity provider (aws.compute: ec2) is attached and detached by capacity.py: kept here as it is
    ours = f"mldeploy-{spec.names.base}"
    attached = cluster.get("capacityProviders") or []
    if sorted(p for p in attached if p != ours) != PROVIDERS:
        keep = [ours] if ours in attached else []
        changes.append("capacity providers " + ", ".join([*PROVIDERS, *keep]))
        calls.append(ApiCall("ecs", "put_cluster_capacity_providers", {
            "cluster": name, "capacityProviders": [*PROVIDERS, *keep],
            "defaultCapacityProviderStrategy": [{"capacityProvider": ours, "weight": 1, "base": 0}] if keep
            else DEFAULT_STRATEGY}))
    if not changes:
        return [noop(KIND, name)]
    return [Step(KIND, name, Action.update, changes, calls=calls)]


def delete(spec: StackSpec, remote: Remote, known: Known) -> list[Step]:
    if read(spec, remote) is None:
        return []
    return [Step(KIND, spec.names.cluster, Action.delete, calls=[
        ApiCall("ecs", "delete_cluster", {"cluster": spec.names.cluster}, missing=("ClusterNotFoundException",),
                **_ec2_retry(spec))])]


def _ec2_retry(spec: StackSpec) -> dict:
    return {"retry": DELETE_RETRY, "retry_timeout_s": DELETE_TIMEOUT_S} if spec.config.aws.compute == "ec2" else {}
