"""Account-true rules at plan time, as data against a fake remote (#14.2, #14.3): the ALB's subnets (one per AZ, two
AZs, public for an internet-facing ALB, covering the tasks' AZs), separate ALB and task subnets, default subnets only
where Fargate runs, the ALB idle timeout for long requests, the execution policy for Secrets Manager JSON-key
references and customer-managed KMS keys, and the auth secret ECS needs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mldeploy.aws.engine.model import Action, ApiCall, Ref, Step, noop
from mldeploy.aws.engine.spec import StackSpec
from mldeploy.aws.resources import iam, load_balancer, network
from mldeploy.errors import AwsError, ConfigError
from tests.unit.fakes import ACCOUNT, FakeRemote, owned_tags, project, spec

VPC = "vpc-1"
CUSTOM = """\
name: demo
model:
  path: model.onnx
  version: 1.0.0
aws:
  vpc_id: vpc-1
  subnet_ids: [{tasks}]
{extra}"""


def _subnet(sid: str, az: str, az_id: str = "", public_ip: bool = False) -> dict[str, Any]:
    return {"SubnetId": sid, "VpcId": VPC, "AvailabilityZone": az, "AvailabilityZoneId": az_id or az,
            "MapPublicIpOnLaunch": public_ip, "DefaultForAz": False}


# public-a/b: public subnets in us-east-1a/b (route table rtb-pub: 0.0.0.0/0 → igw); private-a/b: private subnets
# there (no explicit association: the VPC's main route table, with a NAT route only)
SUBNETS = {s["SubnetId"]: s for s in (
    _subnet("public-a", "us-east-1a"), _subnet("public-b", "us-east-1b"),
    _subnet("private-a", "us-east-1a"), _subnet("private-b", "us-east-1b"), _subnet("private-c", "us-east-1c"))}
PUBLIC_RT = {"RouteTableId": "rtb-pub", "Routes": [
    {"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"},
    {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1", "State": "active"}]}
MAIN_RT = {"RouteTableId": "rtb-main", "Routes": [
    {"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"},
    {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-1", "State": "active"}]}


def _net_remote(subnets: dict[str, dict] | None = None, default: list[dict] | None = None) -> FakeRemote:
    subnets = SUBNETS if subnets is None else subnets

    def describe_subnets(SubnetIds: list[str] | None = None, Filters: list[dict] | None = None) -> dict:  # noqa: N803
        if SubnetIds is not None:
            return {"Subnets": [subnets[s] for s in SubnetIds if s in subnets]}
        return {"Subnets": default or []}

    def describe_route_tables(Filters: list[dict]) -> dict:  # noqa: N803
        by = {f["Name"]: f["Values"] for f in Filters}
        if "association.subnet-id" in by:
            sid = by["association.subnet-id"][0]
            return {"RouteTables": [PUBLIC_RT] if sid.startswith("public") else []}
        assert by == {"vpc-id": [VPC], "association.main": ["true"]}
        return {"RouteTables": [MAIN_RT]}

    return FakeRemote({("ec2", "describe_vpcs"): {"Vpcs": [{"VpcId": VPC}]},
                       ("ec2", "describe_subnets"): describe_subnets,
                       ("ec2", "describe_route_tables"): describe_route_tables})


def _custom(tasks: str, extra: str = "") -> StackSpec:
    return spec(project(CUSTOM.format(tasks=tasks, extra=extra)))


# ------------------------------------------------------------------------------------------- network layout


def test_public_alb_subnets_and_private_task_subnets_go_to_separate_known_values() -> None:
    known: dict[str, Any] = {}
    s = _custom("private-a, private-b", "  alb_subnet_ids: [public-a, public-b]\n  assign_public_ip: false\n")
    notes = network.resolve(s, _net_remote(), known)
    assert known == {"vpc_id": VPC, "vpc_cidr": None, "subnet_ids": ["private-a", "private-b"],
                     "alb_subnet_ids": ["public-a", "public-b"]}
    assert any("NAT gateway" in n for n in notes)


def test_without_alb_subnet_ids_the_alb_uses_the_task_subnets() -> None:
    known: dict[str, Any] = {}
    network.resolve(_custom("public-a, public-b"), _net_remote(), known)
    assert known["alb_subnet_ids"] == known["subnet_ids"] == ["public-a", "public-b"]


def test_an_internet_facing_alb_is_refused_in_private_subnets_by_route_table() -> None:
    # no association: the main route table decides; its 0.0.0.0/0 goes to a NAT gateway, not an internet gateway
    with pytest.raises(AwsError, match=r"aws.subnet_ids: private-a, private-b are private") as info:
        network.resolve(_custom("private-a, private-b"), _net_remote(), {})
    assert "aws.alb_subnet_ids" in (info.value.hint or "")
    with pytest.raises(AwsError, match=r"aws.alb_subnet_ids: private-b is private"):
        network.resolve(_custom("private-a, private-b", "  alb_subnet_ids: [public-a, private-b]\n"),
                        _net_remote(), {})
    # an internal load balancer may sit in private subnets (no route-table lookups at all)
    remote = _net_remote()
    network.resolve(_custom("private-a, private-b", "  internal: true\n"), remote, {})
    assert not any(op == "describe_route_tables" for _, op, _ in remote.calls)


def test_alb_subnets_one_per_az_and_at_least_two_azs() -> None:
    # botocore elbv2 CreateLoadBalancerInput.Subnets: "only one subnet per Availability Zone", "at least two"
    with pytest.raises(AwsError, match=r"aws.subnet_ids: a load balancer takes only one subnet per availability "
                                       r"zone \(us-east-1a: private-a, public-a\)") as info:
        network.resolve(_custom("public-a, private-a, public-b"), _net_remote(), {})
    assert "aws.alb_subnet_ids" in (info.value.hint or "")
    with pytest.raises(AwsError, match=r"aws.alb_subnet_ids: a load balancer takes only one subnet per"):
        network.resolve(_custom("private-a, private-b", "  alb_subnet_ids: [public-a, private-a, public-b]\n"),
                        _net_remote(), {})
    # two listed subnets always span two AZs once they are one per AZ (the schema wants two); a default VPC may not
    with pytest.raises(AwsError, match=r"VPC vpc-1: the load balancer needs subnets in at least two availability "
                                       r"zones \(got us-east-1a\)"):
        network.resolve(spec(), _net_remote(default=[_subnet("d-a", "us-east-1a", "use1-az1", True)]), {})


def test_tasks_in_an_az_the_alb_does_not_serve_are_refused() -> None:
    with pytest.raises(AwsError, match=r"aws.subnet_ids has subnets in us-east-1c, where aws.alb_subnet_ids has "
                                       r"none"):
        network.resolve(_custom("private-a, private-b, private-c", "  alb_subnet_ids: [public-a, public-b]\n"),
                        _net_remote(), {})


def test_unknown_alb_subnet_names_the_field() -> None:
    with pytest.raises(AwsError, match=r"aws.alb_subnet_ids: public-z not found in VPC vpc-1"):
        network.resolve(_custom("private-a, private-b", "  alb_subnet_ids: [public-a, public-z]\n"),
                        _net_remote(), {})


def _regional(region: str, text: str | None = None) -> StackSpec:
    return StackSpec(project=project(text) if text else project(), region=region, account=ACCOUNT)


def test_default_subnets_are_filtered_to_the_azs_where_fargate_runs() -> None:
    # ECS guide "Supported Regions for Amazon ECS on AWS Fargate": ap-northeast-1 apne1-az1, -az2, -az4 only
    default = [_subnet(f"d-{x}", f"ap-northeast-1{x}", f"apne1-az{n}", True)
               for x, n in (("a", 4), ("b", 3), ("c", 1), ("d", 2))]
    remote = _net_remote(default=default)
    known: dict[str, Any] = {}
    notes = network.resolve(_regional("ap-northeast-1"), remote, known)
    assert known["subnet_ids"] == known["alb_subnet_ids"] == ["d-a", "d-c", "d-d"]
    assert "default subnets in ap-northeast-1b skipped: Fargate does not run there" in notes
    # the default VPC's default subnets are public by AWS's construction: no route-table lookups
    assert not any(op == "describe_route_tables" for _, op, _ in remote.calls)
    # regions without a restriction keep every default subnet
    known = {}
    network.resolve(_regional("us-east-1"), _net_remote(default=[_subnet("e-a", "us-east-1a", "use1-az3"),
                                                                _subnet("e-b", "us-east-1b", "use1-az1")]), known)
    assert known["subnet_ids"] == ["e-a", "e-b"]


def test_configured_task_subnets_outside_fargate_azs_are_refused() -> None:
    subnets = {"w-1": _subnet("w-1", "us-west-1a", "usw1-az1"), "w-2": _subnet("w-2", "us-west-1b", "usw1-az2")}
    text = CUSTOM.format(tasks="w-1, w-2", extra="  internal: true\n")
    with pytest.raises(AwsError, match=r"aws.subnet_ids: w-2 is in an availability zone where Fargate does not run "
                                       r"in us-west-1 \(Fargate runs in usw1-az1, usw1-az3 only\)"):
        network.resolve(_regional("us-west-1", text), _net_remote(subnets), {})


def test_down_resolves_the_vpc_without_the_deploy_checks() -> None:
    text = CUSTOM.format(tasks="private-a, private-b", extra="") + "runtime:\n  auth: {mode: api_key}\n"
    s = spec(project(text))
    with pytest.raises(ConfigError, match="runtime.auth.mode"):
        network.resolve(s, _net_remote(), {})
    known: dict[str, Any] = {}
    assert network.try_resolve(s, _net_remote(), known) is True and known["vpc_id"] == VPC


def test_plan_refuses_auth_without_its_secret_and_warns_about_plain_text_secrets() -> None:
    default = [_subnet("e-a", "us-east-1a", "use1-az1", True), _subnet("e-b", "us-east-1b", "use1-az2", True)]
    base = "name: demo\nmodel:\n  path: model.onnx\n  version: 1.0.0\n"
    with pytest.raises(ConfigError) as info:
        network.resolve(spec(project(base + "runtime:\n  auth: {mode: jwt, jwt_audience: x}\n")),
                        _net_remote(default=default), {})
    (problem,) = info.value.problems
    assert problem.field == "runtime.auth.mode" and "aws.secrets.MLDEPLOY_JWT_SECRET" in problem.message
    secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-AbCdEf"
    ok = (base + "runtime:\n  auth: {mode: jwt, jwt_audience: x}\naws:\n"
          f"  secrets: {{MLDEPLOY_JWT_SECRET: '{secret}'}}\n  environment: {{HF_TOKEN: abc}}\n")
    notes = network.resolve(spec(project(ok)), _net_remote(default=default), {})
    assert any("HF_TOKEN" in n and "plain text" in n for n in notes)


# ------------------------------------------------------------------------------------------- load balancer

ALB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/demo/abc"
SLOW = "name: demo\nmodel:\n  path: model.onnx\n  version: 1.0.0\nruntime:\n  request_timeout_s: {t}\n"


def _lb_remote(lb: dict | None, idle: str | None = None) -> FakeRemote:
    remote = FakeRemote({("elbv2", "describe_load_balancers"): {"LoadBalancers": [lb]} if lb else None,
                         ("elbv2", "describe_tags"): {"TagDescriptions": [{"ResourceArn": "x", "Tags": owned_tags()}]}})
    if idle is not None:
        remote.answer("elbv2", "describe_load_balancer_attributes", {"Attributes": [
            {"Key": "deletion_protection.enabled", "Value": "false"},
            {"Key": "idle_timeout.timeout_seconds", "Value": idle}]})
    return remote


def _lb(subnets: list[str]) -> dict:
    return {"LoadBalancerArn": ALB_ARN, "DNSName": "demo-1.elb.amazonaws.com", "Scheme": "internet-facing",
            "SecurityGroups": ["sg-alb"], "AvailabilityZones": [{"SubnetId": s} for s in subnets]}


def _known(**extra: Any) -> dict[str, Any]:
    return {"vpc_id": VPC, "subnet_ids": ["private-a", "private-b"], "alb_subnet_ids": ["public-a", "public-b"],
            "alb_sg_id": "sg-alb", **extra}


def _idle(arn: Any, seconds: int) -> ApiCall:
    return ApiCall("elbv2", "modify_load_balancer_attributes", {
        "LoadBalancerArn": arn, "Attributes": [{"Key": "idle_timeout.timeout_seconds", "Value": str(seconds)}]})


def test_load_balancer_is_created_in_the_alb_subnets_with_the_idle_timeout_for_slow_requests() -> None:
    (step,) = load_balancer.plan(spec(project(SLOW.format(t=120))), _lb_remote(None), _known())
    assert step.action == Action.create
    assert step.changes == ("internet-facing", "2 subnets", "idle timeout 125s (runtime.request_timeout_s)")
    create, idle = step.calls
    assert create.params["Subnets"] == ["public-a", "public-b"]
    assert idle == _idle(Ref("alb_arn"), 125)
    # the default request timeout fits AWS's default 60 s idle timeout: no attribute call, no describe
    (step,) = load_balancer.plan(spec(), _lb_remote(None), _known())
    assert [c.op for c in step.calls] == ["create_load_balancer"]


def test_load_balancer_idle_timeout_noop_when_equal_update_when_not() -> None:
    slow = spec(project(SLOW.format(t=120)))
    assert load_balancer.plan(slow, _lb_remote(_lb(["public-a", "public-b"]), idle="125"), _known()) == [
        noop("load balancer", "demo")]
    assert load_balancer.plan(slow, _lb_remote(_lb(["public-a", "public-b"]), idle="60"), _known()) == [
        Step("load balancer", "demo", Action.update, ["idle timeout 60s → 125s"], calls=[_idle(ALB_ARN, 125)])]
    remote = _lb_remote(_lb(["public-a", "public-b"]))  # no attributes declared: they are not read
    assert load_balancer.plan(spec(project(SLOW.format(t=55))), remote, _known()) == [noop("load balancer", "demo")]


def test_moving_the_load_balancer_to_the_alb_subnets() -> None:
    assert load_balancer.plan(spec(), _lb_remote(_lb(["private-a", "private-b"])), _known()) == [
        Step("load balancer", "demo", Action.update, ["subnets 2 → 2"], calls=[
            ApiCall("elbv2", "set_subnets", {"LoadBalancerArn": ALB_ARN, "Subnets": ["public-a", "public-b"]})])]


# ------------------------------------------------------------------------------------------ execution policy

SM = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _policy(aws_yaml: str) -> dict[str, Any]:
    text = f"name: demo\nmodel:\n  path: model.onnx\n  version: 1.0.0\naws:\n{aws_yaml}"
    return {st["Sid"]: st for st in iam.execution_policy(spec(project(text)))["Statement"]}


def test_secrets_manager_json_key_and_version_suffixes_map_to_the_secret_arn() -> None:
    statements = _policy(f"  secrets:\n    A: '{SM}keys-AbCdEf:api_keys::'\n"
                         f"    B: '{SM}keys-AbCdEf:other:AWSPREVIOUS:'\n"
                         f"    C: '{SM}db/pass-Zz9Yx8'\n    D: '{SM}plain:field::'\n")
    assert statements["SecretsManager"]["Resource"] == [f"{SM}db/pass-Zz9Yx8", f"{SM}keys-AbCdEf", f"{SM}plain-??????"]
    assert "SecretsKms" not in statements


def test_customer_managed_kms_key_gets_decrypt_with_secrets_only() -> None:
    ssm = "arn:aws:ssm:us-east-1:123456789012:parameter/demo/keys"
    statements = _policy(f"  secrets:\n    A: {ssm}\n  secrets_kms_key_arn: {KMS}\n")
    assert statements["SecretsKms"] == {"Sid": "SecretsKms", "Effect": "Allow", "Action": "kms:Decrypt",
                                        "Resource": KMS}
    assert statements["SsmSecrets"]["Resource"] == [ssm]
    assert "SecretsKms" not in _policy(f"  secrets_kms_key_arn: {KMS}\n")


def test_execution_role_policy_update_is_planned_when_the_stored_one_has_the_suffix() -> None:
    s = spec(project(f"name: demo\nmodel:\n  path: model.onnx\n  version: 1.0.0\naws:\n"
                     f"  secrets:\n    A: '{SM}keys-AbCdEf:api_keys::'\n"))
    stored = iam.execution_policy(s)
    stored["Statement"][-1]["Resource"] = [f"{SM}keys-AbCdEf:api_keys::"]  # what the old code wrote
    remote = FakeRemote({("iam", "get_role"): {"Role": {"Arn": "arn:aws:iam::123456789012:role/demo-exec",
                                                        "Tags": owned_tags()}},
                         ("iam", "get_role_policy"): {"PolicyDocument": json.dumps(stored)}})
    (step,) = iam.plan_execution_role(s, remote, {})
    assert step.action == Action.update and step.changes == ("execution policy",)
    assert json.loads(step.calls[0].params["PolicyDocument"]) == iam.execution_policy(s)
