"""What runs on AWS for one app/env, read through a ``Remote`` (cached describe calls; no boto3 here).

``read_fleet`` reads the stable and canary services, their target groups, the load balancer and the listeners that
forward to the stable target group; ``Fleet`` answers the questions the release commands ask of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mldeploy.aws.engine.remote import Remote
    from mldeploy.config.names import ResourceNames

CONTAINER_NAME = "model"  # mldeploy.aws.engine.spec.CONTAINER_NAME; the stable service's own setting wins


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

    @property
    def container_name(self) -> str:
        for lb in (self.stable or {}).get("loadBalancers", []):
            if lb.get("containerName"):
                return str(lb["containerName"])
        return CONTAINER_NAME

    def canary_count(self, percent: int) -> int:
        """Tasks for the canary: its share of the stable service's tasks, at least one."""
        from mldeploy.aws.engine.stack import canary_count

        return canary_count(int((self.stable or {}).get("desiredCount", 1)), percent)


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


def forwards_to(listener: dict[str, Any], tg_arn: str) -> bool:
    for action in listener.get("DefaultActions", []):
        if action.get("Type") != "forward":
            continue
        arns = {action.get("TargetGroupArn")}
        arns |= {g["TargetGroupArn"] for g in (action.get("ForwardConfig") or {}).get("TargetGroups", [])}
        if tg_arn in arns:
            return True
    return False


def active_service(remote: Remote, cluster: str, name: str) -> dict[str, Any] | None:
    found = remote.get("ecs", "describe_services", cluster=cluster, services=[name],
                       missing=("ClusterNotFoundException",))
    return next((s for s in (found or {}).get("services", []) if s.get("status") == "ACTIVE"), None)


def target_group(remote: Remote, name: str) -> dict[str, Any] | None:
    found = remote.get("elbv2", "describe_target_groups", Names=[name],
                       missing=("TargetGroupNotFound", "TargetGroupNotFoundException"))
    groups = (found or {}).get("TargetGroups") or []
    return groups[0] if groups else None


def read_fleet(names: ResourceNames, remote: Remote) -> Fleet:
    """Services, target groups and listeners (read-only calls)."""
    fleet = Fleet(cluster=names.cluster)
    clusters = remote.get("ecs", "describe_clusters", clusters=[names.cluster])["clusters"]
    if not any(c.get("status") == "ACTIVE" for c in clusters):
        return fleet
    fleet.stable = active_service(remote, names.cluster, names.service)
    fleet.canary = active_service(remote, names.cluster, names.canary_service)
    fleet.stable_tg = target_group(remote, names.target_group)
    fleet.canary_tg = target_group(remote, names.canary_target_group)
    found = remote.get("elbv2", "describe_load_balancers", Names=[names.load_balancer],
                       missing=("LoadBalancerNotFound", "LoadBalancerNotFoundException"))
    lbs = (found or {}).get("LoadBalancers") or []
    fleet.load_balancer = lbs[0] if lbs else None
    if fleet.load_balancer and fleet.stable_tg:
        listeners = remote.get("elbv2", "describe_listeners",
                               LoadBalancerArn=fleet.load_balancer["LoadBalancerArn"])["Listeners"]
        fleet.listeners = [li for li in listeners if forwards_to(li, fleet.stable_tg["TargetGroupArn"])]
    return fleet


# ------------------------------------------------------------------------------------------- task definitions


def describe_task_definition(remote: Remote, arn: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(task definition, tags)."""
    resp = remote.get("ecs", "describe_task_definition", taskDefinition=arn, include=["TAGS"])
    return resp["taskDefinition"], {t["key"]: t["value"] for t in resp.get("tags", [])}


def main_container(td: dict[str, Any], name: str) -> dict[str, Any]:
    containers = td.get("containerDefinitions", [])
    return next((c for c in containers if c.get("name") == name), None) or next(
        (c for c in containers if c.get("essential", True)), containers[0])


def td_image(remote: Remote, fleet: Fleet, arn: str) -> str:
    td, _ = describe_task_definition(remote, arn)
    return str(main_container(td, fleet.container_name).get("image"))


def td_version(remote: Remote, fleet: Fleet, arn: str) -> str | None:
    """The model version of a task definition: its ``mldeploy:version`` tag, else MLDEPLOY_MODEL_VERSION."""
    td, tags = describe_task_definition(remote, arn)
    if tags.get("mldeploy:version"):
        return tags["mldeploy:version"]
    env = {e["name"]: e["value"] for e in main_container(td, fleet.container_name).get("environment", [])}
    return env.get("MLDEPLOY_MODEL_VERSION")
