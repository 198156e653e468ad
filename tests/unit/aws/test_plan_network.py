"""Plans as data for the network families (security groups, load balancer, target groups, listeners, canary weights):
``assert steps == [Step(...)]`` against a fake remote."""

from __future__ import annotations

from typing import Any

import pytest

from mldeploy.aws.engine.model import Action, ApiCall, Fn, Ref, RetryOn, Step, noop
from mldeploy.aws.resources import listener, load_balancer, security_groups, target_group
from mldeploy.errors import AwsError
from tests.unit.fakes import FakeRemote, owned_tags, project, spec

VPC, SUBNETS = "vpc-1", ["subnet-a", "subnet-b"]
ALB_SG, TASK_SG = "sg-alb", "sg-task"
ALB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/demo/abc"
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/demo-tg/111"
TGC_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/demo-tgc/222"
L80 = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/demo/abc/80"
L443 = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/demo/abc/443"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/abc-123"
TLS_CONFIG = f"""\
name: demo
model:
  path: model.onnx
  version: 1.0.0
aws:
  certificate_arn: {CERT}
  allowed_cidrs: [10.0.0.0/8]
"""


def _known(**extra: Any) -> dict[str, Any]:
    return {"vpc_id": VPC, "subnet_ids": list(SUBNETS), **extra}


# --------------------------------------------------------------------------------------------- security groups


def _group(name: str, gid: str, perms: list[dict], tags: list[dict] | None = None) -> dict:
    return {"GroupName": name, "GroupId": gid, "VpcId": VPC, "IpPermissions": perms,
            "Tags": owned_tags() if tags is None else tags}


def _sg_remote(groups: dict[str, dict]) -> FakeRemote:
    def describe(Filters: list[dict]) -> dict:  # noqa: N803 (AWS's parameter name)
        name = next(f["Values"][0] for f in Filters if f["Name"] == "group-name")
        assert next(f["Values"][0] for f in Filters if f["Name"] == "vpc-id") == VPC
        return {"SecurityGroups": [groups[name]] if name in groups else []}

    return FakeRemote({("ec2", "describe_security_groups"): describe})


def _tcp(port: int, cidr: str | None = None, group: str | None = None) -> dict:
    perm: dict[str, Any] = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [],
                            "UserIdGroupPairs": []}
    if cidr:
        perm["IpRanges"] = [{"CidrIp": cidr, "Description": "x"}]
    if group:
        perm["UserIdGroupPairs"] = [{"GroupId": group, "UserId": "123456789012"}]
    return perm


def _tag_spec(name: str) -> list[dict]:
    return [{"ResourceType": "security-group", "Tags": [*owned_tags(), {"Key": "Name", "Value": name}]}]


ALB_DESC, TASK_DESC = "mldeploy demo load balancer", "mldeploy demo tasks (from the ALB only)"


def test_security_groups_created_on_empty_with_the_task_rule_from_the_new_alb_group() -> None:
    known = _known()
    steps = security_groups.plan(spec(), _sg_remote({}), known)
    assert steps == [
        Step("security group", "demo-alb", Action.create, ["ingress 80 from 0.0.0.0/0"], calls=[
            ApiCall("ec2", "create_security_group", {"GroupName": "demo-alb", "Description": ALB_DESC,
                                                     "VpcId": VPC, "TagSpecifications": _tag_spec("demo-alb")},
                    outputs=(("alb_sg_id", "GroupId"),)),
            ApiCall("ec2", "authorize_security_group_ingress", {"GroupId": Ref("alb_sg_id"), "IpPermissions": [
                {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
                 "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": ALB_DESC}]}]})]),
        Step("security group", "demo-tasks", Action.create, ["ingress 8080 from (known after apply: alb_sg_id)"],
             calls=[
            ApiCall("ec2", "create_security_group", {"GroupName": "demo-tasks", "Description": TASK_DESC,
                                                     "VpcId": VPC, "TagSpecifications": _tag_spec("demo-tasks")},
                    outputs=(("task_sg_id", "GroupId"),)),
            ApiCall("ec2", "authorize_security_group_ingress", {"GroupId": Ref("task_sg_id"), "IpPermissions": [
                {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
                 "UserIdGroupPairs": [{"GroupId": Ref("alb_sg_id"), "Description": TASK_DESC}]}]})])]
    assert known["alb_sg_id"] == Ref("alb_sg_id") and known["task_sg_id"] == Ref("task_sg_id")


