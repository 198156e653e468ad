"""Plans as data for the service-side families (task definition, service, autoscaling, alarms, dashboard, outputs),
both roles: ``assert steps == [Step(...)]`` against a fake remote, with refs flowing from one family to the next."""

from __future__ import annotations

import json
from typing import Any

from mldeploy.aws.engine.model import Action, ApiCall, Fn, Ref, Step, Wait, after, noop
from mldeploy.aws.resources import alarms, autoscaling, dashboard, ecr, service, stack_outputs, task_definition
from tests.unit.fakes import ACCOUNT, BASE_CONFIG, FakeRemote, owned_tags, project, spec

ECS = f"arn:aws:ecs:us-east-1:{ACCOUNT}"
ELB = f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}"
ALB_ARN = f"{ELB}:loadbalancer/app/demo/abc"
TG_ARN, CANARY_TG_ARN = f"{ELB}:targetgroup/demo-tg/111", f"{ELB}:targetgroup/demo-tgc/222"
EXEC_ROLE = f"arn:aws:iam::{ACCOUNT}:role/demo-exec"
REPO = "1.dkr.ecr.us-east-1.amazonaws.com/demo"
IMAGE_A, IMAGE_B = f"{REPO}@sha256:aaa", f"{REPO}@sha256:bbb"
TARGET = {"ServiceNamespace": "ecs", "ResourceId": "service/demo/demo",
          "ScalableDimension": "ecs:service:DesiredCount"}
WITH_REQUESTS = BASE_CONFIG + "aws:\n  autoscaling:\n    requests_per_target: 100\n"
STABLE_ALARMS = ["mldeploy-demo-5xx-rate", "mldeploy-demo-p99-latency"]
SUMMARY = "circuit breaker + rollback (and on alarms mldeploy-demo-5xx-rate, mldeploy-demo-p99-latency)"
REGISTER = {"retry": autoscaling.REGISTER_RETRY, "retry_timeout_s": 120.0}
PUT_POLICY = {"retry": autoscaling.POLICY_RETRY, "retry_timeout_s": 120.0}
CANARY_SUMMARY = "circuit breaker + rollback (and on alarms mldeploy-demo-canary-5xx, mldeploy-demo-canary-p99)"


def td_arn(rev: int) -> str:
    return f"{ECS}:task-definition/demo:{rev}"


def known_existing() -> dict[str, Any]:
    """What the earlier families put in ``known`` when everything exists."""
    return {"vpc_id": "vpc-1", "subnet_ids": ["subnet-a", "subnet-b"], "execution_role_arn": EXEC_ROLE,
            "task_role_arn": None, "alb_sg_id": "sg-alb", "task_sg_id": "sg-tasks", "alb_arn": ALB_ARN,
            "alb_dns": "demo-1.us-east-1.elb.amazonaws.com", "alb_full_name": "app/demo/abc", "tg_arn": TG_ARN,
            "canary.tg_arn": CANARY_TG_ARN, "listener_arn": f"{ELB}:listener/app/demo/abc/l1"}


def known_new() -> dict[str, Any]:
    """... when this plan creates the security groups, load balancer and target group."""
    return {**known_existing(), "task_sg_id": Ref("task_sg_id"), "alb_arn": Ref("alb_arn"),
            "alb_dns": Ref("alb_dns"), "alb_full_name": after(Ref("alb_arn"), ":loadbalancer/"),
            "tg_arn": Ref("tg_arn")}


def revision(s: Any, rev: int, image: str, known: dict[str, Any] | None = None) -> dict[str, Any]:
    """describe_task_definition's answer for a revision registered from ``s``'s desired arguments."""
    args = task_definition.desired(s, known or known_existing(), image)
    tags = args.pop("tags")
    return {"taskDefinition": {**args, "taskDefinitionArn": td_arn(rev), "revision": rev, "status": "ACTIVE"},
            "tags": tags}


def ecs_service(s: Any, td: str, tg: str = TG_ARN, count: int = 2, status: str = "ACTIVE") -> dict[str, Any]:
    """describe_services' entry for a service in sync with ``s`` (as real ECS answers: every field present)."""
    want = service.desired(s, {**known_existing(), s.key("task_definition_arn"): td})
    return {"serviceName": s.service_name, "serviceArn": f"{ECS}:service/demo/{s.service_name}", "status": status,
            "taskDefinition": td, "desiredCount": count, "networkConfiguration": want["networkConfiguration"],
            "loadBalancers": [{"targetGroupArn": tg, "containerName": "model", "containerPort": 8080}],
            "healthCheckGracePeriodSeconds": 60, "deploymentConfiguration": service.deployment(s),
            "capacityProviderStrategy": want["capacityProviderStrategy"], "tags": want["tags"]}


def services(*svcs: dict[str, Any]) -> Any:
    def answer(cluster: str, services: list[str], include: list[str]) -> dict[str, Any]:
        return {"services": [s for s in svcs if s["serviceName"] in services]}
    return answer


def task_definitions(by_ref: dict[str, dict[str, Any]]) -> Any:
    def answer(taskDefinition: str, include: list[str]) -> dict[str, Any] | None:  # noqa: N803 (AWS's name)
        return by_ref.get(taskDefinition)
    return answer


def empty_remote() -> FakeRemote:
    return FakeRemote({("ecs", "describe_services"): {"services": []}, ("ecs", "describe_task_definition"): None,
                       ("application-autoscaling", "describe_scalable_targets"): {"ScalableTargets": []},
                       ("sns", "get_topic_attributes"): None, ("cloudwatch", "describe_alarms"): {"MetricAlarms": []},
                       ("cloudwatch", "get_dashboard"): None, ("ssm", "get_parameters"): {"Parameters": []}})


# ------------------------------------------------------------------------------------- create on empty


