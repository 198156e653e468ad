"""The AWS target's changes as data: ``AwsTarget.plan_*`` against ``tests/unit/fakes.FakeRemote``.

A running app ``demo`` (stable service on ``demo:1`` behind ``demo-tg``, one listener) and, where the test says so,
a canary (``demo-canary`` on ``demo:2`` behind ``demo-tgc``). Plans are compared with ``==`` like Chalice's
planner tests; the moto tests (tests/test_release_aws.py) run the same steps against an API server.
"""

from __future__ import annotations

from typing import Any

import pytest

from mldeploy.aws.engine.model import Action, ApiCall, Ref, Step, Wait, noop
from mldeploy.aws.resources import target_group
from mldeploy.errors import AwsError
from mldeploy.release.targets.aws import AwsTarget
from mldeploy.ui import NULL_UI
from tests.unit.fakes import FakeRemote, owned_tags, project, spec

ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012"
LB = f"{ARN}:loadbalancer/app/demo/lb1"
TG, TGC = f"{ARN}:targetgroup/demo-tg/tg1", f"{ARN}:targetgroup/demo-tgc/tg2"
LISTENER = f"{ARN}:listener/app/demo/lb1/l1"
TD = "arn:aws:ecs:us-east-1:123456789012:task-definition/demo:{}"
NET = {"awsvpcConfiguration": {"subnets": ["s-1", "s-2"], "securityGroups": ["sg-1"], "assignPublicIp": "ENABLED"}}
STRATEGY = [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}]
TG_SETTINGS = {"Protocol": "HTTP", "Port": 8080, "VpcId": "vpc-1", "TargetType": "ip",
               **target_group.settings(spec())}  # in sync with the config
ALARMS = ["mldeploy-demo-canary-5xx", "mldeploy-demo-canary-p99"]


def task_definition(rev: int, image: str, version: str) -> dict[str, Any]:
    return {"taskDefinitionArn": TD.format(rev), "family": "demo", "revision": rev, "cpu": "1024", "memory": "2048",
            "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "executionRoleArn": "arn:role/exec",
            "containerDefinitions": [{"name": "model", "image": image, "essential": True, "environment": [
                {"name": "MLDEPLOY_APP", "value": "demo"}, {"name": "MLDEPLOY_MODEL_VERSION", "value": version}]}]}


def service(name: str, td: int, tg: str, desired: int) -> dict[str, Any]:
    return {"serviceName": name, "serviceArn": f"arn:svc/{name}", "status": "ACTIVE", "taskDefinition": TD.format(td),
            "desiredCount": desired, "networkConfiguration": NET, "capacityProviderStrategy": STRATEGY,
            "platformVersion": "LATEST", "tags": owned_tags(key="key", value="value"),
            "loadBalancers": [{"targetGroupArn": tg, "containerName": "model", "containerPort": 8080}]}


def forward(weights: dict[str, int] | None) -> dict[str, Any]:
    if weights is None:
        return {"Type": "forward", "TargetGroupArn": TG}
    return {"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": arn, "Weight": w}
                                                                  for arn, w in weights.items()]}}


def world(*, canary: int | None = None, canary_tg: bool = False, alarms: int = 0, firing: tuple[str, ...] = (),
          tds: dict[int, dict[str, Any]] | None = None) -> FakeRemote:
    """The account as describe calls see it; ``canary``: the canary's percent (its service on demo:2)."""
    tds = tds or {1: task_definition(1, "img:v1", "1.0.0")}
    if canary is not None:
        tds.setdefault(2, task_definition(2, "img:v2", "1.1.0"))
    running = {"demo": service("demo", 1, TG, 4)}
    if canary is not None:
        running["demo-canary"] = service("demo-canary", 2, TGC, 1)
    groups = {"demo-tg": {"TargetGroupArn": TG, "TargetGroupName": "demo-tg", **TG_SETTINGS}}
    if canary is not None or canary_tg:
        groups["demo-tgc"] = {"TargetGroupArn": TGC, "TargetGroupName": "demo-tgc", **TG_SETTINGS}
    listener = {"ListenerArn": LISTENER, "Port": 80, "DefaultActions": [
        forward(None if canary is None else {TG: 100 - canary, TGC: canary})]}

    def describe_td(taskDefinition: str, include: list[str] | None = None) -> dict[str, Any]:
        rev = max(tds) if taskDefinition == "demo" else int(taskDefinition.rsplit(":", 1)[1])
        version = tds[rev]["containerDefinitions"][0]["environment"][1]["value"]
        return {"taskDefinition": tds[rev], "tags": [{"key": "mldeploy:version", "value": version}]}

    def describe_services(cluster: str, services: list[str], include: list[str] | None = None) -> dict[str, Any]:
        return {"services": [running[n] for n in services if n in running]}

    def describe_target_groups(Names: list[str]) -> dict[str, Any] | None:  # noqa: N803 - the AWS parameter
        found = [groups[n] for n in Names if n in groups]
        return {"TargetGroups": found} if found else None  # TargetGroupNotFound

    return FakeRemote({
        ("ecs", "describe_clusters"): {"clusters": [{"status": "ACTIVE"}]},
        ("ecs", "describe_services"): describe_services,
        ("ecs", "describe_task_definition"): describe_td,
        ("elbv2", "describe_target_groups"): describe_target_groups,
        ("elbv2", "describe_load_balancers"): {"LoadBalancers": [{"LoadBalancerArn": LB, "LoadBalancerName": "demo"}]},
        ("elbv2", "describe_listeners"): {"Listeners": [listener]},
        ("elbv2", "describe_tags"): {"TagDescriptions": [{"Tags": owned_tags()}]},
        ("elbv2", "describe_target_group_attributes"): {"Attributes": [
            {"Key": "deregistration_delay.timeout_seconds", "Value": "30"}]},
        ("cloudwatch", "describe_alarms"): {"MetricAlarms": [
            {"AlarmName": n, "StateValue": "ALARM" if n in firing else "OK", "StateReason": "5xx"}
            for n in ALARMS[:alarms]]},
    })