def _synced_groups() -> dict[str, dict]:
    return {"demo-alb": _group("demo-alb", ALB_SG, [_tcp(80, cidr="0.0.0.0/0")]),
            "demo-tasks": _group("demo-tasks", TASK_SG, [_tcp(8080, group=ALB_SG)])}


def test_security_groups_in_sync_are_noops() -> None:
    known = _known()
    assert security_groups.plan(spec(), _sg_remote(_synced_groups()), known) == [
        noop("security group", "demo-alb"), noop("security group", "demo-tasks")]
    assert (known["alb_sg_id"], known["task_sg_id"]) == (ALB_SG, TASK_SG)


def test_security_group_drift_is_one_authorize_and_one_exact_revoke_per_rule() -> None:
    groups = _synced_groups()
    groups["demo-alb"] = _group("demo-alb", ALB_SG, [_tcp(80, cidr="0.0.0.0/0"), _tcp(443, cidr="10.0.0.0/8")])
    groups["demo-tasks"] = _group("demo-tasks", TASK_SG, [
        _tcp(8080, group=ALB_SG), {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    steps = security_groups.plan(spec(project(TLS_CONFIG)), _sg_remote(groups), _known())
    assert steps == [
        Step("security group", "demo-alb", Action.update, ["allow 80 from 10.0.0.0/8", "revoke 80 from 0.0.0.0/0"],
             calls=[
            ApiCall("ec2", "authorize_security_group_ingress", {"GroupId": ALB_SG, "IpPermissions": [
                {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
                 "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": ALB_DESC}]}]}),
            ApiCall("ec2", "revoke_security_group_ingress", {"GroupId": ALB_SG, "IpPermissions": [
                {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})]),
        Step("security group", "demo-tasks", Action.update, ["revoke all traffic from 0.0.0.0/0"], calls=[
            ApiCall("ec2", "revoke_security_group_ingress", {"GroupId": TASK_SG, "IpPermissions": [
                {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})])]


def test_turning_https_off_revokes_443_only() -> None:
    groups = _synced_groups()
    groups["demo-alb"] = _group("demo-alb", ALB_SG, [_tcp(80, cidr="0.0.0.0/0"), _tcp(443, cidr="0.0.0.0/0")])
    (alb, tasks) = security_groups.plan(spec(), _sg_remote(groups), _known())
    assert alb == Step("security group", "demo-alb", Action.update, ["revoke 443 from 0.0.0.0/0"], calls=[
        ApiCall("ec2", "revoke_security_group_ingress", {"GroupId": ALB_SG, "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})])
    assert tasks == noop("security group", "demo-tasks")


def test_a_new_alb_group_replaces_the_task_rule_source() -> None:
    groups = {"demo-tasks": _group("demo-tasks", TASK_SG, [_tcp(8080, group="sg-old")])}
    (_, tasks) = security_groups.plan(spec(), _sg_remote(groups), _known())
    assert tasks == Step("security group", "demo-tasks", Action.update, [
        "allow 8080 from (known after apply: alb_sg_id)", "revoke 8080 from sg-old"], calls=[
        ApiCall("ec2", "authorize_security_group_ingress", {"GroupId": TASK_SG, "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
             "UserIdGroupPairs": [{"GroupId": Ref("alb_sg_id"), "Description": TASK_DESC}]}]}),
        ApiCall("ec2", "revoke_security_group_ingress", {"GroupId": TASK_SG, "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": "sg-old"}]}]})])


def test_security_group_of_another_env_is_refused() -> None:
    groups = {"demo-alb": _group("demo-alb", ALB_SG, [], tags=owned_tags(env="prod"))}
    with pytest.raises(AwsError, match="belongs to mldeploy app 'demo' env 'prod'"):
        security_groups.plan(spec(), _sg_remote(groups), _known())


def _sg_delete(name: str, gid: str) -> Step:
    return Step("security group", name, Action.delete, calls=[
        ApiCall("ec2", "delete_security_group", {"GroupId": gid}, missing=("InvalidGroup.NotFound",),
                retry=(RetryOn("DependencyViolation"),), retry_timeout_s=600.0)])


def test_security_groups_delete_tasks_first_ours_only_and_not_without_a_vpc() -> None:
    assert security_groups.delete(spec(), _sg_remote(_synced_groups()), _known()) == [
        _sg_delete("demo-tasks", TASK_SG), _sg_delete("demo-alb", ALB_SG)]
    groups = _synced_groups()
    groups["demo-alb"]["Tags"] = owned_tags(env="prod")
    assert security_groups.delete(spec(), _sg_remote(groups), _known()) == [_sg_delete("demo-tasks", TASK_SG)]
    assert security_groups.delete(spec(), _sg_remote({}), _known()) == []
    assert security_groups.delete(spec(), FakeRemote(), {"vpc_id": None}) == []  # no describe call at all


# ----------------------------------------------------------------------------------------------- load balancer


def _lb(scheme: str = "internet-facing", sgs: list[str] | None = None, subnets: list[str] | None = None) -> dict:
    return {"LoadBalancers": [{"LoadBalancerArn": ALB_ARN, "DNSName": "demo-1.elb.amazonaws.com", "Scheme": scheme,
                               "SecurityGroups": [ALB_SG] if sgs is None else sgs,
                               "AvailabilityZones": [{"SubnetId": s} for s in (subnets or SUBNETS)]}]}


def _elb_remote(lb: dict | None = None, tags: list[dict] | None = None, **answers: Any) -> FakeRemote:
    remote = FakeRemote({("elbv2", "describe_load_balancers"): lb,
                         ("elbv2", "describe_tags"): {"TagDescriptions": [
                             {"ResourceArn": "x", "Tags": owned_tags() if tags is None else tags}]}})
    for op, value in answers.items():
        remote.answer("elbv2", op, value)
    return remote


def test_load_balancer_created_on_empty_with_refs_and_derived_full_name() -> None:
    known = _known(alb_sg_id=Ref("alb_sg_id"))
    steps = load_balancer.plan(spec(), _elb_remote(None), known)
    assert steps == [Step("load balancer", "demo", Action.create, ["internet-facing", "2 subnets"], calls=[
        ApiCall("elbv2", "create_load_balancer", {
            "Name": "demo", "Subnets": SUBNETS, "SecurityGroups": [Ref("alb_sg_id")], "Scheme": "internet-facing",
            "Type": "application", "IpAddressType": "ipv4", "Tags": owned_tags()},
            outputs=(("alb_arn", "LoadBalancers[0].LoadBalancerArn"), ("alb_dns", "LoadBalancers[0].DNSName")))])]
    assert known["alb_arn"] == Ref("alb_arn") and known["alb_dns"] == Ref("alb_dns")
    assert known["alb_full_name"] == Fn("after", (Ref("alb_arn"), ":loadbalancer/"))
    assert load_balancer.url(spec(), known) == Fn("format", ("http://{host}",), (("host", Ref("alb_dns")),))


def test_load_balancer_in_sync_noop_and_drift_updates() -> None:
    known = _known(alb_sg_id=ALB_SG)
    assert load_balancer.plan(spec(), _elb_remote(_lb()), known) == [noop("load balancer", "demo")]
    assert known["alb_full_name"] == "app/demo/abc"
    assert load_balancer.url(spec(), known) == "http://demo-1.elb.amazonaws.com"
    assert load_balancer.url(spec(project(TLS_CONFIG)), known) == "https://demo-1.elb.amazonaws.com"
    drift = _elb_remote(_lb(sgs=["sg-other"], subnets=["subnet-a"]))
    assert load_balancer.plan(spec(), drift, _known(alb_sg_id=ALB_SG)) == [
        Step("load balancer", "demo", Action.update, ["security groups", "subnets 1 → 2"], calls=[
            ApiCall("elbv2", "set_security_groups", {"LoadBalancerArn": ALB_ARN, "SecurityGroups": [ALB_SG]}),
            ApiCall("elbv2", "set_subnets", {"LoadBalancerArn": ALB_ARN, "Subnets": SUBNETS})])]


def test_load_balancer_scheme_change_and_foreign_owner_are_refused() -> None:
    with pytest.raises(AwsError, match="cannot change the scheme"):
        load_balancer.plan(spec(), _elb_remote(_lb(scheme="internal")), _known(alb_sg_id=ALB_SG))
    with pytest.raises(AwsError, match="belongs to something not managed by mldeploy"):
        load_balancer.plan(spec(), _elb_remote(_lb(), tags=[]), _known(alb_sg_id=ALB_SG))


def test_load_balancer_delete_ours_only_and_idempotent() -> None:
    assert load_balancer.delete(spec(), _elb_remote(_lb()), {}) == [Step("load balancer", "demo", Action.delete, calls=[
        ApiCall("elbv2", "delete_load_balancer", {"LoadBalancerArn": ALB_ARN}, missing=("LoadBalancerNotFound",))])]
    assert load_balancer.delete(spec(), _elb_remote(_lb(), tags=owned_tags(app="other")), {}) == []
    assert load_balancer.delete(spec(), _elb_remote(None), {}) == []


# ----------------------------------------------------------------------------------------------- target groups


HEALTH = {"HealthCheckPath": "/ready", "HealthCheckIntervalSeconds": 10, "HealthCheckTimeoutSeconds": 5,
          "HealthyThresholdCount": 2, "UnhealthyThresholdCount": 3, "Matcher": {"HttpCode": "200"}}


def _tg(arn: str = TG_ARN, **overrides: Any) -> dict:
    return {"TargetGroups": [{"TargetGroupArn": arn, "Port": 8080, "VpcId": VPC, **HEALTH, **overrides}]}


def _tg_create(name: str, key: str, tags: list[dict]) -> Step:
    return Step("target group", name, Action.create, ["ip:8080, health /ready, deregistration 30s"], calls=[
        ApiCall("elbv2", "create_target_group", {
            "Name": name, "Protocol": "HTTP", "Port": 8080, "VpcId": VPC, "TargetType": "ip",
            "HealthCheckProtocol": "HTTP", "HealthCheckEnabled": True, "Tags": tags, **HEALTH},
            outputs=((key, "TargetGroups[0].TargetGroupArn"),)),
        ApiCall("elbv2", "modify_target_group_attributes", {
            "TargetGroupArn": Ref(key), "Attributes": [{"Key": "deregistration_delay.timeout_seconds",
                                                        "Value": "30"}]})])


def test_target_group_created_on_empty_in_the_known_vpc() -> None:
    known = _known()
    assert target_group.plan(spec(), FakeRemote({("elbv2", "describe_target_groups"): None}), known) == [
        _tg_create("demo-tg", "tg_arn", owned_tags())]
    assert known["tg_arn"] == Ref("tg_arn")


def test_canary_target_group_has_the_same_settings_its_own_name_key_and_role_tag() -> None:
    canary = spec(role="canary")
    remote = FakeRemote({("elbv2", "describe_target_groups"): lambda Names: None})  # noqa: N803
    known = _known(tg_arn=TG_ARN)
    tags = [*owned_tags(), {"Key": "mldeploy:role", "Value": "canary"}]
    assert target_group.plan(canary, remote, known) == [_tg_create("demo-tgc", "canary.tg_arn", tags)]
    assert known["canary.tg_arn"] == Ref("canary.tg_arn") and known["tg_arn"] == TG_ARN
    assert remote.calls == [("elbv2", "describe_target_groups", {"Names": ["demo-tgc"]})]


def _attrs(delay: str = "30") -> dict:
    return {"Attributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": delay}]}


def test_target_group_in_sync_noop_and_one_update_per_drift() -> None:
    remote = _elb_remote(describe_target_groups=_tg(), describe_target_group_attributes=_attrs())
    known = _known()
    assert target_group.plan(spec(), remote, known) == [noop("target group", "demo-tg")]
    assert known["tg_arn"] == TG_ARN
    drift = _elb_remote(describe_target_groups=_tg(HealthCheckPath="/health"),
                        describe_target_group_attributes=_attrs("300"))
    assert target_group.plan(spec(), drift, _known()) == [Step("target group", "demo-tg", Action.update, [
        "health check Path=/ready", "deregistration delay 300s → 30s"], calls=[
        ApiCall("elbv2", "modify_target_group", {"TargetGroupArn": TG_ARN, **HEALTH}),
        ApiCall("elbv2", "modify_target_group_attributes", {
            "TargetGroupArn": TG_ARN, "Attributes": [{"Key": "deregistration_delay.timeout_seconds",
                                                      "Value": "30"}]})])]


def test_target_group_port_change_and_foreign_owner_are_refused() -> None:
    with pytest.raises(AwsError, match="cannot change in place"):
        target_group.plan(spec(), _elb_remote(describe_target_groups=_tg(Port=9000)), _known())
    with pytest.raises(AwsError, match="env 'prod'"):
        target_group.plan(spec(), _elb_remote(describe_target_groups=_tg(), tags=owned_tags(env="prod")), _known())


def _tg_delete(name: str, arn: str) -> Step:
    return Step("target group", name, Action.delete, calls=[
        ApiCall("elbv2", "delete_target_group", {"TargetGroupArn": arn}, missing=("TargetGroupNotFound",),
                retry=(RetryOn("ResourceInUse", "in use by a listener or a rule"),), retry_timeout_s=120.0)])


def test_target_group_delete_per_role_ours_only_idempotent() -> None:
    remote = _elb_remote(describe_target_groups=lambda Names: _tg(TGC_ARN if Names == ["demo-tgc"] else TG_ARN))  # noqa: N803
    assert target_group.delete(spec(), remote, {}) == [_tg_delete("demo-tg", TG_ARN)]
    assert target_group.delete(spec(role="canary"), remote, {}) == [_tg_delete("demo-tgc", TGC_ARN)]
    assert target_group.delete(spec(), _elb_remote(describe_target_groups=None), {}) == []
    assert target_group.delete(spec(), _elb_remote(describe_target_groups=_tg(), tags=[]), {}) == []


# --------------------------------------------------------------------------------------------------- listeners


def _forward_listener(port: int, arn: str, actions: list[dict], **extra: Any) -> dict:
    return {"ListenerArn": arn, "Port": port, "Protocol": "HTTPS" if port == 443 else "HTTP",
            "DefaultActions": actions, **extra}


def _plain(tg: str = TG_ARN) -> list[dict]:  # what AWS describes for a plain forward
    return [{"Type": "forward", "TargetGroupArn": tg,
             "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": tg, "Weight": 1}]}}]


