"""What the release commands add to the ``aws/resources`` planners: ``known`` seeded from what runs, the canary's
task definition copied from the stable one, and waits as steps.

The target group, service, listener weights and alarms come from the role-aware resource modules
(``target_group``, ``service``, ``listener.plan_weights``, ``alarms``), fed with ``seed(fleet)``: the values ``up``
would have put in ``known`` (VPC, subnets, task security group, load balancer, target groups), read from the
running stable service instead of re-planning the whole stack. The task definition is the one deliberate
exception (``task_definition`` below; see ``targets.aws`` for the trade-off).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mldeploy.aws.engine.model import Action, ApiCall, Ref, Step, Wait, after, noop
from mldeploy.release.targets.aws_read import Fleet, describe_task_definition, main_container

if TYPE_CHECKING:
    from mldeploy.aws.engine.remote import Remote
    from mldeploy.aws.engine.spec import Known, StackSpec

TD_KEYS = ("family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
           "placementConstraints", "requiresCompatibilities", "cpu", "memory", "pidMode", "ipcMode",
           "proxyConfiguration", "inferenceAccelerators", "ephemeralStorage", "runtimePlatform")


# ------------------------------------------------------------------------------------------- task definition


def _td_signature(args: dict[str, Any]) -> str:
    """Comparable form of register_task_definition arguments (environment order does not matter)."""
    norm = {k: args[k] for k in TD_KEYS if args.get(k) not in (None, [], {})}
    norm["containerDefinitions"] = [{**c, "environment": sorted((e["name"], e["value"]) for e in
                                                                 c.get("environment") or [])}
                                    for c in norm.get("containerDefinitions", [])]
    return json.dumps(norm, sort_keys=True, default=str)


def task_definition(spec: StackSpec, fleet: Fleet, remote: Remote, known: Known) -> list[Step]:
    """A revision of the stable task definition that differs only in ``spec.image`` and ``spec.version``.

    The family's latest revision is reused when it is exactly that (a run that died after registering it: no
    leaked revision per retry). ``aws/resources/task_definition.plan`` derives the canary from the config
    instead; this copy is the seeded-canary trade-off (``targets.aws``).
    """
    assert fleet.stable_td is not None and spec.version is not None
    td, _ = describe_task_definition(remote, fleet.stable_td)
    args = json.loads(json.dumps({k: td[k] for k in TD_KEYS if td.get(k) not in (None, [], {})}))
    container = main_container(args, fleet.container_name)
    container["image"] = spec.image
    env = [e for e in container.get("environment", []) if e["name"] != "MLDEPLOY_MODEL_VERSION"]
    container["environment"] = [*env, {"name": "MLDEPLOY_MODEL_VERSION", "value": spec.version}]
    family = td["family"]
    latest = remote.get("ecs", "describe_task_definition", taskDefinition=family)["taskDefinition"]
    key = spec.key("task_definition_arn")
    if latest["taskDefinitionArn"] != fleet.stable_td and _td_signature(latest) == _td_signature(args):
        known[key] = latest["taskDefinitionArn"]
        return [noop("task definition", f"{family}:{latest['revision']}")]
    known[key] = Ref(key)
    tags = {**spec.names.tags(spec.config.aws.tags), "mldeploy:version": spec.version}
    return [Step("task definition", family, Action.create, [f"image {spec.image}", f"version {spec.version}"],
                 note=f"copy of revision {td['revision']}", calls=[
                     ApiCall("ecs", "register_task_definition",
                             {**args, "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())]},
                             outputs=((key, "taskDefinition.taskDefinitionArn"),))])]


# --------------------------------------------------------------------------------------------------- known


def seed(fleet: Fleet) -> Known:
    """The ``known`` values the resource planners read, from what runs (both roles where they exist)."""
    known: Known = {}
    if fleet.load_balancer:
        arn = fleet.load_balancer["LoadBalancerArn"]
        known["alb_arn"], known["alb_full_name"] = arn, after(arn, ":loadbalancer/")
    if fleet.stable_tg:
        known["tg_arn"], known["vpc_id"] = fleet.stable_tg["TargetGroupArn"], fleet.stable_tg.get("VpcId")
    if fleet.stable:
        vpc = (fleet.stable.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
        known["subnet_ids"] = list(vpc.get("subnets") or [])
        known["task_sg_id"] = (vpc.get("securityGroups") or [None])[0]
        known["task_definition_arn"], known["service_arn"] = fleet.stable_td, fleet.stable.get("serviceArn")
    if fleet.canary_tg:
        known["canary.tg_arn"] = fleet.canary_tg["TargetGroupArn"]
    if fleet.canary:
        known["canary.task_definition_arn"] = fleet.canary_td
        known["canary.service_arn"] = fleet.canary.get("serviceArn")
    return known


def waiting(spec: StackSpec, wait: Wait) -> Step:
    """A ``Wait`` (``service.wait_stable``) as a step of its own."""
    return Step("ecs service", spec.service_name, Action.update, ["wait until stable"], calls=[wait])