def test_empty_account_creates_everything_with_refs_flowing() -> None:
    s = spec(project(WITH_REQUESTS))
    remote, known = empty_remote(), known_new()

    keep, *td_steps = task_definition.plan(s, remote, known)
    assert keep == ecr.keep(s, remote, {}, Ref("image"))[0]  # the pushed image is tagged keep-… first (plan_images)
    register = task_definition.desired(s, known, Ref("image"))
    assert register["containerDefinitions"][0]["image"] == Ref("image")
    assert register["executionRoleArn"] == EXEC_ROLE and "taskRoleArn" not in register
    assert td_steps == [Step("task definition", "demo", Action.create,
                             ["512 CPU units, 1024 MiB, linux/amd64", "image (known after apply: image)"], calls=[
        ApiCall("ecs", "register_task_definition", register,
                outputs=(("task_definition_arn", "taskDefinition.taskDefinitionArn"),))])]
    assert known["task_definition_arn"] == Ref("task_definition_arn") and known["image"] == Ref("image")

    svc_steps = service.plan(s, remote, known)
    create = service.desired(s, known)
    assert create["taskDefinition"] == Ref("task_definition_arn")
    assert create["loadBalancers"][0]["targetGroupArn"] == Ref("tg_arn")
    assert create["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] == [Ref("task_sg_id")]
    assert create["desiredCount"] == 2
    assert svc_steps == [Step("ecs service", "demo", Action.create,
                              ["2 tasks", "Fargate on-demand", SUMMARY], calls=[
        ApiCall("ecs", "create_service", create, outputs=(("service_arn", "service.serviceArn"),),
                retry=service.CREATE_RETRY, retry_timeout_s=900.0)])]
    assert known["service_arn"] == Ref("service_arn")

    label = Fn("format", ("{lb}/{tg}",), (("lb", after(Ref("alb_arn"), ":loadbalancer/")),
                                          ("tg", Fn("format", ("targetgroup/{tg}",),
                                                    (("tg", Fn("after", (Ref("tg_arn"), ":targetgroup/"))),)))))
    target = TARGET
    policy = {"ScaleInCooldown": 120, "ScaleOutCooldown": 30}
    assert autoscaling.plan(s, remote, known) == [
        Step("scalable target", "demo (1–4 tasks)", Action.create, ["min 1, max 4"], calls=[
            ApiCall("application-autoscaling", "register_scalable_target",
                    {**target, "MinCapacity": 1, "MaxCapacity": 4, "Tags": s.tags}, **REGISTER)]),
        Step("scaling policy", "demo-cpu", Action.create, ["target tracking CPU = 60.0"], calls=[
            ApiCall("application-autoscaling", "put_scaling_policy", {
                "PolicyName": "demo-cpu", **target, "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": {"TargetValue": 60.0, "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "ECSServiceAverageCPUUtilization"}, **policy}}, **PUT_POLICY)]),
        Step("scaling policy", "demo-requests", Action.create, ["target tracking requests per target = 100"], calls=[
            ApiCall("application-autoscaling", "put_scaling_policy", {
                "PolicyName": "demo-requests", **target, "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": {"TargetValue": 100.0, "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": label}, **policy}},
                    **PUT_POLICY)])]

    assert alarms.plan_topic(s, remote, known) == [] and known["topic_arn"] is None
    alarm_steps = alarms.plan(s, remote, known)
    assert [(a.kind, a.name, a.action) for a in alarm_steps] == [
        ("alarm", f"mldeploy-demo-{k}", Action.create) for k in alarms.STABLE_KINDS]
    p99 = alarm_steps[1].calls[0]
    assert p99 == ApiCall("cloudwatch", "put_metric_alarm", {
        "AlarmName": "mldeploy-demo-p99-latency", "Tags": owned_tags(), **alarms.definitions(s, known)[p99.params[
            "AlarmName"]]})
    assert p99.params["Dimensions"] == [
        {"Name": "LoadBalancer", "Value": after(Ref("alb_arn"), ":loadbalancer/")},
        {"Name": "TargetGroup", "Value": Fn("format", ("targetgroup/{tg}",),
                                            (("tg", Fn("after", (Ref("tg_arn"), ":targetgroup/"))),))}]

    (dash,) = dashboard.plan(s, remote, known)
    body = dashboard.body(s, known)
    assert dash == Step("dashboard", "mldeploy-demo", Action.create,
                        ["CPU/memory, latency p50/p99, 2xx/4xx/5xx, targets, EMF"], calls=[
        ApiCall("cloudwatch", "put_dashboard", {"DashboardName": "mldeploy-demo",
                                                "DashboardBody": Fn("json", (body,))})])

    put = {"Type": "String", "Tags": owned_tags()}
    assert stack_outputs.plan(s, remote, known) == [Step("outputs (ssm)", "/mldeploy/demo/default", Action.create,
                                                         ["url", "image", "task-definition", "alb-dns"], calls=[
        ApiCall("ssm", "put_parameter", {"Name": "/mldeploy/demo/default/url", **put,
                                         "Value": Fn("format", ("http://{host}",), (("host", Ref("alb_dns")),))}),
        ApiCall("ssm", "put_parameter", {"Name": "/mldeploy/demo/default/image", "Value": Ref("image"), **put}),
        ApiCall("ssm", "put_parameter", {"Name": "/mldeploy/demo/default/task-definition",
                                         "Value": Ref("task_definition_arn"), **put}),
        ApiCall("ssm", "put_parameter", {"Name": "/mldeploy/demo/default/alb-dns", "Value": Ref("alb_dns"), **put})])]


def test_refs_resolve_like_the_executor_would() -> None:
    from mldeploy.aws.engine.executor import Executor

    ex = Executor(clients=None, ui=None, waiters={},  # type: ignore[arg-type]
                  values={"alb_arn": ALB_ARN, "tg_arn": TG_ARN, "alb_dns": "x.elb.amazonaws.com"})
    assert ex.resolve(autoscaling.resource_label(known_new())) == "app/demo/abc/targetgroup/demo-tg/111"
    assert ex.resolve(alarms.tg_dimension(Ref("tg_arn"))) == "targetgroup/demo-tg/111"
    assert ex.resolve(stack_outputs.values(spec(), {"alb_dns": Ref("alb_dns")})["url"]) == "http://x.elb.amazonaws.com"
    body = dashboard.body(spec(), known_new())
    assert json.loads(ex.resolve(dashboard.encode(body))) == dashboard.body(spec(), {
        **known_existing(), "alb_full_name": "app/demo/abc", "tg_arn": TG_ARN})
    # concrete values need no Fn at all
    assert autoscaling.resource_label(known_existing()) == "app/demo/abc/targetgroup/demo-tg/111"


# ----------------------------------------------------------------------------------------------- in sync


def in_sync_remote(s: Any, image: str = IMAGE_A) -> FakeRemote:
    known = known_existing()
    known["task_definition_arn"] = td_arn(3)
    alarm_defs = alarms.definitions(s, {**known, "topic_arn": None})
    body = dashboard.body(s, known)
    outputs = {"url": "http://demo-1.us-east-1.elb.amazonaws.com", "image": image,
               "task-definition": td_arn(3), "alb-dns": known["alb_dns"]}
    return FakeRemote({
        ("ecs", "describe_services"): services(ecs_service(s, td_arn(3))),
        ("ecs", "describe_task_definition"): task_definitions({td_arn(3): revision(s, 3, image),
                                                               "demo": revision(s, 3, image)}),
        ("application-autoscaling", "describe_scalable_targets"): {"ScalableTargets": [
            {"MinCapacity": 1, "MaxCapacity": 4}]},
        ("application-autoscaling", "describe_scaling_policies"): {"ScalingPolicies": [
            {"PolicyName": n, "TargetTrackingScalingPolicyConfiguration": c}
            for n, c in autoscaling.policies(s, known).items()]},
        ("application-autoscaling", "describe_scheduled_actions"): {"ScheduledActions": []},
        ("sns", "get_topic_attributes"): None,
        ("cloudwatch", "describe_alarms"): {"MetricAlarms": [{"AlarmName": n, **a} for n, a in alarm_defs.items()]},
        ("cloudwatch", "get_dashboard"): {"DashboardBody": json.dumps(body)},
        ("ssm", "get_parameters"): {"Parameters": [{"Name": f"/mldeploy/demo/default/{k}", "Value": v}
                                                   for k, v in outputs.items()]},
    })


def test_in_sync_everything_is_a_noop_and_values_are_concrete() -> None:
    s = spec()
    remote, known = in_sync_remote(s), known_existing()
    steps = [*task_definition.plan(s, remote, known), *service.plan(s, remote, known),
             *autoscaling.plan(s, remote, known), *alarms.plan_topic(s, remote, known),
             *alarms.plan(s, remote, known), *dashboard.plan(s, remote, known),
             *stack_outputs.plan(s, remote, known)]
    assert steps == [noop("task definition", "demo:3"), noop("ecs service", "demo"),
                     noop("scalable target", "demo (1–4 tasks)"), noop("scaling policy", "demo-cpu"),
                     *(noop("alarm", f"mldeploy-demo-{k}") for k in alarms.STABLE_KINDS),
                     noop("dashboard", "mldeploy-demo"), noop("outputs (ssm)", "/mldeploy/demo/default")]
    assert known["task_definition_arn"] == td_arn(3) and known["image"] == IMAGE_A
    assert known["service_arn"] == f"{ECS}:service/demo/demo"


# ------------------------------------------------------------------------------------------------- drift


def test_new_image_registers_a_revision_and_updates_the_service() -> None:
    s = spec(image=IMAGE_B)
    remote, known = in_sync_remote(s.as_role("stable", image=None)), known_existing()
    (td,) = task_definition.plan(s, remote, known)
    assert td == Step("task definition", "demo", Action.update, [f"image {IMAGE_A} → {IMAGE_B}"],
                      note="new revision after 3", calls=[
        ApiCall("ecs", "register_task_definition", task_definition.desired(s, known, IMAGE_B),
                outputs=(("task_definition_arn", "taskDefinition.taskDefinitionArn"),))])
    assert service.plan(s, remote, known) == [Step("ecs service", "demo", Action.update, [
        "task definition demo:3 → (known after apply: task_definition_arn)"], calls=[
        ApiCall("ecs", "update_service", {"cluster": "demo", "service": "demo",
                                          "taskDefinition": Ref("task_definition_arn")},
                retry=service.IAM_RETRY, retry_timeout_s=service.IAM_PROPAGATION_S)])]
    (outputs,) = stack_outputs.plan(s, remote, known)
    assert outputs.calls == (
        ApiCall("ssm", "put_parameter", {"Name": "/mldeploy/demo/default/image", "Value": IMAGE_B, "Type": "String",
                                         "Overwrite": True}),
        ApiCall("ssm", "put_parameter", {"Name": "/mldeploy/demo/default/task-definition",
                                         "Value": Ref("task_definition_arn"), "Type": "String", "Overwrite": True}))


def test_service_drift_per_field() -> None:
    s = spec(project(BASE_CONFIG + "aws:\n  spot:\n    enabled: true\n    weight: 70\n"))
    known = {**known_existing(), "task_definition_arn": td_arn(3)}
    cur = {**ecs_service(spec(), td_arn(3), count=9), "healthCheckGracePeriodSeconds": 30,
           "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-a"], "securityGroups": ["sg-old"],
                                                            "assignPublicIp": "ENABLED"}}}
    remote = FakeRemote({("ecs", "describe_services"): services(cur)})
    strategy = service.capacity_strategy(s)
    assert strategy == [{"capacityProvider": "FARGATE", "weight": 30, "base": 1},
                        {"capacityProvider": "FARGATE_SPOT", "weight": 70, "base": 0}]
    assert service.plan(s, remote, known) == [Step("ecs service", "demo", Action.update, [
        "network (subnets / security group / public IP)", "grace period 30s → 60s",
        "capacity providers → FARGATE w30, FARGATE_SPOT w70", "desired count 9 → 4"], calls=[
        ApiCall("ecs", "update_service", {
            "cluster": "demo", "service": "demo", "networkConfiguration": service.network(s, known),
            "healthCheckGracePeriodSeconds": 60, "capacityProviderStrategy": strategy, "forceNewDeployment": True,
            "desiredCount": 4}, retry=service.IAM_RETRY, retry_timeout_s=service.IAM_PROPAGATION_S)])]


def test_autoscaling_owns_the_count_within_range_and_moto_omissions_are_not_drift() -> None:
    s = spec()
    known = {**known_existing(), "task_definition_arn": td_arn(3)}
    cur = ecs_service(s, td_arn(3), count=3)
    for field in ("deploymentConfiguration", "capacityProviderStrategy", "healthCheckGracePeriodSeconds"):
        del cur[field]
    assert service.plan(s, FakeRemote({("ecs", "describe_services"): services(cur)}), known) == [
        noop("ecs service", "demo")]


def test_scaling_drift_updates_and_removes_policies() -> None:
    s = spec()
    known = known_existing()
    remote = FakeRemote({
        ("application-autoscaling", "describe_scalable_targets"): {"ScalableTargets": [
            {"MinCapacity": 2, "MaxCapacity": 4}]},
        ("application-autoscaling", "describe_scaling_policies"): {"ScalingPolicies": [
            {"PolicyName": "demo-cpu", "TargetTrackingScalingPolicyConfiguration": {"TargetValue": 80.0}},
            {"PolicyName": "demo-requests", "TargetTrackingScalingPolicyConfiguration": {}}]},
        ("application-autoscaling", "describe_scheduled_actions"): {"ScheduledActions": []}})
    target = TARGET
    assert autoscaling.plan(s, remote, known) == [
        Step("scalable target", "demo (1–4 tasks)", Action.update, ["min/max 2/4 → 1/4"], calls=[
            ApiCall("application-autoscaling", "register_scalable_target",
                    {**target, "MinCapacity": 1, "MaxCapacity": 4}, **REGISTER)]),
        Step("scaling policy", "demo-cpu", Action.update, ["target / cooldowns"], calls=[
            ApiCall("application-autoscaling", "put_scaling_policy", {
                "PolicyName": "demo-cpu", **target, "PolicyType": "TargetTrackingScaling",
                "TargetTrackingScalingPolicyConfiguration": autoscaling.policies(s, known)["demo-cpu"]},
                    **PUT_POLICY)]),
        Step("scaling policy", "demo-requests", Action.delete, ["not configured"], calls=[
            ApiCall("application-autoscaling", "delete_scaling_policy", {"PolicyName": "demo-requests", **target},
                    missing=("ObjectNotFoundException",))])]


def test_alarm_threshold_drift_and_disabled_alarms() -> None:
    s = spec(project(BASE_CONFIG + "aws:\n  alarms:\n    p99_latency_ms: 250\n"))
    known = {**known_existing(), "topic_arn": None}
    old = alarms.definitions(spec(), known)
    remote = FakeRemote({("cloudwatch", "describe_alarms"): {"MetricAlarms": [
        {"AlarmName": n, **a} for n, a in old.items()]}})
    steps = alarms.plan(s, remote, known)
    assert [(x.name, x.action) for x in steps] == [("mldeploy-demo-5xx-rate", Action.noop),
                                                   ("mldeploy-demo-p99-latency", Action.update),
                                                   ("mldeploy-demo-unhealthy-hosts", Action.noop)]
    assert steps[1].calls[0].params["Threshold"] == 0.25
    off = spec(project(BASE_CONFIG + "aws:\n  alarms:\n    enabled: false\n"))
    assert alarms.plan(off, remote, known) == [
        Step("alarm", f"mldeploy-demo-{k}", Action.delete, ["alarms disabled"], calls=[
            ApiCall("cloudwatch", "delete_alarms", {"AlarmNames": [f"mldeploy-demo-{k}"]})])
        for k in alarms.STABLE_KINDS]


def test_topic_with_email_is_created_and_alarms_notify_it() -> None:
    s = spec(project(BASE_CONFIG + "aws:\n  alarms:\n    email: ops@example.com\n"))
    known: dict[str, Any] = {}
    arn = f"arn:aws:sns:us-east-1:{ACCOUNT}:mldeploy-demo-alarms"
    assert alarms.plan_topic(s, FakeRemote({("sns", "get_topic_attributes"): None}), known) == [
        Step("sns topic", "mldeploy-demo-alarms", Action.create, ["e-mail ops@example.com (confirm the subscription "
                                                                  "e-mail)"], calls=[
            ApiCall("sns", "create_topic", {"Name": "mldeploy-demo-alarms", "Tags": owned_tags()}),
            ApiCall("sns", "subscribe", {"TopicArn": arn, "Protocol": "email", "Endpoint": "ops@example.com"})])]
    assert known["topic_arn"] == arn
    assert alarms.definitions(s, {**known_existing(), **known})["mldeploy-demo-5xx-rate"]["AlarmActions"] == [arn]


def test_https_url_uses_the_domain() -> None:
    s = spec(project(BASE_CONFIG + "aws:\n  certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/x\n"
                                   "  domain: api.example.com\n"))
    assert stack_outputs.values(s, {"alb_dns": Ref("alb_dns")})["url"] == "https://api.example.com"
    assert stack_outputs.values(spec(), {"alb_dns": "d.elb.amazonaws.com"})["url"] == "http://d.elb.amazonaws.com"


# ------------------------------------------------------------------------------ stable TD during a canary


def canary_in_progress(s: Any) -> FakeRemote:
    """Stable runs demo:3 (image A, 1.0.0); the canary runs demo:4 (image B, 2.0.0), the family's latest."""
    c = s.as_role("canary", image=IMAGE_B, version="2.0.0")
    canary_rev = revision(c, 4, IMAGE_B)
    return FakeRemote({
        ("ecs", "describe_services"): services(ecs_service(s, td_arn(3)),
                                               ecs_service(c, td_arn(4), tg=CANARY_TG_ARN, count=1)),
        ("ecs", "describe_task_definition"): task_definitions({td_arn(3): revision(s, 3, IMAGE_A),
                                                               td_arn(4): canary_rev, "demo": canary_rev})})


def test_during_a_canary_the_stable_plan_keeps_the_stable_revision() -> None:
    s = spec()
    remote, known = canary_in_progress(s), known_existing()
    assert task_definition.plan(s, remote, known) == [noop("task definition", "demo:3")]
    assert known["task_definition_arn"] == td_arn(3) and known["image"] == IMAGE_A
    known["task_definition_arn"] = td_arn(3)
    assert service.plan(s, remote, known) == [noop("ecs service", "demo")]


def test_during_a_canary_a_config_change_diffs_against_the_stable_revision() -> None:
    s = spec(project(BASE_CONFIG + "aws:\n  cpu: 1024\n  memory: 2048\n"))
    remote, known = canary_in_progress(spec()), known_existing()
    (td,) = task_definition.plan(s, remote, known)
    assert td == Step("task definition", "demo", Action.update, ["cpu 512 → 1024", "memory 1024 → 2048",
                                                                 "environment MLDEPLOY_MEMORY_MIB"],
                      note="new revision after 3", calls=[
        ApiCall("ecs", "register_task_definition", task_definition.desired(s, known, IMAGE_A),
                outputs=(("task_definition_arn", "taskDefinition.taskDefinitionArn"),))])
    assert IMAGE_B not in json.dumps(td.to_json())


def test_stable_reuses_a_revision_an_interrupted_up_registered() -> None:
    s = spec(image=IMAGE_B)
    remote = FakeRemote({("ecs", "describe_services"): services(ecs_service(s, td_arn(3))),
                         ("ecs", "describe_task_definition"): task_definitions({
                             td_arn(3): revision(s, 3, IMAGE_A), "demo": revision(s, 4, IMAGE_B)})})
    known = known_existing()
    assert task_definition.plan(s, remote, known) == [
        Step("task definition", "demo:4", Action.noop, note="registered by an earlier run")]
    assert known["task_definition_arn"] == td_arn(4)
    (svc,) = service.plan(s, remote, known)
    assert svc.changes == ("task definition demo:3 → demo:4",)


# ----------------------------------------------------------------------------------------------- canary role


def test_canary_revision_carries_its_version_and_is_registered_once() -> None:
    s = spec()
    c = s.as_role("canary", image=IMAGE_B, version="2.0.0", desired_count=1)
    want = task_definition.desired(c, known_existing(), IMAGE_B)
    env = {e["name"]: e["value"] for e in want["containerDefinitions"][0]["environment"]}
    assert env["MLDEPLOY_MODEL_VERSION"] == "2.0.0" and want["family"] == "demo"
    assert want["tags"] == [{"key": "mldeploy:app", "value": "demo"}, {"key": "mldeploy:env", "value": "default"},
                            {"key": "mldeploy:version", "value": "2.0.0"}]
    remote = FakeRemote({("ecs", "describe_services"): services(ecs_service(s, td_arn(3))),
                         ("ecs", "describe_task_definition"): task_definitions({
                             td_arn(3): revision(s, 3, IMAGE_A), "demo": revision(s, 3, IMAGE_A)})})
    known = known_existing()
    assert task_definition.plan(c, remote, known) == [
        Step("task definition", "demo (canary)", Action.update, [f"image {IMAGE_A} → {IMAGE_B}",
                                                                 "environment MLDEPLOY_MODEL_VERSION"],
             note="new revision after 3", calls=[
                 ApiCall("ecs", "register_task_definition", want,
                         outputs=(("canary.task_definition_arn", "taskDefinition.taskDefinitionArn"),))])]
    assert known["canary.task_definition_arn"] == Ref("canary.task_definition_arn")
    assert "task_definition_arn" not in known  # the stable value is untouched

    # re-run after a crash that registered demo:4 but created no service: reuse it, no leaked revision
    remote.answer("ecs", "describe_task_definition", task_definitions({
        td_arn(3): revision(s, 3, IMAGE_A), "demo": revision(c, 4, IMAGE_B)}))
    known = known_existing()
    assert task_definition.plan(c, remote, known) == [
        Step("task definition", "demo:4", Action.noop, note="registered by an earlier run")]
    assert known["canary.task_definition_arn"] == td_arn(4)


def test_canary_never_reuses_the_stable_services_revision() -> None:
    s = spec()
    c = s.as_role("canary", image=IMAGE_A, version="1.0.0")  # identical to what stable runs
    remote = FakeRemote({("ecs", "describe_services"): services(ecs_service(s, td_arn(3))),
                         ("ecs", "describe_task_definition"): task_definitions({
                             td_arn(3): revision(s, 3, IMAGE_A), "demo": revision(s, 3, IMAGE_A)})})
    (step,) = task_definition.plan(c, remote, known_existing())
    assert step.action is Action.update and step.calls[0].op == "register_task_definition"


def test_canary_service_is_created_on_the_canary_target_group_retrying_while_the_last_one_drains() -> None:
    s = spec()
    c = s.as_role("canary", image=IMAGE_B, version="2.0.0", desired_count=1)
    draining = ecs_service(c, td_arn(2), tg=CANARY_TG_ARN, count=0, status="DRAINING")
    remote = FakeRemote({("ecs", "describe_services"): services(ecs_service(s, td_arn(3)), draining)})
    known = {**known_existing(), "canary.task_definition_arn": Ref("canary.task_definition_arn")}
    want = service.desired(c, known)
    assert want["serviceName"] == "demo-canary" and want["desiredCount"] == 1
    assert want["loadBalancers"] == [{"targetGroupArn": CANARY_TG_ARN, "containerName": "model",
                                      "containerPort": 8080}]
    assert {"key": "mldeploy:role", "value": "canary"} in want["tags"]
    assert want["networkConfiguration"] == service.desired(s, {**known, "task_definition_arn": "x"})[
        "networkConfiguration"]
    assert want["capacityProviderStrategy"] == service.capacity_strategy(s)
    assert service.plan(c, remote, known) == [Step("ecs service", "demo-canary", Action.create,
                                                   ["1 tasks", "Fargate on-demand", CANARY_SUMMARY],
                                                   calls=[
        ApiCall("ecs", "create_service", want, outputs=(("canary.service_arn", "service.serviceArn"),),
                retry=service.CREATE_RETRY, retry_timeout_s=900.0)])]
    assert any(r.contains == "draining" for r in service.CREATE_RETRY)
    assert known["canary.service_arn"] == Ref("canary.service_arn")


def test_canary_service_scales_to_the_requested_count() -> None:
    s = spec()
    c = s.as_role("canary", image=IMAGE_B, version="2.0.0", desired_count=3)
    remote = FakeRemote({("ecs", "describe_services"): services(
        ecs_service(c, td_arn(4), tg=CANARY_TG_ARN, count=1))})
    known = {**known_existing(), "canary.task_definition_arn": td_arn(4)}
    assert service.plan(c, remote, known) == [Step("ecs service", "demo-canary", Action.update,
                                                   ["desired count 1 → 3"], calls=[
        ApiCall("ecs", "update_service", {"cluster": "demo", "service": "demo-canary", "desiredCount": 3},
                retry=service.IAM_RETRY, retry_timeout_s=service.IAM_PROPAGATION_S)])]
    assert service.plan(c.as_role("canary", desired_count=None), remote, known) == [
        noop("ecs service", "demo-canary")]


def test_canary_alarms_are_created_with_refs_then_recreated_for_a_new_canary() -> None:
    c = spec().as_role("canary", image=IMAGE_B, version="2.0.0", desired_count=1)
    assert alarms.canary_alarm_names(spec()) == ["mldeploy-demo-canary-5xx", "mldeploy-demo-canary-p99"]
    known = {**known_existing(), "canary.tg_arn": Ref("canary.tg_arn"),
             "canary.service_arn": Ref("canary.service_arn")}
    remote = FakeRemote({("cloudwatch", "describe_alarms"): {"MetricAlarms": []}})
    dims = [{"Name": "LoadBalancer", "Value": "app/demo/abc"},
            {"Name": "TargetGroup", "Value": Fn("format", ("targetgroup/{tg}",), (
                ("tg", Fn("after", (Ref("canary.tg_arn"), ":targetgroup/"))),))}]
    tags = owned_tags() + [{"Key": "mldeploy:role", "Value": "canary"}]
    tags.sort(key=lambda t: t["Key"])
    common = {"EvaluationPeriods": 1, "DatapointsToAlarm": 1, "ComparisonOperator": "GreaterThanThreshold",
              "TreatMissingData": "notBreaching"}

    def metric(mid: str, name: str) -> dict[str, Any]:
        return {"Id": mid, "ReturnData": False, "MetricStat": {"Metric": {
            "Namespace": "AWS/ApplicationELB", "MetricName": name, "Dimensions": dims}, "Period": 60, "Stat": "Sum"}}

    assert alarms.plan(c, remote, known) == [
        Step("alarm", "mldeploy-demo-canary-5xx", Action.create, calls=[ApiCall("cloudwatch", "put_metric_alarm", {
            "AlarmName": "mldeploy-demo-canary-5xx", "Tags": tags, **common,
            "AlarmDescription": "canary demo-canary: 5xx rate above 5.0%", "Threshold": 5.0,
            "Metrics": [{"Id": "rate", "Expression": "IF(requests > 0, 100 * errors / requests, 0)",
                         "Label": "5xx %", "ReturnData": True},
                        metric("errors", "HTTPCode_Target_5XX_Count"), metric("requests", "RequestCount")]})]),
        Step("alarm", "mldeploy-demo-canary-p99", Action.create, calls=[ApiCall("cloudwatch", "put_metric_alarm", {
            "AlarmName": "mldeploy-demo-canary-p99", "Tags": tags, **common,
            "AlarmDescription": "canary demo-canary: p99 latency above 1000 ms", "Namespace": "AWS/ApplicationELB",
            "MetricName": "TargetResponseTime", "Dimensions": dims, "ExtendedStatistic": "p99", "Period": 60,
            "Threshold": 1.0})])]

    # alarms left over from the last canary (in ALARM, say): a new canary service gets them fresh
    concrete = {**known_existing(), "canary.service_arn": Ref("canary.service_arn")}
    old = alarms.definitions(c, concrete)
    remote.answer("cloudwatch", "describe_alarms", {"MetricAlarms": [
        {"AlarmName": n, "StateValue": "ALARM", **a} for n, a in old.items()]})
    steps = alarms.plan(c, remote, concrete)
    assert [(x.action, [k.op for k in x.calls]) for x in steps] == [
        (Action.replace, ["delete_alarms", "put_metric_alarm"])] * 2
    # the same canary, later (its service exists): in sync
    assert alarms.plan(c, remote, {**concrete, "canary.service_arn": f"{ECS}:service/demo/demo-canary"}) == [
        noop("alarm", "mldeploy-demo-canary-5xx"), noop("alarm", "mldeploy-demo-canary-p99")]


def test_firing_reads_fresh_state() -> None:
    remote = FakeRemote({("cloudwatch", "describe_alarms"): {"MetricAlarms": [
        {"AlarmName": "a", "StateValue": "ALARM", "StateReason": "5xx"}, {"AlarmName": "b", "StateValue": "OK"}]}})
    assert alarms.firing(remote, ["a", "b"]) == [("a", "5xx")]


# ---------------------------------------------------------------------------------------------------- delete


def test_service_delete_scales_down_deletes_and_waits_until_inactive() -> None:
    s = spec()
    c = s.as_role("canary")
    remote = FakeRemote({("ecs", "describe_services"): services(
        ecs_service(s, td_arn(3)), ecs_service(c, td_arn(4), tg=CANARY_TG_ARN, count=0, status="DRAINING"))})
    assert service.delete(s, remote, {}) == [Step("ecs service", "demo", Action.delete, calls=[
        ApiCall("ecs", "update_service", {"cluster": "demo", "service": "demo", "desiredCount": 0},
                missing=("ServiceNotFoundException", "ServiceNotActiveException")),
        ApiCall("ecs", "delete_service", {"cluster": "demo", "service": "demo", "force": True},
                missing=("ServiceNotFoundException", "ServiceNotActiveException")),
        Wait("services_inactive", {"cluster": "demo", "services": ["demo"]}, timeout_s=900.0)])]
    assert service.delete(c, remote, {}) == [Step("ecs service", "demo-canary", Action.delete, note="draining",
                                                  calls=[Wait("services_inactive", {"cluster": "demo",
                                                                                    "services": ["demo-canary"]},
                                                              timeout_s=900.0)])]
    assert service.delete(s, FakeRemote({("ecs", "describe_services"): None}), {}) == []  # no cluster


def test_task_definition_delete_pages_filters_and_batches() -> None:
    def listing(familyPrefix: str, status: str) -> dict[str, Any]:  # noqa: N803 (AWS's name)
        if status == "ACTIVE":
            return {"taskDefinitionArns": [td_arn(r) for r in range(1, 12)] + [f"{ECS}:task-definition/demo-canary:1"]}
        return {"taskDefinitionArns": [f"{ECS}:task-definition/demo-prod:1", td_arn(0)]}

    remote = FakeRemote({("ecs", "list_task_definitions"): listing})
    every = [td_arn(r) for r in range(1, 12)] + [td_arn(0)]
    assert task_definition.delete(spec(), remote, {}) == [Step("task definition", "demo", Action.delete,
                                                               ["12 revisions"], calls=[
        *(ApiCall("ecs", "deregister_task_definition", {"taskDefinition": td_arn(r)}, missing=("ClientException",))
          for r in range(1, 12)),
        ApiCall("ecs", "delete_task_definitions", {"taskDefinitions": every[:10]}, missing=("ClientException",)),
        ApiCall("ecs", "delete_task_definitions", {"taskDefinitions": every[10:]}, missing=("ClientException",))])]
    assert task_definition.delete(spec().as_role("canary"), remote, {}) == []  # one family: deleted once


def test_down_deletes_alarms_of_both_roles_and_the_rest() -> None:
    existing = ["mldeploy-demo-5xx-rate", "mldeploy-demo-canary-5xx", "mldeploy-demo-canary-p99"]
    remote = FakeRemote({
        ("cloudwatch", "describe_alarms"): lambda AlarmNames: {  # noqa: N803 (AWS's name)
            "MetricAlarms": [{"AlarmName": n} for n in AlarmNames if n in existing]},
        ("cloudwatch", "get_dashboard"): {"DashboardBody": "{}"},
        ("sns", "get_topic_attributes"): {"Attributes": {}},
        ("application-autoscaling", "describe_scalable_targets"): {"ScalableTargets": [{}]},
        ("ssm", "get_parameters_by_path"): {"Parameters": [{"Name": f"/mldeploy/demo/default/p{i}"}
                                                           for i in range(12)]},
    })
    s = spec()
    assert alarms.delete(s.as_role("canary"), remote, {}) == [
        Step("alarm", n, Action.delete, calls=[ApiCall("cloudwatch", "delete_alarms", {"AlarmNames": [n]})])
        for n in ("mldeploy-demo-canary-5xx", "mldeploy-demo-canary-p99")]
    assert alarms.delete(s, remote, {}) == [Step("alarm", "mldeploy-demo-5xx-rate", Action.delete, calls=[
        ApiCall("cloudwatch", "delete_alarms", {"AlarmNames": ["mldeploy-demo-5xx-rate"]})])]
    assert dashboard.delete(s, remote, {}) == [Step("dashboard", "mldeploy-demo", Action.delete, calls=[
        ApiCall("cloudwatch", "delete_dashboards", {"DashboardNames": ["mldeploy-demo"]},
                missing=("ResourceNotFound", "ResourceNotFoundException"))])]
    assert alarms.delete_topic(s, remote, {}) == [Step("sns topic", "mldeploy-demo-alarms", Action.delete, calls=[
        ApiCall("sns", "delete_topic", {"TopicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:mldeploy-demo-alarms"},
                missing=("NotFound",))])]
    target = TARGET
    assert autoscaling.delete(s, remote, {}) == [Step("scalable target", "demo (1–4 tasks)", Action.delete,
                                                      ["with its policies"], calls=[
        ApiCall("application-autoscaling", "deregister_scalable_target", target,
                missing=("ObjectNotFoundException",))])]
    names = [f"/mldeploy/demo/default/p{i}" for i in range(12)]
    assert stack_outputs.delete(s, remote, {}) == [Step("outputs (ssm)", "/mldeploy/demo/default", Action.delete,
                                                        ["12 parameters"], calls=[
        ApiCall("ssm", "delete_parameters", {"Names": names[:10]}),
        ApiCall("ssm", "delete_parameters", {"Names": names[10:]})])]


def test_nothing_to_delete_is_no_steps() -> None:
    remote = FakeRemote({("cloudwatch", "describe_alarms"): {"MetricAlarms": []}, ("cloudwatch", "get_dashboard"): None,
                         ("sns", "get_topic_attributes"): None, ("ecs", "describe_services"): {"services": []},
                         ("ecs", "list_task_definitions"): {"taskDefinitionArns": []},
                         ("application-autoscaling", "describe_scalable_targets"): {"ScalableTargets": []},
                         ("ssm", "get_parameters_by_path"): {"Parameters": []}})
    for role in ("stable", "canary"):
        s = spec().as_role(role)  # type: ignore[arg-type]
        for delete in (alarms.delete, alarms.delete_topic, dashboard.delete, service.delete, task_definition.delete,
                       autoscaling.delete, stack_outputs.delete):
            assert delete(s, remote, {}) == []


def test_down_covers_both_roles_of_services_and_alarms() -> None:
    from mldeploy.aws.engine import stack

    roles = {f.name: f.roles for f in stack.RESOURCES}
    assert roles["service"] == roles["alarms"] == ("stable", "canary")
    assert roles["task definition"] == ("stable",)  # one family holds both roles' revisions


# ------------------------------------------------------------------ deployment alarms (issue 14 item 8)


def test_services_roll_back_on_their_alarms_too() -> None:
    """botocore ``DeploymentAlarms``; moto accepts the field but omits ``deploymentConfiguration`` from
    DescribeServices, so the create request and the drift plan are asserted here as data."""
    s = spec()
    assert service.deployment(s)["alarms"] == {"alarmNames": STABLE_ALARMS, "enable": True, "rollback": True}
    assert service.deployment(s.as_role("canary"))["alarms"]["alarmNames"] == alarms.canary_alarm_names(s)
    assert set(STABLE_ALARMS) <= set(alarms.names(s))  # names the alarms family creates
    assert "alarms" not in service.deployment(spec(project(BASE_CONFIG + "aws:\n  alarms:\n    enabled: false\n")))

    # a service deployed before alarms were wired (real ECS answers enable: false) gets them in an update
    known = {**known_existing(), "task_definition_arn": td_arn(3)}
    old = {**ecs_service(s, td_arn(3)), "deploymentConfiguration": {
        **service.DEPLOYMENT, "deploymentCircuitBreaker": {"enable": True, "rollback": True,
                                                           "resetOnHealthyTask": True},
        "alarms": {"alarmNames": [], "enable": False, "rollback": False}}}
    remote = FakeRemote({("ecs", "describe_services"): services(old)})
    assert service.plan(s, remote, known) == [Step("ecs service", "demo", Action.update, [
        f"deployment alarms → {', '.join(STABLE_ALARMS)}"], calls=[
        ApiCall("ecs", "update_service", {"cluster": "demo", "service": "demo",
                                          "deploymentConfiguration": service.deployment(s)},
                retry=service.IAM_RETRY, retry_timeout_s=service.IAM_PROPAGATION_S)])]
    # in sync (AWS's extra resetOnHealthyTask is not drift), and switching alarms off sends enable: false
    synced = {**old, "deploymentConfiguration": {**old["deploymentConfiguration"],
                                                 "alarms": service.deployment(s)["alarms"]}}
    assert service.plan(s, FakeRemote({("ecs", "describe_services"): services(synced)}), known) == [
        noop("ecs service", "demo")]
    off = spec(project(BASE_CONFIG + "aws:\n  alarms:\n    enabled: false\n"))
    (step,) = service.plan(off, FakeRemote({("ecs", "describe_services"): services(synced)}), known)
    assert step.changes == ("deployment alarms → off",)
    assert step.calls[0].params["deploymentConfiguration"]["alarms"] == service.NO_ALARMS


class _Ecs:
    """ECS stub answering the service-deployments API (moto does not implement it: HTTP 500)."""

    def __init__(self, status: str, td: str = "td:2", **full: Any) -> None:
        self.status, self.td, self.full = status, td, full

    def list_service_deployments(self, **_: Any) -> dict[str, Any]:
        return {"serviceDeployments": [
            {"serviceDeploymentArn": "sd/old", "createdAt": "2025-01-01", "status": "SUCCESSFUL",
             "targetServiceRevisionArn": "rev/1"},
            {"serviceDeploymentArn": "sd/new", "createdAt": "2025-01-02", "status": self.status,
             "targetServiceRevisionArn": "rev/2"}]}

    def describe_service_revisions(self, serviceRevisionArns: list[str]) -> dict[str, Any]:  # noqa: N803
        return {"serviceRevisions": [{"arn": a, "taskDefinition": {"rev/1": "td:1", "rev/2": self.td}[a]}
                                     for a in serviceRevisionArns]}

    def describe_service_deployments(self, **_: Any) -> dict[str, Any]:
        return {"serviceDeployments": [{"status": self.status, **self.full}]}


class _Clients:
    def __init__(self, ecs: Any) -> None:
        self.ecs = ecs

    def get(self, name: str) -> Any:
        return getattr(self, name)


def test_rollout_status_from_the_service_deployments_api() -> None:
    import pytest

    from mldeploy.aws import waiters
    from mldeploy.errors import RolledBackError

    svc = {"serviceName": "demo", "desiredCount": 2, "runningCount": 2,
           "deployments": [{"status": "PRIMARY", "taskDefinition": "td:2", "rolloutState": "IN_PROGRESS"}]}
    ok = waiters.ServiceDeployments(_Clients(_Ecs("SUCCESSFUL")), "demo", "demo")  # type: ignore[arg-type]
    dep = ok.latest()
    assert dep is not None and dep["taskDefinition"] == "td:2"
    succeeded = waiters.check_deployment(svc, dep, "td:2", ok)
    assert succeeded is True and waiters.is_stable(svc, "td:2", succeeded)  # authoritative over rolloutState

    # rolled back on an alarm: after ECS finished, deployments[] no longer shows the failure, the API does
    failed = waiters.ServiceDeployments(_Clients(_Ecs(
        "ROLLBACK_SUCCESSFUL", alarms={"status": "TRIGGERED", "triggeredAlarmNames": ["mldeploy-demo-5xx-rate"]},
        sourceServiceRevisions=[{"arn": "rev/1"}])), "demo", "demo")  # type: ignore[arg-type]
    back = {**svc, "deployments": [{"status": "PRIMARY", "taskDefinition": "td:1", "rolloutState": "COMPLETED"}]}
    waiters.check_rollback(back, "td:2")  # deployments[] alone cannot tell
    with pytest.raises(RolledBackError, match="rolled back by ECS.*mldeploy-demo-5xx-rate went into ALARM"):
        waiters.check_deployment(back, failed.latest(), "td:2", failed)
    # a first deployment has nothing to roll back to: say so
    first = waiters.ServiceDeployments(_Clients(_Ecs("ROLLBACK_FAILED", sourceServiceRevisions=[])), "demo", "demo")
    with pytest.raises(RolledBackError, match="nothing to roll back to"):
        waiters.check_deployment(svc, first.latest(), "td:2", first)  # type: ignore[arg-type]
    # someone else's newer deployment: no verdict from the API (deployments[] decides)
    other = waiters.ServiceDeployments(_Clients(_Ecs("IN_PROGRESS", td="td:9")), "demo", "demo")
    assert waiters.check_deployment(svc, other.latest(), "td:2", other) is None  # type: ignore[arg-type]

    # where the API does not answer (moto: HTTP 500), fall back to deployments[] and stop asking
    class _Broken:
        def list_service_deployments(self, **_: Any) -> Any:
            raise NotImplementedError("The list_service_deployments action has not been implemented")

    gone = waiters.ServiceDeployments(_Clients(_Broken()), "demo", "demo")  # type: ignore[arg-type]
    assert gone.latest() is None and gone.latest() is None and not gone.available


# ------------------------------------------------------------------ transient errors (issue 14 item 4)


def test_transient_errors_are_retried_where_aws_and_terraform_document_them() -> None:
    codes = {(r.code, r.contains) for r in service.CREATE_RETRY}
    assert ("InvalidParameterException", "Unable to assume the service linked role") in codes
    assert ("InvalidParameterException", "does not have an associated load balancer") in codes
    assert ("InvalidParameterException",
            "verify that the ECS service role being passed has the proper permissions") in codes
    assert ("ValidationException", "Unable to assume IAM role") in {(r.code, r.contains)
                                                                    for r in autoscaling.REGISTER_RETRY}
    assert autoscaling.PROPAGATION_S == 120.0
    from mldeploy.aws.resources import target_group

    assert target_group.IN_USE.code == "ResourceInUse" and target_group.DELETE_TIMEOUT_S == 120.0


# ------------------------------------------------------------------------- preflight (issue 14 item 10)


def test_preflight_compares_the_fargate_vcpu_quota_with_the_peak() -> None:
    """Service Quotas GetServiceQuota (fargate L-3032A538). moto implements Service Quotas for ``vpc`` only and
    answers NoSuchResourceException for fargate, so the quota answers are canned; the request is asserted."""
    from mldeploy.aws import preflight
    from mldeploy.errors import AwsError

    s = spec(project(BASE_CONFIG + "aws:\n  cpu: 1024\n  memory: 2048\n  autoscaling:\n    max: 10\n"))
    peak = preflight.peak(s)
    # rolling deploy at 200 % of max 10 + a canary at the largest step below 100 (50 %: 5 tasks), 1 vCPU each
    assert (peak.stable_tasks, peak.canary_tasks, peak.vcpu) == (20, 5, 25.0)

    def quota(value: float) -> FakeRemote:
        return FakeRemote({("service-quotas", "get_service_quota"): {"Quota": {"Value": value}}})

    low = quota(6.0)
    (note,) = preflight.notes(s, low)
    assert low.calls == [("service-quotas", "get_service_quota", {"ServiceCode": "fargate",
                                                                   "QuotaCode": "L-3032A538"})]
    assert "quota is 6" in note and "25 vCPU" in note and "request an increase" in note
    (fine,) = preflight.notes(s, quota(4000.0))
    assert "covers the peak of 25 vCPU" in fine

    def unavailable(**_: Any) -> None:
        raise AwsError("service-quotas:GetServiceQuota failed (NoSuchResourceException): not available")

    (note,) = preflight.notes(s, FakeRemote({("service-quotas", "get_service_quota"): unavailable}))
    assert "not readable here" in note and "--quota-code L-3032A538" in note

    spot = spec(project(BASE_CONFIG + "aws:\n  spot:\n    enabled: true\n    weight: 100\n    base: 1\n"))
    remote = quota(100.0)
    assert len(preflight.notes(spot, remote)) == 2  # on-demand (the base task) and Spot (L-36FBB829)
    assert {c[2]["QuotaCode"] for c in remote.calls} == {"L-3032A538", "L-36FBB829"}


def test_the_runtime_learns_its_memory_and_the_vpc_as_trusted_proxies() -> None:
    from mldeploy.aws.resources.task_definition import container

    env = {e["name"]: e["value"] for e in container(spec(), "repo@sha256:1", {"vpc_cidr": "172.31.0.0/16"})[
        "environment"]}
    assert env["MLDEPLOY_MEMORY_MIB"] == "1024" and env["MLDEPLOY_TRUSTED_PROXIES"] == "172.31.0.0/16"
    assert "MLDEPLOY_TRUSTED_PROXIES" not in {e["name"] for e in container(spec(), "x", {})["environment"]}
