"""End-to-end against moto (#14.2, #14.3): `validate` rejects an environment name AWS would reject in the ALB and
target-group names, naming its line; a VPC with public ALB subnets and private task subnets plans and deploys with
the load balancer in the public ones and the tasks in the private ones, and an internet-facing ALB is refused in
private subnets before anything is created.

moto cannot show: that AWS itself rejects ``iris-prod_eu`` at CreateLoadBalancer (moto accepts it; the strict layer
``MLDEPLOY_STRICT_AWS=1`` mirrors the rule), that an internet-facing ALB in a private subnet is unreachable (moto
serves no traffic), or that tasks in private subnets pull their image through a NAT gateway.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mldeploy.errors import ExitCode
from tests.test_aws_helpers import BASE_CONFIG, Project


def test_validate_names_the_line_of_an_environment_aws_would_reject(tmp_path, aws):
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["environments"] = {"prod": {"aws": {"desired_count": 3}}, "prod_eu": {"aws": {"desired_count": 3}}}
    p = Project(tmp_path, aws, cfg)
    lines = (tmp_path / "mldeploy.yaml").read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip().startswith("prod_eu:"))
    r = p.run("validate")
    assert r.rc == int(ExitCode.CONFIG), r.stderr
    assert f"mldeploy.yaml:{line}:3: environments.prod_eu: environment name 'prod_eu'" in r.stderr
    assert "'demo-prod_eu'" in r.stderr and "letters, digits and hyphens" in r.stderr
    assert r.calls == []  # a config error: nothing asked of AWS
    r = p.run("--env", "prod_eu", "plan")
    assert r.rc == int(ExitCode.CONFIG) and "environments.prod_eu" in r.stderr and r.mutating == []


@pytest.fixture
def layout(moto_server) -> dict[str, Any]:
    """A VPC with an internet gateway; per AZ (a, b) a public subnet (route table 0.0.0.0/0 → igw) and a private
    one (the main route table: local only, as behind a NAT gateway that moto need not model)."""
    ec2 = moto_server.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    public_rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    out: dict[str, Any] = {"vpc": vpc, "public": [], "private": []}
    for i, az in enumerate(("us-east-1a", "us-east-1b")):
        pub = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
        ec2.associate_route_table(RouteTableId=public_rt, SubnetId=pub)
        priv = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{10 + i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
        out["public"].append(pub)
        out["private"].append(priv)
    return out


def _config(layout: dict[str, Any], tasks: list[str], alb: list[str] | None) -> dict[str, Any]:
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["aws"].update(vpc_id=layout["vpc"], subnet_ids=tasks, assign_public_ip=False)
    if alb is not None:
        cfg["aws"]["alb_subnet_ids"] = alb
    return cfg


def test_public_alb_subnets_and_private_task_subnets_plan_and_deploy(tmp_path, aws, moto_server, layout):
    p = Project(tmp_path, aws, _config(layout, layout["private"], layout["public"]))
    r = p.run("plan", "--json")
    assert r.rc == 0, r.stderr
    assert ("load balancer", "create") in {(s["kind"], s["action"]) for s in r.json["steps"]}
    assert r.mutating == []
    r = p.run("up", "--image", "registry.example/demo:1", "--no-wait", "--json", env={"MLDEPLOY_STRICT_AWS": "1"})
    assert r.rc == 0, r.stderr
    (create_lb,) = r.params("CreateLoadBalancer")
    assert sorted(create_lb["Subnets"]) == sorted(layout["public"])
    assert create_lb["Scheme"] == "internet-facing"
    (create_svc,) = r.params("CreateService")
    net = create_svc["networkConfiguration"]["awsvpcConfiguration"]
    assert sorted(net["subnets"]) == sorted(layout["private"]) and net["assignPublicIp"] == "DISABLED"
    lb = moto_server.client("elbv2").describe_load_balancers(Names=["demo"])["LoadBalancers"][0]
    assert sorted(z["SubnetId"] for z in lb["AvailabilityZones"]) == sorted(layout["public"])
    r = p.run("plan", "--json")
    assert r.rc == 0 and r.json["changes"] == 0, [s for s in r.json["steps"] if s["action"] != "no-op"]


def test_internet_facing_alb_in_private_subnets_is_refused_before_anything_is_created(tmp_path, aws, layout):
    p = Project(tmp_path, aws, _config(layout, layout["private"], None))
    r = p.run("up", "--image", "registry.example/demo:1", "--no-wait")
    assert r.rc == int(ExitCode.AWS), r.stderr
    assert "aws.subnet_ids:" in r.stderr and "private" in r.stderr and "aws.alb_subnet_ids" in r.stderr
    assert r.resource_mutating == []
    # the same private subnets are fine for an internal load balancer
    cfg = _config(layout, layout["private"], None)
    cfg["aws"]["internal"] = True
    p.write(cfg)
    r = p.run("plan", "--json")
    assert r.rc == 0, r.stderr
    # one public and one private subnet of one AZ cannot both go to the load balancer
    p.write(_config(layout, [layout["public"][0], layout["private"][0], layout["public"][1]], None))
    r = p.run("plan")
    assert r.rc == int(ExitCode.AWS) and "only one subnet per availability zone" in r.stderr