def _weighted(stable: int, canary: int) -> list[dict]:
    return [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": TG_ARN, "Weight": stable}, {"TargetGroupArn": TGC_ARN, "Weight": canary}]}}]


def test_listener_created_for_a_new_load_balancer_forwards_to_the_new_target_group() -> None:
    known = {"alb_arn": Ref("alb_arn"), "tg_arn": Ref("tg_arn")}
    steps = listener.plan(spec(), FakeRemote(), known)  # nothing to describe: the load balancer is new
    assert steps == [Step("listener", "demo:80", Action.create, ["HTTP → forward"], calls=[
        ApiCall("elbv2", "create_listener", {
            "LoadBalancerArn": Ref("alb_arn"), "Port": 80, "Protocol": "HTTP",
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": Ref("tg_arn")}], "Tags": owned_tags()},
            outputs=(("listener_arn", "Listeners[0].ListenerArn"),))])]
    assert known["listener_arn"] == Ref("listener_arn")


def test_https_listeners_created_redirect_and_forward_with_the_certificate() -> None:
    known = {"alb_arn": ALB_ARN, "tg_arn": TG_ARN}
    remote = _elb_remote(describe_listeners={"Listeners": []})
    assert listener.plan(spec(project(TLS_CONFIG)), remote, known) == [
        Step("listener", "demo:80", Action.create, ["HTTP → HTTPS redirect"], calls=[
            ApiCall("elbv2", "create_listener", {"LoadBalancerArn": ALB_ARN, "Port": 80, "Protocol": "HTTP",
                                                 "DefaultActions": listener.REDIRECT, "Tags": owned_tags()})]),
        Step("listener", "demo:443", Action.create, ["HTTPS → forward"], calls=[
            ApiCall("elbv2", "create_listener", {
                "LoadBalancerArn": ALB_ARN, "Port": 443, "Protocol": "HTTPS", "SslPolicy": listener.SSL_POLICY,
                "Certificates": [{"CertificateArn": CERT}], "DefaultActions": listener.forward(TG_ARN),
                "Tags": owned_tags()}, outputs=(("listener_arn", "Listeners[0].ListenerArn"),))])]


def test_listener_in_sync_and_a_running_canary_are_left_alone() -> None:
    for actions in (_plain(), _weighted(90, 10)):
        remote = _elb_remote(describe_listeners={"Listeners": [_forward_listener(80, L80, actions)]})
        known = {"alb_arn": ALB_ARN, "tg_arn": TG_ARN}
        assert listener.plan(spec(), remote, known) == [noop("listener", "demo:80")]
        assert known["listener_arn"] == L80


def test_listener_drift_forward_certificate_and_extra_port() -> None:
    remote = _elb_remote(describe_listeners={"Listeners": [
        _forward_listener(80, L80, _plain("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/other/9")),
        _forward_listener(443, L443, _plain())]})
    assert listener.plan(spec(), remote, {"alb_arn": ALB_ARN, "tg_arn": TG_ARN}) == [
        Step("listener", "demo:80", Action.update, ["forward to demo-tg"], calls=[
            ApiCall("elbv2", "modify_listener", {"ListenerArn": L80, "DefaultActions": listener.forward(TG_ARN)})]),
        Step("listener", "demo:443", Action.delete, ["not configured"], calls=[
            ApiCall("elbv2", "delete_listener", {"ListenerArn": L443}, missing=("ListenerNotFound",))])]
    # a new certificate on a listener that carries a canary: only the certificate is sent, the weights stay
    remote = _elb_remote(describe_listeners={"Listeners": [
        _forward_listener(80, L80, listener.REDIRECT),
        _forward_listener(443, L443, _weighted(75, 25), Certificates=[{"CertificateArn": "arn:old"}])]})
    assert listener.plan(spec(project(TLS_CONFIG)), remote, {"alb_arn": ALB_ARN, "tg_arn": TG_ARN}) == [
        noop("listener", "demo:80"),
        Step("listener", "demo:443", Action.update, ["certificate"], calls=[
            ApiCall("elbv2", "modify_listener", {"ListenerArn": L443, "SslPolicy": listener.SSL_POLICY,
                                                 "Certificates": [{"CertificateArn": CERT}]})])]


def test_listeners_delete_every_listener_of_our_load_balancer() -> None:
    remote = _elb_remote(_lb(), describe_listeners={"Listeners": [
        _forward_listener(443, L443, _plain()), _forward_listener(80, L80, listener.REDIRECT)]})
    assert listener.delete(spec(), remote, {}) == [
        Step("listener", "demo:80", Action.delete, calls=[
            ApiCall("elbv2", "delete_listener", {"ListenerArn": L80}, missing=("ListenerNotFound",))]),
        Step("listener", "demo:443", Action.delete, calls=[
            ApiCall("elbv2", "delete_listener", {"ListenerArn": L443}, missing=("ListenerNotFound",))])]
    assert listener.delete(spec(), _elb_remote(None), {}) == []
    assert listener.delete(spec(), _elb_remote(_lb(), tags=owned_tags(env="prod")), {}) == []
    assert listener.delete_private_paths(spec(), remote, {}) == []


def _private_rule_step(arn: Any) -> Step:
    return Step("listener rule", "demo: /metrics, /metrics/* → 404", Action.create,
                ["keep Prometheus metrics private"], calls=[
        ApiCall("elbv2", "create_rule", {
            "ListenerArn": arn, "Priority": 1,
            "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/metrics", "/metrics/*"]}}],
            "Actions": [listener.PRIVATE_RESPONSE], "Tags": owned_tags()})])