def target(remote: FakeRemote) -> AwsTarget:
    return AwsTarget(project(), clients=None, ui=NULL_UI, remote=remote)  # type: ignore[arg-type]


def ops(steps: list[Step]) -> list[tuple[str, str, str, list[str]]]:
    """(kind, name, action, calls) per step: the plan's shape, independent of each family's parameters."""
    return [(s.kind, s.name, str(s.action), [c.op if isinstance(c, ApiCall) else f"wait {c.what}" for c in s.calls])
            for s in steps]


def weights_of(step: Step) -> dict[Any, int] | None:
    (call,) = step.calls
    action = call.params["DefaultActions"][-1]
    groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
    return {g["TargetGroupArn"]: g["Weight"] for g in groups} if groups else None


def test_snapshot_reads_services_weights_and_images() -> None:
    snap = target(world(canary=25)).snapshot()
    assert (snap.stable, snap.canary, snap.canary_percent, snap.canary_count) == (TD.format(1), TD.format(2), 25, 1)
    assert (snap.stable_image, snap.canary_image) == ("img:v1", "img:v2")
    assert snap.weights == {"demo-tg": 75, "demo-tgc": 25} and snap.label == "demo (cluster demo)"


def test_canary_start_is_exactly_these_steps() -> None:
    aws = target(world())
    steps = aws.plan_canary(aws.snapshot(), "img:v2", "1.1.0", 10)
    assert ops(steps) == [
        ("task definition", "demo", "create", ["register_task_definition"]),
        ("target group", "demo-tgc", "create", ["create_target_group", "modify_target_group_attributes"]),
        ("listener", "demo:80", "update", ["modify_listener"]),
        ("ecs service", "demo-canary", "create", ["create_service"]),
        ("alarm", ALARMS[0], "create", ["put_metric_alarm"]),
        ("alarm", ALARMS[1], "create", ["put_metric_alarm"]),
        ("ecs service", "demo-canary", "update", ["wait service_stable"]),
        ("listener", "demo:80", "update", ["modify_listener"])]
    td_ref, tg_ref = Ref("canary.task_definition_arn"), Ref("canary.tg_arn")
    args = {k: v for k, v in task_definition(1, "img:v2", "1.1.0").items() if k not in ("taskDefinitionArn",
                                                                                        "revision")}
    tags = [{"key": k, "value": v} for k, v in sorted({**{t["Key"]: t["Value"] for t in owned_tags()},
                                                        "mldeploy:version": "1.1.0"}.items())]
    assert steps[0] == Step("task definition", "demo", Action.create, ["image img:v2", "version 1.1.0"],
                            note="copy of revision 1", calls=[ApiCall(
                                "ecs", "register_task_definition", {**args, "tags": tags},
                                outputs=(("canary.task_definition_arn", "taskDefinition.taskDefinitionArn"),))])
    assert steps[1].calls[0].params["VpcId"] == "vpc-1"  # from the stable target group: no network re-plan
    assert weights_of(steps[2]) == {TG: 100, tg_ref: 0}  # attached before ECS uses it
    create = steps[3].calls[0].params
    assert (create["taskDefinition"], create["loadBalancers"][0]["targetGroupArn"], create["desiredCount"]) == (
        td_ref, tg_ref, 1)
    assert create["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == ["s-1", "s-2"]  # the stable's
    assert steps[6].calls == (Wait("service_stable", {"cluster": "demo", "service": "demo-canary",
                                                      "task_definition": td_ref, "tg_arn": tg_ref}, timeout_s=900.0),)
    assert weights_of(steps[7]) == {TG: 90, tg_ref: 10}


def test_start_applies_weights_n_only_after_the_canary_is_healthy() -> None:
    applied: list[list[str]] = []

    class Recorder:
        values: dict[str, Any] = {}

        def apply(self, steps: list[Step]) -> None:
            applied.append([s.kind for s in steps])

        def run_wait(self, wait: Wait) -> None:
            applied.append([f"wait {wait.what}"])

    remote = world(canary_tg=True)
    aws = AwsTarget(project(), clients=None, ui=NULL_UI, remote=remote, executor=Recorder())  # type: ignore[arg-type]
    aws.start_canary(aws.snapshot(), TD.format(2), 10)
    assert applied == [["target group"], ["listener"], ["ecs service"], ["alarm"], ["alarm"],
                       ["wait service_stable"], ["listener"]]


def test_a_rerun_reuses_the_revision_and_target_group_a_killed_run_left() -> None:
    tds = {1: task_definition(1, "img:v1", "1.0.0"), 2: task_definition(2, "img:v2", "1.1.0")}
    aws = target(world(tds=tds, canary_tg=True))
    steps = aws.plan_canary(aws.snapshot(), "img:v2", "1.1.0", 10)
    assert steps[:2] == [noop("task definition", "demo:2"), noop("target group", "demo-tgc")]
    create = steps[3].calls[0].params
    assert (create["taskDefinition"], create["loadBalancers"][0]["targetGroupArn"]) == (TD.format(2), TGC)
    assert aws.plan_canary(aws.snapshot(), "img:v3", "1.2.0", 10)[0].action is Action.create  # another image


def test_shift_scales_ensures_alarms_waits_when_growing_and_weights() -> None:
    aws = target(world(canary=10, alarms=1))
    steps = aws.plan_shift(aws.snapshot(), 50)
    assert ops(steps) == [
        ("ecs service", "demo-canary", "update", ["update_service"]),
        ("alarm", ALARMS[0], "update", ["put_metric_alarm"]),  # the fake's alarm has other settings
        ("alarm", ALARMS[1], "create", ["put_metric_alarm"]),  # missing (a run died before creating it)
        ("ecs service", "demo-canary", "update", ["wait service_stable"]),
        ("listener", "demo:80", "update", ["modify_listener"])]
    assert steps[0].calls[0].params["desiredCount"] == 2 and weights_of(steps[-1]) == {TG: 50, TGC: 50}
    smaller = target(world(canary=50, alarms=2))
    assert [k for k, _, a, _ in ops(smaller.plan_shift(smaller.snapshot(), 20)) if a != "no-op"] == [
        "alarm", "alarm", "listener"]  # no scaling, no wait


def test_remove_is_weights_then_alarms_then_service() -> None:
    aws = target(world(canary=25, alarms=2))
    steps = aws.plan_remove(aws.snapshot())
    assert ops(steps) == [
        ("listener", "demo:80", "update", ["modify_listener"]),
        ("alarm", ALARMS[0], "delete", ["delete_alarms"]),
        ("alarm", ALARMS[1], "delete", ["delete_alarms"]),
        ("ecs service", "demo-canary", "delete", ["update_service", "delete_service", "wait services_inactive"])]
    assert weights_of(steps[0]) is None  # a plain forward to the stable target group


def test_promote_and_stable_rollback_swap_the_stable_service_then_wait() -> None:
    aws = target(world(canary=50))
    steps = aws.plan_swap(aws.snapshot(), TD.format(2))
    assert ops(steps) == [("ecs service", "demo", "update", ["update_service"]),
                          ("ecs service", "demo", "update", ["wait service_stable"])]
    assert steps[0].calls[0].params["taskDefinition"] == TD.format(2)
    assert steps[1].calls[0].params["task_definition"] == TD.format(2)


def test_firing_reads_the_canary_alarms_uncached() -> None:
    aws = target(world(canary=10, alarms=2, firing=(ALARMS[0],)))
    assert aws.alarm_names() == ALARMS
    assert aws.firing(ALARMS) == [(ALARMS[0], "5xx")]


def test_a_load_balancer_without_a_forwarding_listener_is_refused() -> None:
    remote = world()
    remote.answer("elbv2", "describe_listeners", {"Listeners": [{"ListenerArn": LISTENER, "Port": 80,
                                                                 "DefaultActions": [{"Type": "fixed-response"}]}]})
    aws = target(remote)
    with pytest.raises(AwsError, match="has no listener forwarding to target group 'demo-tg'"):
        aws.plan_canary(aws.snapshot(), "img:v2", "1.1.0", 10)
