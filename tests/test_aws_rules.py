"""The strict AWS-rules layer (mldeploy/testing/aws_rules/) on top of moto: per rule, a call that breaks it is
rejected with AWS's error code, and a valid call passes. Clients come from ``mldeploy.aws.clients.Clients`` with
``MLDEPLOY_STRICT_AWS=1``, so the hooks are installed exactly as in the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from mldeploy.aws.clients import Clients
from mldeploy.testing import aws_rules, hooks_from_env
from mldeploy.testing.aws_rules import s3_policy
from tests.test_aws_helpers import BASE_CONFIG, Project

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                            "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]})


@pytest.fixture
def strict(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Clients:
    monkeypatch.setenv("MLDEPLOY_STRICT_AWS", "1")
    return Clients(boto3.Session(), "us-east-1", hooks=hooks_from_env())  # as the CLI's session installs them


@pytest.fixture
def net(strict: Clients) -> dict[str, Any]:
    """Default VPC, two subnets in different AZs, one more subnet in the first subnet's AZ, a security group."""
    ec2 = strict.ec2
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    by_az: dict[str, str] = {}
    for s in subnets:
        by_az.setdefault(s["AvailabilityZone"], s["SubnetId"])
    (az1, s1), (_, s2) = list(by_az.items())[:2]
    same_az = ec2.create_subnet(VpcId=vpc, CidrBlock="172.31.200.0/24", AvailabilityZone=az1)["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="rules-alb", Description="alb", VpcId=vpc)["GroupId"]
    return {"vpc": vpc, "subnets": [s1, s2], "same_az": same_az, "sg": sg}


def rejected(fn: Callable[..., Any], code: str, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as info:
        fn(**kwargs)
    assert info.value.response["Error"]["Code"] == code, info.value
    return info.value.response["Error"]["Message"]


def tg(strict: Clients, net: dict[str, Any], name: str = "rules-tg", **kw: Any) -> str:
    return strict.elbv2.create_target_group(Name=name, Protocol="HTTP", Port=8080, VpcId=net["vpc"], TargetType="ip",
                                            **kw)["TargetGroups"][0]["TargetGroupArn"]


def lb(strict: Clients, net: dict[str, Any], name: str = "rules-lb") -> str:
    return strict.elbv2.create_load_balancer(Name=name, Subnets=net["subnets"], SecurityGroups=[net["sg"]],
                                             Type="application")["LoadBalancers"][0]["LoadBalancerArn"]


# ------------------------------------------------------------------------------------------------------- ELBv2


@pytest.mark.parametrize("name", ["has_underscore", "a" * 33, "-lead", "trail-", "internal-api", "dot.name"])
def test_load_balancer_name_rejected(strict, net, name):
    rejected(strict.elbv2.create_load_balancer, "ValidationError", Name=name, Subnets=net["subnets"])


def test_load_balancer_valid_and_subnet_rules(strict, net):
    elbv2 = strict.elbv2
    rejected(elbv2.create_load_balancer, "ValidationError", Name="one-subnet", Subnets=net["subnets"][:1])
    msg = rejected(elbv2.create_load_balancer, "InvalidConfigurationRequest", Name="same-az",
                   Subnets=[net["subnets"][0], net["same_az"]])
    assert "same Availability Zone" in msg
    arn = lb(strict, net, "a" * 32)
    rejected(elbv2.set_subnets, "ValidationError", LoadBalancerArn=arn, Subnets=net["subnets"][:1])
    rejected(elbv2.set_subnets, "InvalidConfigurationRequest", LoadBalancerArn=arn,
             Subnets=[*net["subnets"], net["same_az"]])
    elbv2.set_subnets(LoadBalancerArn=arn, Subnets=net["subnets"])


@pytest.mark.parametrize("name", ["has_underscore", "b" * 33, "-lead", "trail-"])
def test_target_group_name_rejected(strict, net, name):
    rejected(strict.elbv2.create_target_group, "ValidationError", Name=name, Protocol="HTTP", Port=80,
             VpcId=net["vpc"], TargetType="ip")


@pytest.mark.parametrize("settings", [
    {"HealthCheckIntervalSeconds": 301, "HealthCheckTimeoutSeconds": 5},
    {"HealthCheckIntervalSeconds": 300, "HealthCheckTimeoutSeconds": 121},
    {"HealthCheckIntervalSeconds": 10, "HealthCheckTimeoutSeconds": 10},
    {"HealthyThresholdCount": 11},
    {"UnhealthyThresholdCount": 11},
    {"Matcher": {"HttpCode": "200-599"}},
])
def test_target_group_health_check_rejected(strict, net, settings):
    rejected(strict.elbv2.create_target_group, "ValidationError", Name="hc", Protocol="HTTP", Port=80,
             VpcId=net["vpc"], TargetType="ip", **settings)


def test_target_group_valid_and_modify(strict, net):
    arn = tg(strict, net, "c" * 32, HealthCheckIntervalSeconds=300, HealthCheckTimeoutSeconds=120,
             HealthyThresholdCount=10, UnhealthyThresholdCount=2, Matcher={"HttpCode": "200,302"})
    # only the timeout given: compared against the stored interval (300)
    rejected(strict.elbv2.modify_target_group, "ValidationError", TargetGroupArn=arn,
             HealthCheckIntervalSeconds=30)
    strict.elbv2.modify_target_group(TargetGroupArn=arn, HealthCheckIntervalSeconds=30, HealthCheckTimeoutSeconds=5)


def test_forward_weights_and_target_group_count(strict, net):
    elbv2 = strict.elbv2
    arn = lb(strict, net)
    groups = [tg(strict, net, f"fw-{i}") for i in range(6)]

    def forward(arns: list[str], weight: int = 1) -> list[dict[str, Any]]:
        return [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": a, "Weight": weight} for a in arns]}}]

    rejected(elbv2.create_listener, "ValidationError", LoadBalancerArn=arn, Port=80, Protocol="HTTP",
             DefaultActions=forward(groups))
    rejected(elbv2.create_listener, "ValidationError", LoadBalancerArn=arn, Port=80, Protocol="HTTP",
             DefaultActions=forward(groups[:2], 1000))
    listener = elbv2.create_listener(LoadBalancerArn=arn, Port=80, Protocol="HTTP",
                                     DefaultActions=forward(groups[:5], 999))["Listeners"][0]["ListenerArn"]
    rejected(elbv2.modify_listener, "ValidationError", ListenerArn=listener, DefaultActions=forward(groups))
    elbv2.modify_listener(ListenerArn=listener, DefaultActions=forward(groups[:2], 0))


def test_elb_tags(strict, net):
    tags = [{"Key": f"k{i}", "Value": "v"} for i in range(51)]
    rejected(strict.elbv2.create_target_group, "TooManyTags", Name="tags", Protocol="HTTP", Port=80,
             VpcId=net["vpc"], TargetType="ip", Tags=tags)
    rejected(strict.elbv2.create_target_group, "ValidationError", Name="tags", Protocol="HTTP", Port=80,
             VpcId=net["vpc"], TargetType="ip", Tags=[{"Key": "k" * 129, "Value": "v"}])
    tg(strict, net, "tags", Tags=tags[:50])


# --------------------------------------------------------------------------------------------------------- ECS


def task(**over: Any) -> dict[str, Any]:
    container = {"name": "app", "image": "registry.example/demo:1", "essential": True,
                 "healthCheck": {"command": ["CMD", "true"], "interval": 10, "timeout": 5, "retries": 3,
                                 "startPeriod": 60}, "stopTimeout": 30}
    container.update(over.pop("container", {}))
    return {"family": "demo", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "512",
            "memory": "1024", "containerDefinitions": [container], **over}


@pytest.mark.parametrize("over", [
    {"family": "bad.family"},
    {"container": {"name": "bad name"}},
    {"container": {"healthCheck": {"command": ["CMD", "true"], "timeout": 61}}},
    {"container": {"healthCheck": {"command": ["CMD", "true"], "interval": 301}}},
    {"container": {"healthCheck": {"command": ["CMD", "true"], "retries": 11}}},
    {"container": {"healthCheck": {"command": ["CMD", "true"], "startPeriod": 301}}},
    {"container": {"stopTimeout": 121}},
    {"cpu": "256", "memory": "4096"},
    {"cpu": "2048", "memory": "3072"},
    {"networkMode": "bridge"},
])
def test_task_definition_rejected(strict, over):
    rejected(strict.ecs.register_task_definition, "ClientException", **task(**over))


def test_task_definition_valid(strict):
    ecs = strict.ecs
    ecs.register_task_definition(**task(container={"healthCheck": {"command": ["CMD", "true"], "interval": 300,
                                                                   "timeout": 60, "retries": 10, "startPeriod": 300},
                                                   "stopTimeout": 120}))
    for cpu, memory in (("256", "512"), ("1 vCPU", "8 GB"), ("4096", "30720"), ("16384", "122880")):
        ecs.register_task_definition(**task(cpu=cpu, memory=memory))
    ecs.register_task_definition(**task(requiresCompatibilities=["EC2"], networkMode="bridge", cpu="256",
                                        memory="4096"))


def test_ecs_names_and_tags(strict):
    ecs = strict.ecs
    rejected(ecs.create_cluster, "InvalidParameterException", clusterName="bad/name")
    rejected(ecs.create_cluster, "InvalidParameterException", clusterName="x" * 256)
    rejected(ecs.create_cluster, "InvalidParameterException", clusterName="ok",
             tags=[{"key": f"k{i}", "value": "v"} for i in range(51)])
    rejected(ecs.create_cluster, "InvalidParameterException", clusterName="ok",
             tags=[{"key": "aws:owner", "value": "v"}])
    rejected(ecs.create_cluster, "InvalidParameterException", clusterName="ok", tags=[{"key": "k" * 129}])
    ecs.create_cluster(clusterName="A_z-0" + "x" * 250, tags=[{"key": f"k{i}", "value": "v"} for i in range(50)])
    rejected(ecs.create_service, "InvalidParameterException", cluster="A_z-0" + "x" * 250, serviceName="bad name",
             taskDefinition="demo")


def test_create_service_needs_target_group_on_a_listener(strict, net):
    ecs, elbv2 = strict.ecs, strict.elbv2
    ecs.create_cluster(clusterName="rules")
    ecs.register_task_definition(**task())
    tg_arn = tg(strict, net)
    service = {"cluster": "rules", "serviceName": "svc", "taskDefinition": "demo", "desiredCount": 1,
               "launchType": "FARGATE",
               "loadBalancers": [{"targetGroupArn": tg_arn, "containerName": "app", "containerPort": 8080}],
               # moto 5.2.1 answers HTTP 500 (KeyError) without securityGroups
               "networkConfiguration": {"awsvpcConfiguration": {"subnets": net["subnets"],
                                                                "securityGroups": [net["sg"]]}}}
    msg = rejected(ecs.create_service, "InvalidParameterException", **service)
    assert "does not have an associated load balancer" in msg
    elbv2.create_listener(LoadBalancerArn=lb(strict, net), Port=80, Protocol="HTTP",
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}])
    ecs.create_service(**service)


# --------------------------------------------------------------------------------------------- IAM, SSM, others


def test_iam_role(strict):
    iam = strict.iam
    rejected(iam.create_role, "ValidationError", RoleName="r" * 65, AssumeRolePolicyDocument=TRUST)
    rejected(iam.create_role, "ValidationError", RoleName="has space", AssumeRolePolicyDocument=TRUST)
    rejected(iam.create_role, "ValidationError", RoleName="ok", AssumeRolePolicyDocument=TRUST, Description="d" * 1001)
    rejected(iam.create_role, "ValidationError", RoleName="ok", AssumeRolePolicyDocument=TRUST,
             Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    iam.create_role(RoleName="Az09_+=,.@-" + "r" * 53, AssumeRolePolicyDocument=TRUST, Description="d" * 1000)
    rejected(iam.put_role_policy, "ValidationError", RoleName="Az09_+=,.@-" + "r" * 53, PolicyName="bad name",
             PolicyDocument=TRUST)


def test_ssm_parameter(strict):
    ssm = strict.ssm
    for name in ("/has space/x", "/aws/x", "ssm-param", "/AWSx/y"):
        rejected(ssm.put_parameter, "ValidationException", Name=name, Value="v", Type="String")
    rejected(ssm.put_parameter, "HierarchyLevelLimitExceededException", Name="/a" * 16, Value="v", Type="String")
    rejected(ssm.put_parameter, "ValidationException", Name="/mldeploy/big", Value="x" * 4097, Type="String")
    ssm.put_parameter(Name="/a" * 15, Value="v", Type="String")
    ssm.put_parameter(Name="/mldeploy/big", Value="x" * 4096, Type="String")
    ssm.put_parameter(Name="/mldeploy/advanced", Value="x" * 8192, Type="String", Tier="Advanced")


def alarm(**over: Any) -> dict[str, Any]:
    return {"AlarmName": "a", "Namespace": "AWS/ApplicationELB", "MetricName": "HTTPCode_Target_5XX_Count",
            "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 3, "DatapointsToAlarm": 2, "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanThreshold", **over}


def test_cloudwatch_alarm(strict):
    cw = strict.cloudwatch
    rejected(cw.put_metric_alarm, "ValidationError", **alarm(DatapointsToAlarm=4))
    rejected(cw.put_metric_alarm, "ValidationError", **alarm(Period=90))
    rejected(cw.put_metric_alarm, "ValidationError", **alarm(Period=3600, EvaluationPeriods=169))
    metrics = [{"Id": "m", "MetricStat": {"Metric": {"Namespace": "AWS/ApplicationELB", "MetricName": "X"},
                                          "Period": 60, "Stat": "Sum"}, "ReturnData": True}]
    rejected(cw.put_metric_alarm, "InvalidParameterCombination", **alarm(Metrics=metrics))
    cw.put_metric_alarm(**alarm())
    math = alarm(Metrics=metrics)
    for key in ("Namespace", "MetricName", "Statistic", "Period"):
        del math[key]
    cw.put_metric_alarm(**math)


def test_log_group(strict):
    logs = strict.logs
    rejected(logs.create_log_group, "InvalidParameterException", logGroupName="has space")
    rejected(logs.create_log_group, "InvalidParameterException", logGroupName="/x" * 257)
    logs.create_log_group(logGroupName="/mldeploy/demo/default_#.-")
    rejected(logs.put_retention_policy, "InvalidParameterException", logGroupName="/mldeploy/demo/default_#.-",
             retentionInDays=2)
    logs.put_retention_policy(logGroupName="/mldeploy/demo/default_#.-", retentionInDays=14)


def test_security_group(strict, net):
    ec2 = strict.ec2
    for name in ("sg-named", "g" * 256, "bad~char"):
        rejected(ec2.create_security_group, "InvalidParameterValue", GroupName=name, Description="d",
                 VpcId=net["vpc"])
    rejected(ec2.create_security_group, "InvalidParameterValue", GroupName="ok", Description="d" * 256,
             VpcId=net["vpc"])
    ec2.create_security_group(GroupName="demo-alb (x) #1", Description="d" * 255, VpcId=net["vpc"])


def test_instance_refresh_preferences(strict):
    # the Auto Scaling group need not exist: the layer answers before moto (which does not implement the call)
    refresh = strict.autoscaling.start_instance_refresh
    msg = rejected(refresh, "ValidationError", AutoScalingGroupName="g",
                   Preferences={"MinHealthyPercentage": 50, "MaxHealthyPercentage": 200})
    assert "cannot be greater than 100" in msg
    assert "requires MinHealthyPercentage" in rejected(refresh, "ValidationError", AutoScalingGroupName="g",
                                                       Preferences={"MaxHealthyPercentage": 150})
    assert "enum value set: [Refresh, Ignore, Wait]" in rejected(
        refresh, "ValidationError", AutoScalingGroupName="g", Preferences={"ScaleInProtectedInstances": "Replace"})
    assert "MaxHealthyPercentage" in rejected(refresh, "ValidationError", AutoScalingGroupName="g",
                                              Preferences={"MinHealthyPercentage": 100, "MaxHealthyPercentage": 201})


def test_ecr_and_sns_names(strict):
    rejected(strict.ecr.create_repository, "InvalidParameterException", repositoryName="Upper")
    strict.ecr.create_repository(repositoryName="team/demo-model")
    rejected(strict.sns.create_topic, "InvalidParameter", Name="bad.name")
    strict.sns.create_topic(Name="mldeploy-demo_alerts")


# ----------------------------------------------------------------------------------------- S3 bucket policies

BUCKET = "rules-policy"
ARN = f"arn:aws:s3:::{BUCKET}"
TLS_ONLY = {"Version": "2012-10-17", "Statement": [  # as mldeploy/aws/resources/model_store.py writes it
    {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
     "Resource": [ARN, f"{ARN}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}


def _statement(**over: Any) -> str:
    s = {**TLS_ONLY["Statement"][0], **over}
    return json.dumps({"Version": "2012-10-17", "Statement": [{k: v for k, v in s.items() if v is not None}]})


@pytest.mark.parametrize(("policy", "words"), [
    ("not json", "valid JSON"),
    (json.dumps({**TLS_ONLY, "Version": "2020-01-01"}), "version"),
    (json.dumps({"Version": "2012-10-17"}), "Missing required field Statement"),
    (_statement(Effect="Block"), "Invalid effect: Block"),
    (_statement(Principal=None), "Missing required field Principal"),
    (_statement(Action="ec2:RunInstances"), "invalid action"),
    (_statement(Resource="arn:aws:s3:::another-bucket/*"), "invalid resource"),
    (_statement(Condition={"BoolEquals": {"aws:SecureTransport": "false"}}), "Condition type"),
    (_statement(Condition={"Bool": {"aws:SecureTransprot": "false"}}), "invalid condition key"),
])
def test_bucket_policy_malformed(strict, policy, words):
    strict.s3.create_bucket(Bucket=BUCKET)
    msg = rejected(strict.s3.put_bucket_policy, "MalformedPolicy", Bucket=BUCKET, Policy=policy)
    assert words in msg


def test_bucket_policy_condition_the_layer_cannot_evaluate_is_refused_not_ignored(strict):
    strict.s3.create_bucket(Bucket=BUCKET)
    policy = _statement(Condition={"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})  # valid for AWS
    msg = rejected(strict.s3.put_bucket_policy, "MldeployStrictLayerUnsupported", Bucket=BUCKET, Policy=policy)
    assert "aws:SourceIp" in msg


def test_tls_only_policy_is_kept_from_moto_read_back_as_put_and_evaluated(strict, monkeypatch):
    s3, plain = strict.s3, boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(TLS_ONLY))
    assert json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"]) == TLS_ONLY  # as the CLI's plan reads it
    stored = json.loads(plain.get_bucket_policy(Bucket=BUCKET)["Policy"])["Statement"][0]
    assert stored["Action"] != "s3:*" and stored[s3_policy.MARKER] == {"Action": "s3:*"}  # moto holds no live deny
    # MLDEPLOY_STRICT_AWS_TLS=1 (tests/infra.py aws_env): the http endpoint stands in for TLS, so no deny applies
    s3.put_object(Bucket=BUCKET, Key="m/model.json", Body=b"{}")
    assert s3.get_object(Bucket=BUCKET, Key="m/model.json")["Body"].read() == b"{}"
    plain.head_object(Bucket=BUCKET, Key="m/model.json")  # moto itself does not deny either

    monkeypatch.delenv(s3_policy.TLS_ENV)  # now the request is what it is: plain http, aws:SecureTransport false
    with pytest.raises(ClientError) as info:
        s3.get_object(Bucket=BUCKET, Key="m/model.json")
    error = info.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("AccessDenied", 403)
    assert "DenyInsecureTransport" in error["Error"]["Message"]
    rejected(s3.put_object, "AccessDenied", Bucket=BUCKET, Key="m/x", Body=b"x")
    rejected(s3.list_objects_v2, "AccessDenied", Bucket=BUCKET)
    s3.create_bucket(Bucket="rules-no-policy")  # the policy denies, not http itself
    s3.put_object(Bucket="rules-no-policy", Key="k", Body=b"x")


def test_a_deny_of_tls_requests_applies_over_tls(strict):
    """The condition is evaluated, not assumed: a Deny on ``aws:SecureTransport`` true refuses TLS requests."""
    strict.s3.create_bucket(Bucket=BUCKET)
    strict.s3.put_bucket_policy(Bucket=BUCKET, Policy=_statement(Sid="DenyTls", Action="s3:GetObject", Condition={
        "Bool": {"aws:SecureTransport": "true"}}))
    strict.s3.put_object(Bucket=BUCKET, Key="k", Body=b"x")  # s3:PutObject is not denied
    rejected(strict.s3.get_object, "AccessDenied", Bucket=BUCKET, Key="k")
    rejected(strict.s3.head_object, "AccessDenied", Bucket=BUCKET, Key="k")  # HeadObject is s3:GetObject


def test_policy_round_trip_without_moto():
    for doc in (TLS_ONLY, {**TLS_ONLY, "Statement": {**TLS_ONLY["Statement"][0], "NotAction": "s3:GetObject",
                                                     "Action": None}},
                {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": ARN}]}):
        doc = json.loads(json.dumps(doc).replace(', "Action": null', ""))
        assert s3_policy.as_put(json.loads(json.dumps(s3_policy.for_moto(doc)))) == doc
    assert s3_policy.for_moto(TLS_ONLY)["Statement"][0]["Action"] == "mldeploy-strict-aws:EvaluatedByTheStrictLayer"


def test_hook_is_what_the_cli_installs(strict, tmp_path):
    from mldeploy.cli.session import Options, Session

    assert ("before-call.*.*", aws_rules.before_call) in hooks_from_env()
    assert ("after-call.*.*", aws_rules.after_call) in hooks_from_env()
    assert set(aws_rules.HOOKS) <= set(strict.hooks)
    Project(tmp_path, {}, BASE_CONFIG)  # writes mldeploy.yaml + a model file
    session = Session(Options(config=tmp_path / "mldeploy.yaml"))
    assert set(aws_rules.HOOKS) <= set(session.clients().hooks)  # the CLI's clients carry the layer


# --------------------------------------------------------------------------------------------------- whole CLI


def test_plan_and_up_pass_with_the_layer_on(tmp_path, aws):
    project = Project(tmp_path, dict(aws, MLDEPLOY_STRICT_AWS="1"), BASE_CONFIG)
    r = project.run("plan", "--json")
    assert r.rc == 0, r.stderr
    r = project.run("up", "--image", "registry.example/demo:1", "--no-wait", "--json")
    assert r.rc == 0, r.stderr