def test_private_paths_rule_on_the_traffic_listener() -> None:
    assert listener.plan_private_paths(spec(), FakeRemote(), {"listener_arn": Ref("listener_arn")}) == [
        _private_rule_step(Ref("listener_arn"))]
    remote = _elb_remote(describe_rules={"Rules": [{"IsDefault": True, "Conditions": []}]})
    assert listener.plan_private_paths(spec(), remote, {"listener_arn": L80}) == [_private_rule_step(L80)]
    remote.answer("elbv2", "describe_rules", {"Rules": [{"Conditions": [
        {"Field": "path-pattern", "PathPatternConfig": {"Values": ["/metrics/*", "/metrics"]}}]}]})
    assert listener.plan_private_paths(spec(), remote, {"listener_arn": L80}) == [
        noop("listener rule", "demo: /metrics, /metrics/* → 404")]


# ----------------------------------------------------------------------------------------------- canary weights


def _weights_remote(actions: list[dict]) -> FakeRemote:
    return _elb_remote(describe_listeners={"Listeners": [_forward_listener(80, L80, actions)]})


def test_read_weights_by_target_group_name() -> None:
    known = {"alb_arn": ALB_ARN}
    assert listener.read_weights(spec(), _weights_remote(_weighted(90, 10)), known) == {"demo-tg": 90, "demo-tgc": 10}
    assert listener.read_weights(spec(), _weights_remote(_plain()), known) == {"demo-tg": 1}
    assert listener.read_weights(spec(), _elb_remote(None), {}) == {}  # no load balancer yet


