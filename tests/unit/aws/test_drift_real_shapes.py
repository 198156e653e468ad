"""Describe answers shaped like a real account's are no-ops: AWS fills in defaults we never sent (task definition
``secretOptions: []``, ``hostPort``/``protocol``, container ``cpu: 0``, ``volumesFrom``, ``systemControls``; a
plain forward described with both ``TargetGroupArn`` and ``ForwardConfig``; a target group's every attribute), and
comparing whole dicts would re-register / modify on every ``up``. Field shapes from botocore's ecs and elbv2
service-2.json output shapes (TaskDefinition, ContainerDefinition, Listener, Rule, TargetGroup).

Also: the runtime's keep-alive follows a raised ALB idle timeout (``MLDEPLOY_KEEP_ALIVE_S`` in the task)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mldeploy.aws.engine.model import Action, Step, noop
from mldeploy.aws.resources import listener, load_balancer, target_group, task_definition
from tests.unit.aws.test_plan_service import (
    ACCOUNT,
    ALB_ARN,
    CANARY_TG_ARN,
    IMAGE_A,
    TG_ARN,
    known_existing,
    td_arn,
)
from tests.unit.fakes import BASE_CONFIG, FakeRemote, owned_tags, project, spec

LISTENER_ARN = f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:listener/app/demo/abc/80"
LONG_REQUESTS = BASE_CONFIG + "runtime:\n  request_timeout_s: 300\n"


# ------------------------------------------------------------------------------------------ task definition


def described_task_definition(s: Any, rev: int = 3) -> dict[str, Any]:
    """describe_task_definition for a revision registered from ``desired``, as ECS answers it on an account."""
    args = task_definition.desired(s, known_existing(), IMAGE_A)
    tags = args.pop("tags")
    (c,) = args.pop("containerDefinitions")
    c = copy.deepcopy(c)
    c["logConfiguration"]["secretOptions"] = []
    c.update(cpu=0, volumesFrom=[], systemControls=[],
             portMappings=[{"containerPort": p["containerPort"], "hostPort": p["containerPort"], "protocol": "tcp"}
                           for p in c["portMappings"]],
             environment=list(reversed(c["environment"])))
    td = {**args, "containerDefinitions": [c], "taskDefinitionArn": td_arn(rev), "revision": rev,
          "status": "ACTIVE", "volumes": [{"name": "tmp", "host": {}}],
          "compatibilities": ["EC2", "FARGATE"], "placementConstraints": [],
          "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.logging-driver.awslogs"},
                                 {"name": "ecs.capability.execution-role-awslogs"},
                                 {"name": "com.amazonaws.ecs.capability.docker-remote-api.1.19"}],
          "registeredAt": "2026-01-01T00:00:00+00:00",
          "registeredBy": f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/ci"}
    return {"taskDefinition": td, "tags": tags}


def _td_remote(s: Any, answer: dict[str, Any]) -> FakeRemote:
    svc = {"serviceName": s.service_name, "status": "ACTIVE", "taskDefinition": td_arn(3)}
    return FakeRemote({("ecs", "describe_services"): {"services": [svc]},
                       ("ecs", "describe_task_definition"): answer})


@pytest.mark.parametrize("config", [BASE_CONFIG, LONG_REQUESTS], ids=["default", "long-requests"])
def test_a_real_shaped_task_definition_is_a_noop(config: str) -> None:
    s = spec(project(config), image=IMAGE_A)
    remote, known = _td_remote(s, described_task_definition(s)), known_existing()
    assert task_definition.plan(s, remote, known) == [noop("task definition", "demo:3")]
    assert known["task_definition_arn"] == td_arn(3)


def test_health_check_defaults_left_out_by_aws_equal_the_documented_ones() -> None:
    s = spec(image=IMAGE_A)
    want = task_definition.desired(s, known_existing(), IMAGE_A)
    cur = copy.deepcopy(want)
    hc = cur["containerDefinitions"][0]["healthCheck"]
    want["containerDefinitions"][0]["healthCheck"].update(interval=30, timeout=5, retries=3, startPeriod=0)
    for key in ("interval", "timeout", "retries", "startPeriod"):
        hc.pop(key)  # "The default value is 30 seconds" / 5 / 3 / "off" (botocore ecs HealthCheck)
    del cur["containerDefinitions"][0]["essential"]  # "If this parameter is omitted, a container is assumed to be
    cur["cpu"], cur["memory"] = 512, 1024            # essential"; and cpu/memory as numbers equal their strings
    assert task_definition.diff(cur, want) == []


def test_a_real_shaped_task_definition_still_shows_real_drift() -> None:
    s = spec(image=IMAGE_A)
    answer = described_task_definition(s)
    c = answer["taskDefinition"]["containerDefinitions"][0]
    c["healthCheck"]["retries"] = 9
    c["logConfiguration"]["secretOptions"] = [{"name": "x", "valueFrom": "arn:x"}]
    answer["taskDefinition"]["ephemeralStorage"] = {"sizeInGiB": 40}
    (step,) = task_definition.plan(s, _td_remote(s, answer), known_existing())
    assert (step.action, step.changes) == (Action.update, ("ephemeral storage 40 → 20 GiB", "logConfiguration",
                                                           "healthCheck"))


# ------------------------------------------------------------------------------------ listener and rules


def _stickiness() -> dict[str, Any]:
    return {"Enabled": False}


def described_listener(groups: dict[str, int]) -> dict[str, Any]:
    """describe_listeners' entry (botocore elbv2 Listener/Action): a forward carries ForwardConfig, and with one
    group also TargetGroupArn."""
    forward: dict[str, Any] = {"Type": "forward", "Order": 1, "ForwardConfig": {
        "TargetGroups": [{"TargetGroupArn": arn, "Weight": w} for arn, w in groups.items()],
        "TargetGroupStickinessConfig": _stickiness()}}
    if len(groups) == 1:
        forward["TargetGroupArn"] = next(iter(groups))
    return {"ListenerArn": LISTENER_ARN, "LoadBalancerArn": ALB_ARN, "Port": 80, "Protocol": "HTTP",
            "DefaultActions": [forward], "MutualAuthentication": {"Mode": "off"}}


def _elb(**answers: Any) -> FakeRemote:
    remote = FakeRemote({("elbv2", "describe_tags"): {"TagDescriptions": [{"ResourceArn": "x",
                                                                            "Tags": owned_tags()}]}})
    for op, value in answers.items():
        remote.answer("elbv2", op, value)
    return remote


def test_real_shaped_listeners_are_noops_for_up_and_the_release_weights() -> None:
    s = spec()
    label = "demo:80"
    plain = _elb(describe_listeners={"Listeners": [described_listener({TG_ARN: 1})]})
    assert listener.plan(s, plain, {"alb_arn": ALB_ARN, "tg_arn": TG_ARN}) == [noop("listener", label)]
    known = {"alb_arn": ALB_ARN, "tg_arn": TG_ARN, "canary.tg_arn": CANARY_TG_ARN}
    assert listener.plan_weights(s, plain, known, None) == [noop("listener", label)]
    weighted = _elb(describe_listeners={"Listeners": [described_listener({TG_ARN: 90, CANARY_TG_ARN: 10})]})
    assert listener.plan(s, weighted, {"alb_arn": ALB_ARN, "tg_arn": TG_ARN}) == [noop("listener", label)]
    assert listener.plan_weights(s, weighted, known, 10) == [noop("listener", label)]
    (step,) = listener.plan_weights(s, weighted, known, 25)  # and a real change is still one
    assert step.action == Action.update


def test_a_real_shaped_private_paths_rule_is_a_noop() -> None:
    values = list(listener.PRIVATE_PATHS)
    rules = {"Rules": [
        {"RuleArn": "arn:rule/1", "Priority": "1", "IsDefault": False,
         "Conditions": [{"Field": "path-pattern", "Values": values, "PathPatternConfig": {"Values": values}}],
         "Actions": [{"Order": 1, **listener.PRIVATE_RESPONSE}]},
        {"RuleArn": "arn:rule/default", "Priority": "default", "IsDefault": True, "Conditions": [],
         "Actions": described_listener({TG_ARN: 1})["DefaultActions"]}]}
    remote = _elb(describe_rules=rules)
    assert listener.plan_private_paths(spec(), remote, {"listener_arn": LISTENER_ARN}) == [
        noop("listener rule", listener.private_label(spec()))]


# -------------------------------------------------------------------------------------------- target group


def test_a_real_shaped_target_group_and_its_attributes_are_a_noop() -> None:
    s = spec()
    tg = {"TargetGroupArn": TG_ARN, "TargetGroupName": "demo-tg", "Protocol": "HTTP", "Port": 8080,
          "VpcId": "vpc-1", "HealthCheckProtocol": "HTTP", "HealthCheckPort": "traffic-port",
          "HealthCheckEnabled": True, "LoadBalancerArns": [ALB_ARN], "TargetType": "ip",
          "ProtocolVersion": "HTTP1", "IpAddressType": "ipv4", **target_group.settings(s)}
    delay = str(s.config.aws.health_check.deregistration_delay_s)
    attrs = {"stickiness.enabled": "false", "deregistration_delay.timeout_seconds": delay,
             "stickiness.type": "lb_cookie", "stickiness.lb_cookie.duration_seconds": "86400",
             "slow_start.duration_seconds": "0", "load_balancing.algorithm.type": "round_robin",
             "load_balancing.cross_zone.enabled": "use_load_balancer_configuration",
             "target_group_health.dns_failover.minimum_healthy_targets.count": "1"}
    remote = _elb(describe_target_groups={"TargetGroups": [tg]}, describe_target_group_attributes={
        "Attributes": [{"Key": k, "Value": v} for k, v in attrs.items()]})
    assert target_group.plan(s, remote, {"vpc_id": "vpc-1"}) == [noop("target group", "demo-tg")]


# ------------------------------------------------------------------- keep-alive above the ALB idle timeout


def _env(s: Any) -> dict[str, str]:
    return {e["name"]: e["value"] for e in task_definition.container(s, IMAGE_A, known_existing())["environment"]}


def test_the_runtime_keep_alive_follows_a_raised_alb_idle_timeout() -> None:
    from runtime.settings import Settings

    default = Settings.model_fields["keep_alive_s"].default
    assert default > load_balancer.DEFAULT_IDLE_TIMEOUT_S  # the ALB's 60 s default is covered without a setting
    assert "MLDEPLOY_KEEP_ALIVE_S" not in _env(spec())
    s = spec(project(LONG_REQUESTS))
    idle = load_balancer.idle_timeout(s)
    assert idle == 305  # request_timeout_s 300 + 5
    assert _env(s)["MLDEPLOY_KEEP_ALIVE_S"] == "310"  # the ALB closes idle connections first
    edge = spec(project(BASE_CONFIG + "runtime:\n  request_timeout_s: 66\n"))  # idle 71: 75 is not 5 s above it
    assert _env(edge)["MLDEPLOY_KEEP_ALIVE_S"] == "76"
    assert "MLDEPLOY_KEEP_ALIVE_S" not in _env(spec(project(BASE_CONFIG + "runtime:\n  request_timeout_s: 65\n")))


def test_the_runtime_reads_its_keep_alive_from_the_task_environment() -> None:
    from runtime.settings import SettingsError, load_settings

    base = {"MLDEPLOY_MODEL_DIR": "/nonexistent"}
    assert load_settings(environ=base).keep_alive_s == 75
    assert load_settings(environ={**base, "MLDEPLOY_KEEP_ALIVE_S": "310"}).keep_alive_s == 310
    with pytest.raises(SettingsError, match="MLDEPLOY_KEEP_ALIVE_S"):
        load_settings(environ={**base, "MLDEPLOY_KEEP_ALIVE_S": "0"})


def test_a_changed_keep_alive_is_a_task_definition_change() -> None:
    s = spec(project(LONG_REQUESTS), image=IMAGE_A)
    old = described_task_definition(spec(image=IMAGE_A))  # registered before request_timeout_s was raised
    (step,) = task_definition.plan(s, _td_remote(s, old), known_existing())
    assert step == Step("task definition", "demo", Action.update, ["environment MLDEPLOY_KEEP_ALIVE_S"],
                        note="new revision after 3", calls=step.calls)
    (register,) = step.calls
    assert register.op == "register_task_definition"
    assert {"name": "MLDEPLOY_KEEP_ALIVE_S", "value": "310"} in register.params["containerDefinitions"][0][
        "environment"]
