"""Error paths: each a clear message naming the field/resource and a non-zero exit, no traceback."""

from __future__ import annotations

import copy

import pytest

from mldeploy.aws.waiters import check_rollback
from mldeploy.errors import ExitCode, RolledBackError
from tests.test_aws_helpers import BASE_CONFIG, Project

AWS_EXIT = int(ExitCode.AWS)


def _assert_clean_error(r, code: int, *needles: str) -> None:
    assert r.rc == code, (r.rc, r.stderr)
    assert "Traceback" not in r.stderr
    for needle in needles:
        assert needle in r.stderr, r.stderr


def test_no_credentials(tmp_path, aws):
    env = {k: v for k, v in aws.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    p = Project(tmp_path, env)
    _assert_clean_error(p.run("plan"), AWS_EXIT, "no AWS credentials found", "aws configure")


def test_no_region(tmp_path, aws):
    env = {k: v for k, v in aws.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    cfg = copy.deepcopy(BASE_CONFIG)
    del cfg["aws"]["region"]
    p = Project(tmp_path, env, cfg)
    _assert_clean_error(p.run("plan"), AWS_EXIT, "no AWS region configured", "aws.region")
    # --region on the command line is enough
    assert p.run("plan", "--region", "us-east-1").rc == 0


def test_missing_profile(tmp_path, aws):
    p = Project(tmp_path, aws)
    _assert_clean_error(p.run("plan", "--profile", "nope"), AWS_EXIT, "AWS profile 'nope' not found")


def test_name_taken_by_someone_else(tmp_path, aws, moto_server):
    ecs = moto_server.client("ecs")
    ecs.create_cluster(clusterName="demo")  # not ours: no mldeploy tags
    p = Project(tmp_path, aws)
    r = p.run("up", "--image", "x:1", "--no-wait")
    _assert_clean_error(r, AWS_EXIT, "ECS cluster 'demo' already exists", "not managed by mldeploy")
    assert "CreateCluster" not in r.mutating
    ecs.delete_cluster(cluster="demo")
    moto_server.client("elbv2")  # another env's load balancer with our name
    ec2 = moto_server.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    ec2.create_security_group(GroupName="demo-alb", Description="x", VpcId=vpc, TagSpecifications=[
        {"ResourceType": "security-group", "Tags": [{"Key": "mldeploy:app", "Value": "demo"},
                                                    {"Key": "mldeploy:env", "Value": "prod"}]}])
    _assert_clean_error(p.run("plan"), AWS_EXIT, "security group 'demo-alb'", "mldeploy app 'demo' env 'prod'")


def test_no_default_vpc_and_bad_vpc(tmp_path, aws, moto_server):
    ec2 = moto_server.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=s["SubnetId"])
    for igw in ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc]}])[
            "InternetGateways"]:
        ec2.detach_internet_gateway(InternetGatewayId=igw["InternetGatewayId"], VpcId=vpc)
    ec2.delete_vpc(VpcId=vpc)
    p = Project(tmp_path, aws)
    _assert_clean_error(p.run("plan"), AWS_EXIT, "no default VPC in us-east-1", "aws.vpc_id")
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["aws"]["vpc_id"] = "vpc-0123456789abcdef0"
    p.write(cfg)
    _assert_clean_error(p.run("plan"), AWS_EXIT, "aws.vpc_id 'vpc-0123456789abcdef0' does not exist")


def test_up_waits_and_times_out_with_the_rollout_state(tmp_path, aws):
    # moto never starts tasks (runningCount stays 0): the wait must give up with the state it saw
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["release"] = {"stability_timeout_s": 10}
    p = Project(tmp_path, aws, cfg)
    r = p.run("up", "--image", "x:1")
    _assert_clean_error(r, int(ExitCode.NOT_READY), "not stable after 10s", "0/2 running", "mldeploy status")


def _service(**primary):
    return {"serviceName": "demo", "events": [{"message": "task failed ELB health checks"}],
            "deployments": [{"status": "PRIMARY", "taskDefinition": "td:1", "rolloutState": "COMPLETED"}, primary]
            if primary.get("status") == "ACTIVE" else [{"status": "PRIMARY", **primary}]}


def test_rollback_detection():
    # stub-based: moto cannot make a deployment fail; these are the shapes ECS returns
    check_rollback(_service(taskDefinition="td:2", rolloutState="IN_PROGRESS"), "td:2")
    with pytest.raises(RolledBackError, match="circuit breaker.*tasks failed to start"):
        check_rollback(_service(taskDefinition="td:2", rolloutState="FAILED",
                                rolloutStateReason="tasks failed to start"), "td:2")
    # after a rollback the old revision is PRIMARY again and ours is the FAILED one
    rolled = _service(status="ACTIVE", taskDefinition="td:2", rolloutState="FAILED",
                      rolloutStateReason="circuit breaker: rolled back")
    with pytest.raises(RolledBackError, match="health checks"):
        check_rollback(rolled, "td:2")


def test_up_with_unknown_option_is_a_usage_error(tmp_path, aws):
    p = Project(tmp_path, aws)
    r = p.run("down", "--yes", "--purgee")
    assert r.rc == int(ExitCode.USAGE)