def test_plan_weights_ten_percent_to_the_canary() -> None:
    known = {"alb_arn": ALB_ARN, "tg_arn": TG_ARN, "canary.tg_arn": TGC_ARN}
    assert listener.plan_weights(spec(), _weights_remote(_plain()), known, 10) == [
        Step("listener", "demo:80", Action.update, ["forward 90% to demo-tg, 10% to demo-tgc"], calls=[
            ApiCall("elbv2", "modify_listener", {"ListenerArn": L80, "DefaultActions": _weighted(90, 10)})])]
    assert listener.plan_weights(spec(), _weights_remote(_weighted(90, 10)), known, 10) == [noop("listener", "demo:80")]


def test_plan_weights_to_a_canary_target_group_this_plan_creates() -> None:
    known = {"alb_arn": ALB_ARN, "tg_arn": TG_ARN, "canary.tg_arn": Ref("canary.tg_arn")}
    (step,) = listener.plan_weights(spec(role="canary"), _weights_remote(_plain()), known, 10)
    assert step.calls == (ApiCall("elbv2", "modify_listener", {"ListenerArn": L80, "DefaultActions": [
        {"Type": "forward", "ForwardConfig": {"TargetGroups": [
            {"TargetGroupArn": TG_ARN, "Weight": 90}, {"TargetGroupArn": Ref("canary.tg_arn"), "Weight": 10}]}}]}),)


def test_plan_weights_none_goes_back_to_a_plain_forward_keeping_other_actions() -> None:
    known = {"alb_arn": ALB_ARN, "tg_arn": TG_ARN, "canary.tg_arn": TGC_ARN}
    auth = {"Type": "authenticate-cognito", "Order": 1, "AuthenticateCognitoConfig": {"UserPoolArn": "arn:pool"}}
    assert listener.plan_weights(spec(), _weights_remote([auth, *_weighted(0, 100)]), known, None) == [
        Step("listener", "demo:80", Action.update, ["forward 100% to demo-tg"], calls=[
            ApiCall("elbv2", "modify_listener", {"ListenerArn": L80, "DefaultActions": [
                auth, {"Type": "forward", "TargetGroupArn": TG_ARN, "Order": 2}]})])]
    assert listener.plan_weights(spec(), _weights_remote(_plain()), known, None) == [noop("listener", "demo:80")]


def test_plan_weights_reads_missing_values_and_refuses_without_a_listener_or_bad_percent() -> None:
    remote = _elb_remote(_lb(), describe_listeners={"Listeners": [_forward_listener(80, L80, _plain())]},
                         describe_target_groups=lambda Names: _tg(TGC_ARN if Names == ["demo-tgc"] else TG_ARN))  # noqa: N803
    (step,) = listener.plan_weights(spec(), remote, {}, 25)  # ARNs described when no planner put them in known
    assert step.calls[0].params["DefaultActions"] == _weighted(75, 25)
    with pytest.raises(AwsError, match="between 0 and 100"):
        listener.plan_weights(spec(), remote, {}, 150)
    with pytest.raises(AwsError, match="has no listener on port 80"):
        listener.plan_weights(spec(), _elb_remote(None), {}, 10)
